package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/squashfs"
	"distri.dev/distri/lib/store"
)

// SystemdBootPath is where Debian's systemd-boot-efi package keeps the
// boot loader, inside the package image.
const SystemdBootPath = "out/lib/systemd/boot/efi/systemd-bootx64.efi"

// BootFiles are what a disk image's EFI system partition needs from a
// root tree made by Make.
type BootFiles struct {
	Release     string // kernel release, e.g. 6.1.0-56-cloud-amd64
	Kernel      string // DIR/boot/vmlinuz-<release>
	Initramfs   string // DIR/boot/initramfs-<release>.img
	SystemdBoot string // the boot loader, extracted from its package into tmp
}

// FindBootFiles returns the newest kernel that the installer put into
// dir/boot (with its initramfs; see lib/install's kernel packages) and
// systemd-boot from the newest systemd-boot-efi package in dir's store,
// copied into tmp.
func FindBootFiles(dir, tmp string) (*BootFiles, error) {
	kernels, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	var bf BootFiles
	sort.Strings(kernels)
	for i := len(kernels) - 1; i >= 0; i-- {
		rel := strings.TrimPrefix(filepath.Base(kernels[i]), "vmlinuz-")
		initrd := filepath.Join(dir, "boot", "initramfs-"+rel+".img")
		if _, err := os.Stat(initrd); err == nil {
			bf = BootFiles{Release: rel, Kernel: kernels[i], Initramfs: initrd}
			break
		}
	}
	if bf.Kernel == "" {
		return nil, fmt.Errorf("no kernel with an initramfs in %s: install a kernel package (e.g. linux-image-6.1.0-56-cloud-amd64)", filepath.Join(dir, "boot"))
	}
	st, err := store.Open(filepath.Join(dir, strings.TrimPrefix(initconfig.Store, "/")))
	if err != nil {
		return nil, err
	}
	pkgs, err := st.List()
	if err != nil {
		return nil, err
	}
	var newest *pkgname.Name
	for i, n := range pkgs {
		if n.Pkg == "systemd-boot-efi" && (newest == nil || pkgname.Compare(n, *newest) > 0) {
			newest = &pkgs[i]
		}
	}
	if newest == nil {
		return nil, errors.New("no systemd-boot-efi package installed: the boot loader comes from it")
	}
	img, err := squashfs.Open(st.ImagePath(newest.String()))
	if err != nil {
		return nil, err
	}
	defer img.Close()
	f, err := img.FS().Open(SystemdBootPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", newest, err)
	}
	defer f.Close()
	bf.SystemdBoot = filepath.Join(tmp, "systemd-bootx64.efi")
	out, err := os.Create(bf.SystemdBoot)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(out, f); err != nil {
		out.Close()
		return nil, err
	}
	return &bf, out.Close()
}
