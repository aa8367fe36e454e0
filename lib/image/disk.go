package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/renameio/v2"

	"distri.dev/distri/lib/luks"
)

// Disk layout constants, in bytes.
const (
	mib         = 1 << 20
	espStart    = 1 * mib   // first partition, 1 MiB aligned
	espSize     = 256 * mib // FAT32 needs ≥ 65525 clusters: 256 MiB of 512-byte clusters
	rootStart   = espStart + espSize
	gptReserve  = 1 * mib // room for the backup GPT at the end
	DefaultSize = 8 << 30
	// DefaultSystemdBoot is where Debian's systemd-boot-efi puts the boot loader.
	DefaultSystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	// RootLabel is the ext4 label of the root file system.
	RootLabel = "distri-root"
	// ESPLabel is the FAT volume label of the EFI system partition.
	ESPLabel = "DISTRI-ESP"
	// luksName is the device-mapper name of the unlocked root.
	luksName = "root"
	// fakeTime is the time stamp of everything a seeded build creates
	// (2020-01-01 00:00:00 UTC), for mke2fs's E2FSPROGS_FAKE_TIME.
	fakeTime = 1577836800
)

// DiskOptions describe a bootable GPT disk image: an EFI system
// partition with systemd-boot, the kernel and the initramfs, and an ext4
// root partition, optionally inside LUKS2.
type DiskOptions struct {
	// Output is the image file to write, e.g. distri-disk.img. It is
	// replaced atomically.
	Output string
	// Size of the image in bytes; zero means 8 GiB. The file is sparse
	// unless Encrypt is set (the encrypted root fills its partition).
	Size int64
	// Root is a prepared root tree, e.g. /tmp/distri-root. Disk writes
	// etc/fstab into it.
	Root string
	// Kernel is a vmlinuz with an EFI stub, e.g. /boot/vmlinuz-6.1.0-56-cloud-amd64.
	Kernel string
	// Initramfs is an initramfs holding distri-init, e.g. from
	// distri-mkimage initramfs.
	Initramfs string
	// SystemdBoot is systemd-boot's EFI binary; empty means
	// /usr/lib/systemd/boot/efi/systemd-bootx64.efi (Debian's
	// systemd-boot-efi package).
	SystemdBoot string
	// Cmdline is appended to the kernel command line, e.g. "quiet".
	Cmdline string
	// Serial makes ttyS0 the only console (console=ttyS0,115200), for
	// VMs without a display. Otherwise the kernel logs to tty0 and ttyS0.
	Serial bool
	// Encrypt puts the root file system into a LUKS2 container unlocked
	// with Passphrase at boot.
	Encrypt    bool
	Passphrase []byte
	// KDF of the LUKS2 keyslot; the zero value means argon2id with 4
	// passes, 64 MiB and 1 lane, which a small VM's initramfs can afford.
	KDF luks.KDF
	// Seed, if not zero, makes the image a function of its inputs: the
	// GPT, partition, file system and LUKS UUIDs, the ext4 hash seed and
	// time stamps derive from it. Zero means random. The LUKS volume key
	// and salts never derive from it: they always come from crypto/rand,
	// so with Encrypt the root partition's bytes differ from run to run
	// while everything outside it stays identical. A seed is no secret
	// (it is on command lines and in CI logs); a key derived from it would
	// open the root without the passphrase.
	Seed uint64
	// BIOS, if set, makes the image boot with a legacy BIOS too (GRUB
	// in the MBR and a BIOS boot partition, see bios.go).
	BIOS *BIOSOptions
	// Log gets progress lines; nil means discard.
	Log *log.Logger

	// keyRand, for tests only, replaces crypto/rand as the source of the
	// LUKS volume key and salts, so that a test can check that nothing
	// but the key material varies. It is unexported so that no program
	// outside this package (distri-mkimage included) can set it.
	keyRand io.Reader
}

