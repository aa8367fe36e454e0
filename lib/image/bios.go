package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Legacy BIOS boot: GRUB's boot.img in the MBR's boot code, its core
// image in a BIOS boot partition before the ESP, and grub/grub.cfg on
// the ESP booting the same kernel, initramfs and command line as the
// systemd-boot entry. What grub-install and grub-bios-setup do to a
// device, done to the image file: no mounts, no loop devices, no root.

// DefaultGrubDir is where Debian's grub-pc-bin puts GRUB's i386-pc
// images and modules.
const DefaultGrubDir = "/usr/lib/grub/i386-pc"

// grubModules go into the core image: everything the boot needs, so no
// module is loaded from the ESP (which holds none).
var grubModules = []string{
	"biosdisk", "part_gpt", "fat", "ext2", "normal", "configfile", "search",
	"linux", "echo", "test", "serial", "terminal",
}

// The BIOS boot partition fills the gap between the primary GPT (LBA 2
// to 33) and the ESP at 1 MiB: 1007 KiB for the core image (about 150
// KiB).
const (
	biosBootFirst = 34
	biosBootLast  = espStart/512 - 1
	biosBootIndex = 3 // partitions 1 (ESP) and 2 (root) keep their numbers
)

// Offsets in GRUB's i386-pc boot.img and diskboot.img (GRUB 2.06,
// include/grub/i386/pc/boot.h), as grub-bios-setup patches them.
const (
	bootKernelSector = 0x5c  // uint64: LBA of the core image's first sector
	bootDriveCheck   = 0x66  // 2-byte jmp replaced by nops for hard disks
	bootCodeEnd      = 0x1b8 // boot code ends; disk signature and partition table follow
	blocklistSize    = 12    // struct grub_boot_blocklist {u64 start; u16 len; u16 segment}
	diskbootSegment  = 0x820 // where diskboot loads the rest of the core image
)

// BIOSOptions make a disk image boot with a legacy BIOS too (GRUB, from
// Debian's grub-pc-bin and grub-common).
type BIOSOptions struct {
	// GrubDir holds GRUB's i386-pc boot.img, diskboot.img, kernel.img
	// and modules; empty means /usr/lib/grub/i386-pc.
	GrubDir string
	// Mkimage is grub-mkimage; empty means grub-mkimage in $PATH.
	Mkimage string
}

// biosBoot is a prepared boot sector and core image.
type biosBoot struct {
	boot []byte // the MBR's boot code, bytes 0 to bootCodeEnd
	core []byte // the core image, patched to load itself from biosBootFirst
}

