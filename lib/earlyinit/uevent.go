package earlyinit

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// uevent is one kernel uevent, e.g. ACTION=add SUBSYSTEM=block
// DEVNAME=vda.
type uevent struct {
	Action string
	Vars   map[string]string
}

// parseUevent parses a kernel uevent message: "action@devpath" then
// NUL-separated KEY=VALUE pairs.
func parseUevent(b []byte) (uevent, bool) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) == 0 || !bytes.Contains(parts[0], []byte("@")) {
		return uevent{}, false // e.g. a libudev message
	}
	ev := uevent{Vars: map[string]string{}}
	for _, p := range parts[1:] {
		if k, v, ok := bytes.Cut(p, []byte("=")); ok {
			ev.Vars[string(k)] = string(v)
		}
	}
	ev.Action = ev.Vars["ACTION"]
	return ev, true
}

// ueventSocket listens to the kernel's uevents.
type ueventSocket struct{ f *os.File }

func openUevents() (*ueventSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	// A large buffer: coldplug makes bursts of events.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent bind: %w", err)
	}
	return &ueventSocket{f: os.NewFile(uintptr(fd), "uevent")}, nil
}

// Run calls f for each event until the socket is closed.
func (s *ueventSocket) Run(f func(uevent)) {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.f.Read(buf)
		if err != nil {
			return
		}
		if ev, ok := parseUevent(buf[:n]); ok {
			f(ev)
		}
	}
}

func (s *ueventSocket) Close() error { return s.f.Close() }
