package earlyinit

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseUevent parses arbitrary netlink messages (any process that
// may send to the uevent group reaches the parser, as does a libudev
// message) and checks what the event says against the message.
func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("add@/devices/pci0000:00/0000:00:02.0/virtio0/block/vda\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:02.0/virtio0/block/vda\x00SUBSYSTEM=block\x00DEVNAME=vda\x00DEVTYPE=disk\x00SEQNUM=1234\x00"))
	f.Add([]byte("add@/devices/virtual/misc/fuse\x00ACTION=add\x00MODALIAS=devname:fuse\x00SUBSYSTEM=misc\x00"))
	f.Add([]byte("change@/x\x00ACTION=change\x00A=1\x00A=2\x00=\x00noequals\x00"))
	f.Add([]byte("libudev\x00\xfe\xed\xca\xfe"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, ok := parseUevent(msg)
		if !ok {
			if head, _, _ := bytes.Cut(msg, []byte{0}); bytes.Contains(head, []byte("@")) {
				t.Errorf("parseUevent(%q) ignored a kernel message", msg)
			}
			return
		}
		if ev.Action != ev.Vars["ACTION"] {
			t.Errorf("action %q, ACTION=%q", ev.Action, ev.Vars["ACTION"])
		}
		// Every variable is a whole KEY=VALUE field of the message (the
		// last one of its key).
		fields := strings.Split(string(msg), "\x00")[1:]
		for k, v := range ev.Vars {
			last := ""
			for _, f := range fields {
				if fk, fv, ok := strings.Cut(f, "="); ok && fk == k {
					last = fv
				}
			}
			if last != v {
				t.Errorf("parseUevent(%q): %s=%q, the message's last is %q", msg, k, v, last)
			}
		}
	})
}
