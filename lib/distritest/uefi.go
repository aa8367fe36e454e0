package distritest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// OVMF firmware files of Debian's ovmf package.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// NeedOVMF gates UEFI VM tests: QEMU and Debian's ovmf firmware.
func NeedOVMF(t testing.TB) {
	t.Helper()
	NeedQEMU(t)
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			Skip(t, "no UEFI firmware: %v (install ovmf)", err)
		}
	}
}

var sdbootOnce struct {
	sync.Mutex
	path string
}

// SystemdBoot returns systemd-boot's EFI binary (systemd-bootx64.efi)
// from Debian's systemd-boot-efi package, fetched with apt-get download
// into CacheDir and unpacked there on first use.
func SystemdBoot(t testing.TB) string {
	t.Helper()
	sdbootOnce.Lock()
	defer sdbootOnce.Unlock()
	if sdbootOnce.path != "" {
		return sdbootOnce.path
	}
	NeedTool(t, "apt-get")
	NeedTool(t, "dpkg-deb")
	p, err := fetchSystemdBoot(CacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	sdbootOnce.path = p
	return p
}

func fetchSystemdBoot(cache string) (string, error) {
	lock, err := os.OpenFile(filepath.Join(cache, ".systemd-boot.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "systemd-boot")
	efi := filepath.Join(dir, "usr", "lib", "systemd", "boot", "efi", "systemd-bootx64.efi")
	if _, err := os.Stat(efi); err == nil {
		return efi, nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	const pkg = "systemd-boot-efi"
	matches, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(matches) == 0 {
		cmd := exec.Command("apt-get", "download", pkg)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %w\n%s", cmd.Args, err, out)
		}
		matches, _ = filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
		if len(matches) == 0 {
			return "", fmt.Errorf("apt-get download %s wrote no .deb into %s", pkg, debs)
		}
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", matches[len(matches)-1], tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w\n%s", matches[len(matches)-1], err, out)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	if _, err := os.Stat(efi); err != nil {
		return "", fmt.Errorf("%s holds no systemd-bootx64.efi: %w", matches[len(matches)-1], err)
	}
	return efi, nil
}

// UEFIVMOptions describe a QEMU guest that boots a disk image through
// OVMF firmware: TCG, serial console on stdio, no reboot.
type UEFIVMOptions struct {
	// Disk is a raw image attached as a virtio disk.
	Disk string
	// MemoryMB defaults to 512.
	MemoryMB int
	// Disks are further raw images, attached read-only as virtio disks
	// after Disk (/dev/vdb, …).
	Disks []string
	// CPUs defaults to 1.
	CPUs int
}

// StartUEFIVM boots a disk image with OVMF (the code read-only, a
// private copy of the variables) and returns its console. The guest is
// killed when the test ends; its console log is printed if the test
// failed.
func StartUEFIVM(t testing.TB, opts UEFIVMOptions) *Console {
	t.Helper()
	NeedOVMF(t)
	qemu := NeedQEMU(t)
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 512
	}
	if opts.CPUs == 0 {
		opts.CPUs = 1
	}
	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	b, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-machine", "q35,accel=tcg", "-cpu", "max",
		"-m", fmt.Sprint(opts.MemoryMB), "-smp", fmt.Sprint(opts.CPUs),
		"-display", "none", "-vga", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-nodefaults",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-drive", "file=" + opts.Disk + ",if=virtio,format=raw",
	}
	for _, d := range opts.Disks {
		args = append(args, "-drive", "file="+d+",if=virtio,format=raw,readonly=on")
	}
	return startConsole(t, qemu, args)
}
