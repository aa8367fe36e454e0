package blockdev

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"distri.dev/distri/lib/initconfig"
)

// seedGPT is a disk with a GPT of one partition named name, checksums
// valid.
func seedGPT(name string) []byte {
	disk := make([]byte, 3*512)
	disk[510], disk[511] = 0x55, 0xaa
	disk[446+4] = 0xee
	arr := disk[1024 : 1024+4*128]
	for i := range 16 {
		arr[i], arr[16+i] = 0xa0+byte(i), byte(i+1)
	}
	for j, u := range utf16.Encode([]rune(name)) {
		binary.LittleEndian.PutUint16(arr[56+2*j:], u)
	}
	hdr := disk[512 : 512+92]
	copy(hdr, "EFI PART")
	binary.LittleEndian.PutUint32(hdr[12:], 92)
	binary.LittleEndian.PutUint64(hdr[72:], 2)
	binary.LittleEndian.PutUint32(hdr[80:], 4)
	binary.LittleEndian.PutUint32(hdr[84:], 128)
	binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(arr))
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr))
	return disk
}

// FuzzScan lays out a disk and its first partition with arbitrary
// contents in a fake sysfs and /dev, as distri-init finds them at boot,
// and checks that Scan reports them and that each device matches the
// specs that name what Scan found (root=UUID=…, LABEL=…, PARTUUID=…,
// PARTLABEL=… and the /dev/disk/by-* paths a user may write instead).
func FuzzScan(f *testing.F) {
	ext4 := make([]byte, 2048)
	binary.LittleEndian.PutUint16(ext4[0x438:], 0xef53)
	copy(ext4[0x468:], "\x5f\x3b\x8a\x41\x0c\x2e\x4d\x7a\x9b\x61\x3e\x8f\x2c\x1d\x0a\x77")
	copy(ext4[0x478:], "data")
	luks := make([]byte, 512)
	copy(luks, "LUKS\xba\xbe\x00\x02")
	copy(luks[24:], "my root")
	copy(luks[168:], "BA0504EC-11B1-4015-B9FE-80939AF15A81")
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], 0x0d15ea5e)
	mbr[446+4] = 0x83
	mbr[510], mbr[511] = 0x55, 0xaa
	f.Add(mbr, ext4, "512")
	f.Add(seedGPT("root"), luks, "512")
	f.Add(seedGPT("Ω/x y"), ext4, "4096")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, disk, part []byte, blockSize string) {
		sys, dev := filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
		os.RemoveAll(sys)
		os.RemoveAll(dev)
		write := func(path string, b []byte) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		devices := filepath.Join(dir, "devices")
		write(filepath.Join(devices, "vda", "size"), []byte("16384\n"))
		write(filepath.Join(devices, "vda", "dev"), []byte("254:0\n"))
		write(filepath.Join(devices, "vda", "queue", "logical_block_size"), []byte(blockSize))
		write(filepath.Join(devices, "vda", "vda1", "size"), []byte("8192\n"))
		write(filepath.Join(devices, "vda", "vda1", "dev"), []byte("254:1\n"))
		write(filepath.Join(devices, "vda", "vda1", "partition"), []byte("1\n"))
		write(filepath.Join(dev, "vda"), disk)
		write(filepath.Join(dev, "vda1"), part)
		os.MkdirAll(sys, 0o755)
		os.Symlink("../devices/vda", filepath.Join(sys, "vda"))
		os.Symlink("../devices/vda/vda1", filepath.Join(sys, "vda1"))
		s := New(sys)
		s.devDir = dev
		got := s.Scan()
		if len(got) != 2 || got[0].Name != "vda" || got[1].Name != "vda1" || got[1].Parent != "vda" || got[1].Partition != 1 {
			t.Fatalf("Scan = %v, want vda and vda1", got)
		}
		for _, d := range got {
			_ = d.String()
			for kind, v := range map[string]string{"UUID": d.Info.UUID, "LABEL": d.Info.Label, "PARTUUID": d.PartUUID, "PARTLABEL": d.PartLabel} {
				if v == "" {
					continue
				}
				spec, err := initconfig.ParseDevice(kind + "=" + v)
				if err != nil {
					t.Fatalf("ParseDevice(%s=%q): %v", kind, v, err)
				}
				if !d.Matches(spec) {
					t.Errorf("%v does not match %v", d, spec)
				}
				by := initconfig.Device{Kind: "path", Value: "/dev/disk/by-" + strings.ToLower(kind) + "/" + v}
				if !d.Matches(by) {
					t.Errorf("%v does not match %v", d, by)
				}
				if other := got[1-indexOf(got, d)]; other.Matches(spec) && (kind == "PARTUUID" || kind == "PARTLABEL") {
					t.Errorf("%v matches %v of %v", other, spec, d)
				}
			}
		}
	})
}

func indexOf(ds []*Device, d *Device) int {
	for i := range ds {
		if ds[i] == d {
			return i
		}
	}
	return -1
}
