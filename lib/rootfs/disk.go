package rootfs

import (
	"context"
	"os"
	"path/filepath"

	"distri.dev/distri/lib/image"
)

// Disk makes a root tree as Make does, in a temporary directory next to
// disk.Output, and writes it as a bootable disk image: the kernel and
// initramfs the installer put into its /boot and systemd-boot from its
// systemd-boot-efi package (FindBootFiles) go onto the EFI system
// partition, unless disk names them. opts.Dir is ignored.
func Disk(ctx context.Context, opts Options, disk image.DiskOptions) error {
	tmp, err := os.MkdirTemp(filepath.Dir(disk.Output), ".distri-mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	opts.Dir = filepath.Join(tmp, "root")
	if _, err := Make(ctx, opts); err != nil {
		return err
	}
	bf, err := FindBootFiles(opts.Dir, tmp)
	if err != nil {
		return err
	}
	if opts.Log != nil {
		opts.Log.Printf("kernel %s, systemd-boot from the package", bf.Release)
	}
	disk.Root = opts.Dir
	if disk.Kernel == "" {
		disk.Kernel, disk.Initramfs = bf.Kernel, bf.Initramfs
	}
	if disk.SystemdBoot == "" {
		disk.SystemdBoot = bf.SystemdBoot
	}
	_, err = image.Disk(ctx, disk)
	return err
}
