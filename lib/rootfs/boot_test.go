package rootfs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/rootfs"
)

// A Debian-imported glibc (libc6) provides the loader; systemd-boot comes
// from the systemd-boot-efi package; the newest kernel with an initramfs
// in /boot is the one to boot; login's PAM stack and /etc/profile exist.
func TestDebianBaseTree(t *testing.T) {
	libc6 := mirrortest.Package{Name: "libc6-amd64-2.36-9-1", Files: map[string]string{
		"out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "loader\n",
	}}
	sdboot := mirrortest.Package{Name: "systemd-boot-efi-amd64-252.39-1", Files: map[string]string{
		rootfs.SystemdBootPath: "MZ systemd-boot\n",
	}}
	r := mirrortest.NewRepo(t, libc6, sdboot)
	dir := makeTree(t, r, "libc6", "systemd-boot-efi")

	if got, err := os.Readlink(filepath.Join(dir, "lib64/ld-linux-x86-64.so.2")); err != nil ||
		got != "/ro/libc6-amd64-2.36-9-1/out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" {
		t.Errorf("loader link = %q, %v", got, err)
	}
	for _, f := range []string{"etc/pam.d/common-auth", "etc/pam.d/common-account", "etc/pam.d/common-password", "etc/pam.d/common-session", "etc/profile"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %q, %v", f, b, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/pam.d/common-auth")); !strings.Contains(string(b), "pam_unix.so") {
		t.Errorf("common-auth does not use pam_unix:\n%s", b)
	}

	if _, err := rootfs.FindBootFiles(dir, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("FindBootFiles without a kernel: %v, want an error naming the missing kernel", err)
	}
	boot := filepath.Join(dir, "boot")
	for name, content := range map[string]string{
		"vmlinuz-6.1.0-1-cloud-amd64": "old kernel", "initramfs-6.1.0-1-cloud-amd64.img": "old initramfs",
		"vmlinuz-6.1.0-2-cloud-amd64": "kernel", "initramfs-6.1.0-2-cloud-amd64.img": "initramfs",
		"vmlinuz-6.1.0-3-cloud-amd64": "kernel without initramfs",
	} {
		if err := os.WriteFile(filepath.Join(boot, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bf, err := rootfs.FindBootFiles(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bf.Release != "6.1.0-2-cloud-amd64" || bf.Kernel != filepath.Join(boot, "vmlinuz-6.1.0-2-cloud-amd64") ||
		bf.Initramfs != filepath.Join(boot, "initramfs-6.1.0-2-cloud-amd64.img") {
		t.Errorf("FindBootFiles = %+v", bf)
	}
	if b, err := os.ReadFile(bf.SystemdBoot); err != nil || string(b) != "MZ systemd-boot\n" {
		t.Errorf("systemd-boot = %q, %v", b, err)
	}
}

func TestFindBootFilesNoSystemdBoot(t *testing.T) {
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "hello-amd64-2.12-1"})
	dir := makeTree(t, r, "hello")
	for _, f := range []string{"boot/vmlinuz-6.1.0-2-cloud-amd64", "boot/initramfs-6.1.0-2-cloud-amd64.img"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rootfs.FindBootFiles(dir, t.TempDir()); err == nil || !strings.Contains(err.Error(), "systemd-boot-efi") {
		t.Errorf("FindBootFiles without systemd-boot-efi: %v", err)
	}
}
