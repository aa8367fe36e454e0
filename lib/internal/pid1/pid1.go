// Package pid1 holds what both stages of distri-init need as PID 1: a
// logger that writes to the console, mounting the API file systems,
// starting a program on the console, and powering off.
package pid1

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/internal/mountinfo"
)

// Prefix starts every line distri-init logs; VM tests assert on it.
const Prefix = "distri-init: "

// NewLogger returns a logger that writes lines prefixed "distri-init: "
// to /dev/console and, if it is a different file, to stderr (as
// gokrazy's teelogger).
func NewLogger() *log.Logger {
	var ws []io.Writer
	con, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == nil {
		ws = append(ws, con)
	}
	if con == nil || !sameFile(con, os.Stderr) {
		ws = append(ws, os.Stderr)
	}
	return log.New(io.MultiWriter(ws...), Prefix, 0)
}

func sameFile(a, b *os.File) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(int(a.Fd()), &sa) != nil || unix.Fstat(int(b.Fd()), &sb) != nil {
		return false
	}
	if sa.Mode&unix.S_IFMT == unix.S_IFCHR && sb.Mode&unix.S_IFMT == unix.S_IFCHR {
		return sa.Rdev == sb.Rdev
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// Mount is one file system to mount.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
}

// APIMounts are the kernel's API file systems, in mount order.
var APIMounts = []Mount{
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
}

// MountAll mounts each of ms that is not mounted yet, creating the
// mount point. It reports what it mounted.
func MountAll(ms []Mount) ([]string, error) {
	var done []string
	for _, m := range ms {
		if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return done, err
		}
		if IsMountpoint(m.Target) {
			continue
		}
		if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
			return done, fmt.Errorf("mount %s on %s: %w", m.FSType, m.Target, err)
		}
		done = append(done, m.Target)
	}
	return done, nil
}

// IsMountpoint reports whether p is the root of a mount, by comparing
// its device with its parent's (a bind mount of the same file system
// is not detected, which is enough here).
func IsMountpoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(p+"/..", &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}

// Mountpoints returns the mount points in /proc/self/mountinfo order.
func Mountpoints() ([]string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Point
	}
	return out, nil
}

// Halt says how to end.
type Halt int

// Ways to end.
const (
	PowerOff Halt = iota
	Reboot
)

func (h Halt) String() string {
	if h == Reboot {
		return "rebooting"
	}
	return "powering off"
}

// Final syncs and powers off or reboots now. It returns only if the
// kernel refused (when not PID 1 or without CAP_SYS_BOOT).
func Final(h Halt) error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if h == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("reboot(2): %w", err)
	}
	return nil
}

// OpenConsole opens /dev/console for a program's standard I/O.
func OpenConsole() (*os.File, error) {
	return os.OpenFile("/dev/console", os.O_RDWR|unix.O_CLOEXEC, 0)
}

// ReadHostname returns the first line of /etc/hostname in root.
func ReadHostname(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l, nil
		}
	}
	return "", errors.New(path + " is empty")
}

// Since formats a duration since start for log lines, e.g. "1.234s".
func Since(start time.Time) string {
	return time.Since(start).Round(time.Millisecond).String()
}

// ConsoleProcAttr returns the attributes to start a program on the
// console as a session leader with the console as its controlling
// terminal, as getty does. Close con after the process started.
func ConsoleProcAttr(env []string) (attr *os.ProcAttr, con *os.File, err error) {
	con, err = OpenConsole()
	if err != nil {
		return nil, nil, err
	}
	return &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{con, con, con},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	}, con, nil
}
