package earlyinit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseUevent(t *testing.T) {
	msg := "add@/devices/pci0000:00/0000:00:02.0/virtio0/block/vda\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:02.0/virtio0/block/vda\x00SUBSYSTEM=block\x00DEVNAME=vda\x00DEVTYPE=disk\x00SEQNUM=1234\x00"
	ev, ok := parseUevent([]byte(msg))
	if !ok {
		t.Fatal("parseUevent: not ok")
	}
	want := uevent{Action: "add", Vars: map[string]string{
		"ACTION": "add", "DEVPATH": "/devices/pci0000:00/0000:00:02.0/virtio0/block/vda",
		"SUBSYSTEM": "block", "DEVNAME": "vda", "DEVTYPE": "disk", "SEQNUM": "1234",
	}}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("parseUevent mismatch (-want +got):\n%s", diff)
	}
	if _, ok := parseUevent([]byte("libudev\x00\xfe\xed")); ok {
		t.Errorf("parseUevent(libudev message) = ok, want ignored")
	}
}