// Layout is what Disk chose; it tells how to boot and inspect the image.
type Layout struct {
	DiskGUID     string // GPT disk GUID
	ESPPartUUID  string // PARTUUID of partition 1
	RootPartUUID string // PARTUUID of partition 2
	BIOSPartUUID string // PARTUUID of partition 3, the BIOS boot partition (with BIOS)
	RootUUID     string // ext4 UUID of the root file system
	LUKSUUID     string // LUKS2 UUID, if encrypted
	ESPOffset    int64  // bytes
	ESPSize      int64
	RootOffset   int64 // of partition 2, bytes
	RootSize     int64
	Cmdline      string // the kernel command line of the boot entry
}

// Disk writes a bootable disk image as opts describe and returns its
// layout. It needs mkfs.ext4 (e2fsprogs ≥ 1.43 for -d and offset=), and
// debugfs when seeded, and runs without privileges: no mounts, no loop
// devices.
func Disk(ctx context.Context, opts DiskOptions) (*Layout, error) {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log.Printf(format, args...)
		}
	}
	if opts.Output == "" || opts.Root == "" || opts.Kernel == "" || opts.Initramfs == "" {
		return nil, errors.New("disk image: Output, Root, Kernel and Initramfs are required")
	}
	if opts.Encrypt && len(opts.Passphrase) == 0 {
		return nil, errors.New("disk image: Encrypt needs a Passphrase")
	}
	size := opts.Size
	if size == 0 {
		size = DefaultSize
	}
	size = size / mib * mib
	rootSize := size - rootStart - gptReserve
	if rootSize < 64*mib || (opts.Encrypt && rootSize < 64*mib+16*mib) {
		return nil, fmt.Errorf("disk image: size %d too small (need at least %d MiB)", opts.Size, (rootStart+gptReserve+80*mib)/mib)
	}
	if opts.SystemdBoot == "" {
		opts.SystemdBoot = DefaultSystemdBoot
	}
	for _, p := range []string{opts.Kernel, opts.Initramfs, opts.SystemdBoot} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat(opts.Root); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("disk image: root %s is not a directory", opts.Root)
	}

	ids := newIDs(opts.Seed)
	l := &Layout{
		DiskGUID:     ids.uuid("disk"),
		ESPPartUUID:  ids.uuid("esp"),
		RootPartUUID: ids.uuid("root-part"),
		RootUUID:     ids.uuid("root-fs"),
		ESPOffset:    espStart,
		ESPSize:      espSize,
		RootOffset:   rootStart,
		RootSize:     rootSize,
	}
	if opts.Encrypt {
		l.LUKSUUID = ids.uuid("luks")
	}
	l.Cmdline = cmdline(l, opts)
	var bios *biosBoot
	if opts.BIOS != nil {
		l.BIOSPartUUID = ids.uuid("bios-boot")
		var err error
		if bios, err = prepareBIOS(ctx, *opts.BIOS, filepath.Dir(opts.Output)); err != nil {
			return nil, err
		}
	}

	if err := writeFstab(opts.Root, l, opts.Seed != 0); err != nil {
		return nil, err
	}

	// The image is made in a temporary file (renameio) that mkfs.ext4 and
	// cryptsetup write by name, then synced and renamed over the output;
	// a failure removes it.
	f, err := renameio.NewPendingFile(opts.Output, renameio.WithTempDir(filepath.Dir(opts.Output)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return nil, err
	}
	defer f.Cleanup()
	tmp := f.Name()
	if err := f.Truncate(size); err != nil {
		return nil, err
	}

	start := time.Now()
	if opts.Encrypt {
		if err := encryptedRoot(ctx, f.File, tmp, l, opts, logf); err != nil {
			return nil, err
		}
	} else {
		logf("making ext4 root (%d MiB) from %s", rootSize/mib, opts.Root)
		if err := mkext4(ctx, tmp, rootStart, rootSize, opts.Root, l.RootUUID, opts.Seed != 0); err != nil {
			return nil, err
		}
	}
	logf("root file system written in %v", time.Since(start).Round(time.Millisecond))

	logf("writing GPT and EFI system partition (systemd-boot, kernel, initramfs)")
	if err := writeGPTAndESP(f.File, size, l, opts); err != nil {
		return nil, err
	}
	if bios != nil {
		logf("writing GRUB for legacy BIOS boot (MBR boot code, BIOS boot partition)")
		if err := bios.write(f); err != nil {
			return nil, err
		}
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return nil, err
	}
	logf("wrote %s in %v", opts.Output, time.Since(start).Round(time.Millisecond))
	return l, nil
}

