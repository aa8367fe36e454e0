package blockdev

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/blkid"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/initconfig"
)

func TestMatches(t *testing.T) {
	vda2 := &Device{
		Name: "vda2", Path: "/dev/vda2", Dev: "254:2", Partition: 2, Parent: "vda",
		Info:     blkid.Info{Type: "ext4", UUID: "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77", Label: "root"},
		PartUUID: "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", PartLabel: "distri root",
	}
	dm := &Device{Name: "dm-0", Path: "/dev/dm-0", Dev: "253:0", DMName: "cryptroot"}
	for _, tt := range []struct {
		name string
		dev  *Device
		spec string
		want bool
	}{
		{"uuid", vda2, "UUID=5F3B8A41-0C2E-4D7A-9B61-3E8F2C1D0A77", true},
		{"other uuid", vda2, "UUID=00000000-0c2e-4d7a-9b61-3e8f2c1d0a77", false},
		{"label", vda2, "LABEL=root", true},
		{"label is case sensitive", vda2, "LABEL=ROOT", false},
		{"partuuid", vda2, "PARTUUID=0B5E2C7A-94D1-4F3E-8A26-7C1D9E0F4B58", true},
		{"partlabel", vda2, "PARTLABEL=distri root", true},
		{"other partlabel", vda2, "PARTLABEL=other", false},
		{"path", vda2, "/dev/vda2", true},
		{"other path", vda2, "/dev/vda", false},
		{"major:minor", vda2, "254:2", true},
		{"by-uuid", vda2, "/dev/disk/by-uuid/5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77", true},
		{"by-label", vda2, "/dev/disk/by-label/root", true},
		{"by-partuuid", vda2, "/dev/disk/by-partuuid/0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", true},
		{"by-partlabel", vda2, "/dev/disk/by-partlabel/distri root", true},
		{"mapper", dm, "/dev/mapper/cryptroot", true},
		{"mapper other", dm, "/dev/mapper/other", false},
		{"dm path", dm, "/dev/dm-0", true},
		{"no label on a dm device", dm, "LABEL=", false},
		{"no partuuid on a dm device", dm, "PARTUUID=", false},
		{"no partlabel on a dm device", dm, "PARTLABEL=", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := initconfig.ParseDevice(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.dev.Matches(spec); got != tt.want {
				t.Errorf("%s.Matches(%q) = %v, want %v", tt.dev.Name, tt.spec, got, tt.want)
			}
		})
	}
}

// fakeSet is a Set over a sysfs and /dev made of plain files: an ext4
// image as vdb, a swap area as vdc, an empty drive (size 0) as sr0 and
// a device-mapper device that is not set up yet as dm-0.
func fakeSet(t *testing.T) (*Set, string) {
	distritest.NeedTool(t, "mkfs.ext4")
	distritest.NeedTool(t, "mkswap")
	dir := t.TempDir()
	sys, dev := filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
	os.MkdirAll(dev, 0o755)
	attrs := func(name string, kv ...string) {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		for i := 0; i < len(kv); i += 2 {
			os.MkdirAll(filepath.Dir(filepath.Join(sys, name, kv[i])), 0o755)
			if err := os.WriteFile(filepath.Join(sys, name, kv[i]), []byte(kv[i+1]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dev, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	attrs("sr0", "size", "0", "dev", "11:0")
	attrs("dm-0", "size", "2048", "dev", "253:0")
	attrs("vdb", "size", "16384", "dev", "254:16")
	attrs("vdc", "size", "2048", "dev", "254:32")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-U", "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77", "-L", "data", filepath.Join(dev, "vdb"), "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if err := os.Truncate(filepath.Join(dev, "vdc"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkswap", "-U", "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", filepath.Join(dev, "vdc")).CombinedOutput(); err != nil {
		t.Fatalf("mkswap: %v\n%s", err, out)
	}
	s := New(sys)
	s.devDir = dev
	return s, sys
}

func TestScanAndWait(t *testing.T) {
	s, sys := fakeSet(t)
	var got []string
	for _, d := range s.Scan() {
		got = append(got, d.Name+" "+d.String())
	}
	dev := s.devDir
	want := []string{
		"vdb " + dev + "/vdb (ext4 UUID=5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77 LABEL=data)",
		"vdc " + dev + "/vdc (swap UUID=0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Scan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	ctx := context.Background()
	spec, _ := initconfig.ParseDevice("LABEL=data")
	d, err := s.Wait(ctx, "data disk", time.Second, func(d *Device) bool { return d.Matches(spec) })
	if err != nil || d.Name != "vdb" || d.Size != 16384*512 {
		t.Errorf("Wait(LABEL=data) = %+v, %v; want vdb of 8 MiB", d, err)
	}

	// A device-mapper device shows up once it has its name; Changed
	// wakes the waiter before the next poll would.
	go func() {
		time.Sleep(30 * time.Millisecond)
		os.MkdirAll(filepath.Join(sys, "dm-0", "dm"), 0o755)
		os.WriteFile(filepath.Join(sys, "dm-0", "dm", "name"), []byte("cryptdata\n"), 0o644)
		s.Changed()
	}()
	mapper, _ := initconfig.ParseDevice("/dev/mapper/cryptdata")
	if d, err := s.Wait(ctx, "/dev/mapper/cryptdata", 5*time.Second, func(d *Device) bool { return d.Matches(mapper) }); err != nil || d.Name != "dm-0" {
		t.Errorf("Wait(/dev/mapper/cryptdata) = %+v, %v; want dm-0", d, err)
	}

	missing, _ := initconfig.ParseDevice("UUID=00000000-0000-0000-0000-000000000000")
	_, err = s.Wait(ctx, "root "+missing.String(), 150*time.Millisecond, func(d *Device) bool { return d.Matches(missing) })
	var we *WaitError
	if !errors.As(err, &we) {
		t.Fatalf("Wait(missing) = %v, want a WaitError", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "gave up waiting for root UUID=00000000-0000-0000-0000-000000000000 after 150ms: block devices seen: "+dev+"/dm-0, "+dev+"/vdb (ext4") {
		t.Errorf("Wait(missing) error = %q", msg)
	}
}

func TestWaitNoDevices(t *testing.T) {
	s := New(t.TempDir())
	s.NoneHint = "is the disk's driver in the initramfs?"
	_, err := s.Wait(context.Background(), "root LABEL=x", 0, func(*Device) bool { return true })
	if want := "gave up waiting for root LABEL=x after 0s: no block devices at all (is the disk's driver in the initramfs?)"; err == nil || err.Error() != want {
		t.Errorf("Wait = %v, want %q", err, want)
	}
}
