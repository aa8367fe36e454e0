package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/modprobe"
)

// TestModprobeArgv0 runs distri-init through a symlink named modprobe,
// as the kernel runs /run/distri/modprobe (lib/modprobe.Install), and
// asks it what loading fs-vfat takes from Debian's cloud kernel tree.
func TestModprobeArgv0(t *testing.T) {
	k := distritest.DebianKernel(t)
	bin := distritest.StaticBinary(t, "distri.dev/distri/distri-init")
	dir := t.TempDir()
	link, sysctl := filepath.Join(dir, "run/distri/modprobe"), filepath.Join(dir, "sysctl")
	if err := modprobe.Install(link, bin, sysctl); err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(k.Modules)) // k.Modules is root/lib/modules
	rel := filepath.Join(k.Modules, k.Release)
	out, err := exec.Command(link, "-q", "-b", "-D", "-d", root, "-S", k.Release, "--", "fs-vfat").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", link, err, out)
	}
	if want := "insmod " + rel + "/kernel/fs/fat/fat.ko\ninsmod " + rel + "/kernel/fs/fat/vfat.ko\n"; string(out) != want {
		t.Errorf("modprobe -D fs-vfat printed %q, want %q", out, want)
	}
	out, err = exec.Command(link, "-D", "-d", root, "-S", k.Release, "fs-nonesuch").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "modprobe: fs-nonesuch: no such module") {
		t.Errorf("modprobe fs-nonesuch: %v, %q; want a failure naming it", err, out)
	}
}
