package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/distritest"
)

// runCmd runs distri-mkimage in-process with args and returns the exit
// code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli.RunArgs(t.Context(), newRootCmd, args...)
}

func TestInitramfsUsage(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"no output", []string{"initramfs", "--kernel-release", "6.1"}, cli.ExitUsage},
		{"no release", []string{"initramfs", "-o", "x"}, cli.ExitUsage},
		{"bad file", []string{"initramfs", "--kernel-release", "6.1", "-o", "x", "--file", "nohostpath"}, cli.ExitUsage},
		{"extra arg", []string{"initramfs", "--kernel-release", "6.1", "-o", "x", "y"}, cli.ExitUsage},
		{"dynamic init", []string{"initramfs", "--kernel-release", "6.1", "-o", filepath.Join(t.TempDir(), "x"), "--init", "/bin/true"}, cli.ExitError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := runCmd(t, tt.args...); code != tt.want {
				t.Errorf("distri-mkimage %v = exit %d, want %d; stderr:\n%s", tt.args, code, tt.want, errOut)
			}
		})
	}
}

func TestInitramfs(t *testing.T) {
	distritest.NeedTool(t, "depmod")
	k := distritest.DebianKernel(t)
	init := distritest.StaticBinary(t, "distri.dev/distri/distri-init")
	out := filepath.Join(t.TempDir(), "initramfs.img")
	code, stdout, stderr := runCmd(t, "initramfs", "-v", "--kernel-release", k.Release, "--modules", k.Modules,
		"--init", init, "--compression", "gzip", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got, want := stdout, out+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if !strings.Contains(stderr, "virtio_blk") {
		t.Errorf("-v output lacks the module list:\n%s", stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("%s is not gzip", out)
	}
}
