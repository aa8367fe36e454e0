package distritest

import (
	"fmt"
	"os"
	"testing"
)

// seabios is QEMU's default x86 firmware, from Debian's seabios package
// (a dependency of qemu-system-x86).
const seabios = "/usr/share/seabios/bios-256k.bin"

// NeedSeaBIOS gates legacy BIOS VM tests: QEMU and SeaBIOS.
func NeedSeaBIOS(t testing.TB) string {
	t.Helper()
	qemu := NeedQEMU(t)
	if _, err := os.Stat(seabios); err != nil {
		Skip(t, "no BIOS firmware: %v (install seabios)", err)
	}
	return qemu
}

// StartBIOSVM boots a disk image (a raw file attached as a virtio disk)
// with SeaBIOS, as a legacy PC boots: the firmware runs the MBR's boot
// code. TCG, serial console on stdio, no reboot; the guest is killed
// when the test ends and its console log printed if the test failed.
func StartBIOSVM(t testing.TB, disk string, memoryMB int) *Console {
	t.Helper()
	qemu := NeedSeaBIOS(t)
	if memoryMB == 0 {
		memoryMB = 512
	}
	args := []string{
		"-machine", "q35,accel=tcg", "-cpu", "max", "-bios", seabios,
		"-m", fmt.Sprint(memoryMB), "-smp", "1",
		"-display", "none", "-vga", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-nodefaults",
		"-drive", "file=" + disk + ",if=virtio,format=raw",
	}
	return startConsole(t, qemu, args)
}