// cmdline returns the boot entry's kernel command line.
func cmdline(l *Layout, opts DiskOptions) string {
	var args []string
	if opts.Encrypt {
		args = append(args, "rd.luks.uuid="+l.LUKSUUID, "rd.luks.name="+l.LUKSUUID+"="+luksName, "root=/dev/mapper/"+luksName)
	} else {
		args = append(args, "root=PARTUUID="+l.RootPartUUID)
	}
	args = append(args, "rw")
	if opts.Serial {
		args = append(args, "console=ttyS0,115200")
	} else {
		args = append(args, "console=tty0", "console=ttyS0,115200")
	}
	if s := strings.TrimSpace(opts.Cmdline); s != "" {
		args = append(args, s)
	}
	return strings.Join(args, " ")
}

// writeFstab writes ROOT/etc/fstab: the root by its file system UUID
// (inside the unlocked volume when encrypted, so no crypt device is
// named) and the ESP at /boot. It leaves an identical file alone, so a
// rebuild from the same tree sees the same tree.
func writeFstab(root string, l *Layout, seeded bool) error {
	fstab := fmt.Sprintf("# written by distri-mkimage disk\n"+
		"UUID=%s / ext4 defaults 0 1\n"+
		"PARTUUID=%s /boot vfat umask=0077 0 2\n", l.RootUUID, l.ESPPartUUID)
	etc := filepath.Join(root, "etc")
	p := filepath.Join(etc, "fstab")
	if b, err := os.ReadFile(p); err == nil && string(b) == fstab {
		return nil
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(fstab), 0o644); err != nil {
		return err
	}
	if seeded {
		t := time.Unix(fakeTime, 0)
		return os.Chtimes(p, t, t)
	}
	return nil
}

// mkext4 makes an ext4 file system of size bytes holding dir at offset
// in image, with mkfs.ext4 -d (no mount).
func mkext4(ctx context.Context, image string, offset, size int64, dir, uuid string, seeded bool) error {
	ext := "nodiscard,lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0"
	if offset > 0 {
		ext += fmt.Sprintf(",offset=%d", offset)
	}
	if seeded {
		ext += ",hash_seed=" + uuid
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-d", dir, "-U", uuid, "-L", RootLabel, "-E", ext,
		image, fmt.Sprintf("%dk", size/1024)}
	cmd := exec.CommandContext(ctx, "mkfs.ext4", args...)
	cmd.Env = os.Environ()
	if seeded {
		cmd.Env = append(cmd.Env, fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", fakeTime))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w\n%s", cmd.Args, err, out)
	}
	if seeded {
		return fixExt4Times(ctx, image, offset, dir)
	}
	return nil
}

