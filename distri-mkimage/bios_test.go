package main

// VM tests of distri-mkimage disk --bios: the image boots with SeaBIOS
// (no UEFI) through GRUB's boot.img and core image into the same kernel,
// initramfs and command line, and the same image still boots with OVMF.

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"distri.dev/distri/lib/distritest"
)

// expectGRUB waits for GRUB to boot the ESP's grub.cfg entry and the
// kernel to start with it, and returns the submatches of options on the
// kernel command line.
func expectGRUB(t *testing.T, c *distritest.Console, options string) []string {
	t.Helper()
	c.Expect("Booting `distri'", bootTimeout)
	c.Expect(`distri: loading /distri/vmlinuz and /distri/initramfs.img`, bootTimeout)
	m := c.Expect(`Command line: BOOT_IMAGE=/distri/vmlinuz `+options+`$`, bootTimeout)
	c.Expect(`^distri-init: initramfs stage, mounted /dev /proc /sys /run`, bootTimeout)
	return m
}

func setupBIOS(t *testing.T) diskInputs {
	t.Helper()
	distritest.NeedSeaBIOS(t)
	distritest.NeedTool(t, "grub-mkimage")
	return setupDisk(t)
}

// TestDiskBootBIOS boots one --bios image twice: with SeaBIOS through
// GRUB, then with OVMF through systemd-boot.
func TestDiskBootBIOS(t *testing.T) {
	in := setupBIOS(t)
	img := filepath.Join(t.TempDir(), "distri.img")
	mkdisk(t, in.args(img, "--bios"))

	c := distritest.StartBIOSVM(t, img, 0)
	m := expectGRUB(t, c, `root=PARTUUID=([0-9a-f-]{36}) rw console=ttyS0,115200`)
	c.Expect(`^distri-init: waiting for root PARTUUID=`+regexp.QuoteMeta(m[1]), bootTimeout)
	c.Expect(`^distri-init: mounted /dev/vda2 on /sysroot \(ext4, rw\)`, bootTimeout)
	expectRoot(t, c, "/dev/vda2")

	c = distritest.StartUEFIVM(t, distritest.UEFIVMOptions{Disk: img})
	expectUEFI(t, c, `root=PARTUUID=`+regexp.QuoteMeta(m[1])+` rw console=ttyS0,115200`)
	expectRoot(t, c, "/dev/vda2")
}

func TestDiskBootBIOSEncrypted(t *testing.T) {
	in := setupBIOS(t)
	const pass = "correct horse battery staple"
	img := filepath.Join(t.TempDir(), "distri.img")
	pf := img + ".pass"
	if err := os.WriteFile(pf, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	mkdisk(t, in.args(img, "--bios", "--encrypt", "--passphrase-file", pf))
	c := distritest.StartBIOSVM(t, img, 0)
	m := expectGRUB(t, c, `rd.luks.uuid=(\S+) rd.luks.name=\S+=root root=/dev/mapper/root rw console=ttyS0,115200`)
	c.Expect(`^distri-init: found /dev/vda2 \(crypto_LUKS UUID=`+regexp.QuoteMeta(m[1]), bootTimeout)
	c.Expect(`^distri-init: enter passphrase for root \(/dev/vda2\): `, bootTimeout)
	c.Send(pass)
	c.Expect(`^distri-init: unlocked /dev/vda2 with keyslot 0`, bootTimeout)
	expectRoot(t, c, "/dev/dm-0")
}