// prepareBIOS makes GRUB's core image with grub-mkimage and patches it
// and boot.img for the fixed place of the BIOS boot partition. The
// core image depends only on GRUB's files: the kernel command line is
// in grub.cfg on the ESP.
func prepareBIOS(ctx context.Context, o BIOSOptions, tmpDir string) (*biosBoot, error) {
	dir := o.GrubDir
	if dir == "" {
		dir = DefaultGrubDir
	}
	mkimage := o.Mkimage
	if mkimage == "" {
		var err error
		if mkimage, err = exec.LookPath("grub-mkimage"); err != nil {
			return nil, fmt.Errorf("BIOS boot: %w (install grub-common)", err)
		}
	}
	boot, err := os.ReadFile(filepath.Join(dir, "boot.img"))
	if err != nil {
		return nil, fmt.Errorf("BIOS boot: %w (install grub-pc-bin or pass the GRUB i386-pc directory)", err)
	}
	if len(boot) != 512 || boot[510] != 0x55 || boot[511] != 0xaa {
		return nil, fmt.Errorf("BIOS boot: %s is not a 512-byte boot sector", filepath.Join(dir, "boot.img"))
	}

	tmp, err := os.MkdirTemp(tmpDir, ".grub-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	early := filepath.Join(tmp, "early.cfg")
	if err := os.WriteFile(early, []byte(grubEarlyConfig), 0o644); err != nil {
		return nil, err
	}
	corePath := filepath.Join(tmp, "core.img")
	args := append([]string{"-O", "i386-pc", "-d", dir, "-o", corePath, "-c", early, "-p", "(,gpt1)/grub"}, grubModules...)
	cmd := exec.CommandContext(ctx, mkimage, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("BIOS boot: %v: %w\n%s", cmd.Args, err, out)
	}
	core, err := os.ReadFile(corePath)
	if err != nil {
		return nil, err
	}
	if err := patchCore(core); err != nil {
		return nil, fmt.Errorf("BIOS boot: core image from %s: %w", mkimage, err)
	}

	b := bytes.Clone(boot[:bootCodeEnd])
	binary.LittleEndian.PutUint64(b[bootKernelSector:], biosBootFirst)
	// Boot from a hard disk even if the BIOS passes a floppy's drive
	// number, as grub-bios-setup does for hard disks.
	b[bootDriveCheck], b[bootDriveCheck+1] = 0x90, 0x90
	// grub-bios-setup keeps the target's BIOS parameter block (bytes 3
	// to 0x5a): on a fresh image that is zeros, as in boot.img.
	clear(b[3:0x5a])
	return &biosBoot{boot: b, core: core}, nil
}

// patchCore fills the blocklist at the end of the core image's first
// sector (diskboot.img): the rest of the image is one run of sectors
// right after it. grub-mkimage put the length there; a zero entry
// before it ends the list. No Reed-Solomon codes are added (the core
// image's redundancy field stays 0, which the loader accepts).
func patchCore(core []byte) error {
	sectors := (len(core) + 511) / 512
	if sectors < 2 {
		return fmt.Errorf("%d bytes, too small", len(core))
	}
	if max := biosBootLast - biosBootFirst + 1; sectors > max {
		return fmt.Errorf("%d sectors, the BIOS boot partition holds %d", sectors, max)
	}
	bl := core[512-blocklistSize : 512]
	if got := binary.LittleEndian.Uint16(bl[10:]); got != diskbootSegment {
		return fmt.Errorf("blocklist segment %#x, want %#x: not GRUB 2's i386-pc diskboot.img", got, diskbootSegment)
	}
	if got := int(binary.LittleEndian.Uint16(bl[8:])); got != sectors-1 {
		return fmt.Errorf("blocklist length %d, want %d sectors", got, sectors-1)
	}
	binary.LittleEndian.PutUint64(bl[0:], biosBootFirst+1)
	clear(core[512-2*blocklistSize : 512-blocklistSize])
	return nil
}

// write puts the boot code into the MBR (leaving the disk signature
// and the protective partition entry go-diskfs wrote) and the core image
// into the BIOS boot partition.
func (b *biosBoot) write(w io.WriterAt) error {
	if _, err := w.WriteAt(b.core, biosBootFirst*512); err != nil {
		return fmt.Errorf("BIOS boot: write core image: %w", err)
	}
	if _, err := w.WriteAt(b.boot, 0); err != nil {
		return fmt.Errorf("BIOS boot: write MBR boot code: %w", err)
	}
	return nil
}

// biosBootPartition is the GPT entry of the BIOS boot partition.
func biosBootPartition(l *Layout) *gpt.Partition {
	return &gpt.Partition{Index: biosBootIndex, Start: biosBootFirst, End: biosBootLast, Type: gpt.BIOSBoot,
		Name: "bios-boot", GUID: l.BIOSPartUUID}
}

// grubEarlyConfig is embedded in the core image: GRUB's console on the
// first serial port and the screen, as the kernel's. The prefix
// (,gpt1)/grub names the ESP of the disk the BIOS booted from, so
// normal mode then reads grub/grub.cfg from there.
const grubEarlyConfig = `serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
`

// grubConfig is grub/grub.cfg on the ESP (/boot/grub/grub.cfg in the
// booted system): one entry, booted at once.
func grubConfig(l *Layout) espFile {
	var args []string
	for _, a := range strings.Fields(l.Cmdline) {
		args = append(args, grubQuote(a))
	}
	cfg := fmt.Sprintf(`# written by distri-mkimage disk: legacy BIOS boot (UEFI boots loader/entries/distri.conf)
set default=0
set timeout=0
menuentry distri {
	echo 'distri: loading /distri/vmlinuz and /distri/initramfs.img'
	linux /distri/vmlinuz %s
	initrd /distri/initramfs.img
}
`, strings.Join(args, " "))
	return espFile{name: "grub/grub.cfg", data: []byte(cfg)}
}

// grubQuote quotes a word for GRUB's script parser when it holds
// anything but letters, digits and =,._/:+-.
func grubQuote(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("=,._/:+-", r))
	}) < 0
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