// fixExt4Times sets the access, change and creation times of every
// inode mkfs.ext4 -d copied from dir to fakeTime, with debugfs: mkfs
// copies them from the tree, where reading (atime) and writing (ctime)
// change them. Modification times stay as in the tree.
func fixExt4Times(ctx context.Context, image string, offset int64, dir string) error {
	var script strings.Builder
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		if strings.ContainsAny(name, "\"\n\\") {
			return fmt.Errorf("root tree: %q: names with quotes, backslashes or newlines are not supported", name)
		}
		for _, field := range []string{"atime", "ctime", "crtime"} {
			fmt.Fprintf(&script, "sif \"%s\" %s @%d\n", name, field, fakeTime)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", fmt.Sprintf("%s?offset=%d", image, offset))
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %w\n%s", cmd.Args, err, out)
	}
	// debugfs exits 0 even when a command fails.
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(l, "sif:") || strings.Contains(l, "File not found") || strings.Contains(l, "Invalid") {
			return fmt.Errorf("%v: %s", cmd.Args, l)
		}
	}
	return nil
}

// encryptedRoot makes the ext4 file system in a temporary file next to
// the image and encrypts it into a LUKS2 container at the root
// partition's offset.
func encryptedRoot(ctx context.Context, img *os.File, imgPath string, l *Layout, opts DiskOptions, logf func(string, ...any)) error {
	const hdr = 16 * mib
	fsSize := l.RootSize - hdr
	plain, err := os.CreateTemp(filepath.Dir(imgPath), ".root-ext4-*")
	if err != nil {
		return err
	}
	defer os.Remove(plain.Name())
	defer plain.Close()
	logf("making ext4 root (%d MiB) from %s", fsSize/mib, opts.Root)
	if err := mkext4(ctx, plain.Name(), 0, fsSize, opts.Root, l.RootUUID, opts.Seed != 0); err != nil {
		return err
	}
	kdf := opts.KDF
	if kdf == (luks.KDF{}) {
		kdf = luks.KDF{Type: "argon2id", Time: 4, Memory: 64 << 10, Threads: 1}
	}
	fo := luks.FormatOptions{
		KDF:        kdf,
		SectorSize: 4096,
		UUID:       l.LUKSUUID,
		Label:      luksName,
	}
	// fo.Rand stays nil (crypto/rand) whatever the seed: see Seed.
	if opts.keyRand != nil {
		fo.Rand = opts.keyRand
	}
	logf("encrypting the root into LUKS2 (%d MiB, aes-xts-plain64)", l.RootSize/mib)
	dst := &offsetWriter{w: img, off: l.RootOffset}
	v, err := luks.Encrypt(dst, &ctxReader{ctx: ctx, r: plain}, opts.Passphrase, fo)
	if err != nil {
		return fmt.Errorf("encrypt root: %w", err)
	}
	clear(v.Key)
	return nil
}

// writeGPTAndESP partitions the image and fills the ESP.
func writeGPTAndESP(f *os.File, size int64, l *Layout, opts DiskOptions) error {
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithOpenMode(diskfs.ReadWrite), diskfs.WithSectorSize(diskfs.SectorSize512))
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Name(), err)
	}
	table := &gpt.Table{
		LogicalSectorSize:  512,
		PhysicalSectorSize: 512,
		ProtectiveMBR:      true,
		GUID:               l.DiskGUID,
		Partitions: []*gpt.Partition{
			{Index: 1, Start: uint64(espStart / 512), End: uint64((espStart+espSize)/512 - 1), Type: gpt.EFISystemPartition,
				Name: "esp", GUID: l.ESPPartUUID},
			{Index: 2, Start: uint64(rootStart / 512), End: uint64((rootStart+l.RootSize)/512 - 1), Type: gpt.LinuxRootX86_64,
				Name: "root", GUID: l.RootPartUUID},
		},
	}
	if opts.BIOS != nil {
		table.Partitions = append(table.Partitions, biosBootPartition(l))
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	esp, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32,
		VolumeLabel: ESPLabel, Reproducible: opts.Seed != 0})
	if err != nil {
		return fmt.Errorf("make FAT32 ESP: %w", err)
	}
	if err := fillESP(esp, l, opts); err != nil {
		return err
	}
	if opts.Seed != 0 {
		return fixLabelTime(f, f, espStart)
	}
	return nil
}
