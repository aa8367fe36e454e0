package image

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem"

	"distri.dev/distri/lib/distritest"
)

// TestDiskBIOS checks the legacy BIOS parts of an image as
// grub-bios-setup would leave them: boot.img in the MBR pointing at the
// core image, the protective partition entry kept, the core image's
// blocklist, the BIOS boot partition, grub.cfg on the ESP. Two seeded
// builds are byte-identical. (The VM test that boots it with SeaBIOS is
// distri-mkimage's TestDiskBootBIOS.)
func TestDiskBIOS(t *testing.T) {
	sfdisk := distritest.NeedTool(t, "sfdisk")
	mkimage := distritest.NeedTool(t, "grub-mkimage")
	boot, err := os.ReadFile(filepath.Join(DefaultGrubDir, "boot.img"))
	if err != nil {
		distritest.Skip(t, "no GRUB i386-pc files: %v (install grub-pc-bin)", err)
	}
	opts := inputs(t)
	opts.Cmdline = "quiet x='a b'"
	opts.BIOS = &BIOSOptions{Mkimage: mkimage}
	onlyMkfs(t)
	l, err := Disk(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(sfdisk, "--dump", opts.Output).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v\n%s", err, out)
	}
	for _, want := range []string{
		"start=        2048, size=      524288, type=c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
		"start=          34, size=        2014, type=21686148-6449-6e6f-744e-656564454649, uuid=" + l.BIOSPartUUID + `, name="bios-boot"`,
	} {
		if !strings.Contains(strings.ToLower(string(out)), want) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", want, out)
		}
	}

	img, err := os.ReadFile(opts.Output)
	if err != nil {
		t.Fatal(err)
	}
	mbr := img[:512]
	// Boot code: boot.img with the core image's LBA and the hard disk
	// patch, nothing else changed.
	if got := binary.LittleEndian.Uint64(mbr[0x5c:]); got != 34 {
		t.Errorf("boot.img kernel sector = %d, want 34", got)
	}
	if !bytes.Equal(mbr[0x66:0x68], []byte{0x90, 0x90}) {
		t.Errorf("boot.img drive check = % x, want nops", mbr[0x66:0x68])
	}
	if !bytes.Equal(mbr[0x68:0x1b8], boot[0x68:0x1b8]) || !bytes.Equal(mbr[:3], boot[:3]) || mbr[0x64] != 0xff {
		t.Errorf("MBR boot code differs from boot.img beyond the patched fields")
	}
	// The protective MBR: one 0xee entry from LBA 1, not bootable.
	if pe := mbr[0x1be:0x1ce]; pe[0] != 0 || pe[4] != 0xee || binary.LittleEndian.Uint32(pe[8:]) != 1 {
		t.Errorf("protective MBR entry = % x", pe)
	}
	if !bytes.Equal(mbr[510:], []byte{0x55, 0xaa}) {
		t.Errorf("MBR signature = % x", mbr[510:])
	}
	// Core image: diskboot.img's blocklist loads the sectors after it.
	core := img[34*512 : 2048*512]
	bl := core[512-12 : 512]
	n := binary.LittleEndian.Uint16(bl[8:])
	if start := binary.LittleEndian.Uint64(bl); start != 35 || n < 100 || binary.LittleEndian.Uint16(bl[10:]) != 0x820 {
		t.Errorf("core image blocklist = % x: want start 35, ≥ 100 sectors, segment 0x820", bl)
	}
	if !bytes.Equal(core[512-24:512-12], make([]byte, 12)) {
		t.Errorf("core image blocklist not terminated: % x", core[512-24:512-12])
	}
	if tail := core[(int(n)+1)*512:]; !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Errorf("BIOS boot partition has data past the core image's %d sectors", n+1)
	}

	cfg := readESPFile(t, opts.Output, "/grub/grub.cfg")
	want := "\tlinux /distri/vmlinuz root=PARTUUID=" + l.RootPartUUID + ` rw console=tty0 console=ttyS0,115200 quiet 'x='\''a' 'b'\''` + "'\n"
	if !strings.Contains(cfg, want) || !strings.Contains(cfg, "\tinitrd /distri/initramfs.img\n") {
		t.Errorf("grub.cfg lacks %q and the initrd:\n%s", want, cfg)
	}

	// Same seed, same bytes.
	first := sha256sum(t, opts.Output)
	opts.Output = filepath.Join(t.TempDir(), "again.img")
	if _, err := Disk(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	if again := sha256sum(t, opts.Output); again != first {
		t.Errorf("two seeded --bios builds differ: sha256 %s and %s", first, again)
	}
}

func TestGrubQuote(t *testing.T) {
	for in, want := range map[string]string{
		"root=PARTUUID=ab-12":  "root=PARTUUID=ab-12",
		"console=ttyS0,115200": "console=ttyS0,115200",
		"a$b":                  "'a$b'",
		"it's":                 `'it'\''s'`,
		"":                     "''",
	} {
		if got := grubQuote(in); got != want {
			t.Errorf("grubQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// readESPFile returns a file of the image's ESP, read with go-diskfs.
func readESPFile(t *testing.T, image, name string) string {
	t.Helper()
	d, err := diskfs.Open(image, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err == nil {
		defer d.Close()
		var esp filesystem.FileSystem
		if esp, err = d.GetFilesystem(1); err == nil {
			var f filesystem.File
			if f, err = esp.OpenFile(name, os.O_RDONLY); err == nil {
				var b []byte
				if b, err = io.ReadAll(f); err == nil {
					return string(b)
				}
			}
		}
	}
	t.Fatalf("ESP %s of %s: %v", name, image, err)
	return ""
}
