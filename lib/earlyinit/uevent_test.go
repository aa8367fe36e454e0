package earlyinit

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/blkid"
	"distri.dev/distri/lib/initconfig"
)

func TestMatches(t *testing.T) {
	vda2 := &blockDev{
		Name: "vda2", Path: "/dev/vda2", Dev: "254:2", Partition: 2, Parent: "vda",
		Info:     blkid.Info{Type: "ext4", UUID: "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77", Label: "root"},
		PartUUID: "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", PartLabel: "distri root",
	}
	dm := &blockDev{Name: "dm-0", Path: "/dev/dm-0", Dev: "253:0", DMName: "cryptroot"}
	for _, tt := range []struct {
		name string
		dev  *blockDev
		spec string
		want bool
	}{
		{"uuid", vda2, "UUID=5F3B8A41-0C2E-4D7A-9B61-3E8F2C1D0A77", true},
		{"other uuid", vda2, "UUID=00000000-0c2e-4d7a-9b61-3e8f2c1d0a77", false},
		{"label", vda2, "LABEL=root", true},
		{"label is case sensitive", vda2, "LABEL=ROOT", false},
		{"partuuid", vda2, "PARTUUID=0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", true},
		{"partlabel", vda2, "PARTLABEL=distri root", true},
		{"path", vda2, "/dev/vda2", true},
		{"other path", vda2, "/dev/vda", false},
		{"major:minor", vda2, "254:2", true},
		{"by-uuid", vda2, "/dev/disk/by-uuid/5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77", true},
		{"by-partuuid", vda2, "/dev/disk/by-partuuid/0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", true},
		{"mapper", dm, "/dev/mapper/cryptroot", true},
		{"mapper other", dm, "/dev/mapper/other", false},
		{"no partuuid on a dm device", dm, "PARTUUID=", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := initconfig.ParseDevice(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.dev.matches(spec); got != tt.want {
				t.Errorf("%s.matches(%q) = %v, want %v", tt.dev.Name, tt.spec, got, tt.want)
			}
		})
	}
}

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
