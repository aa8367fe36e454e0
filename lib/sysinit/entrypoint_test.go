package sysinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeFuse writes a stand-in for distri-fuse: a script that records its
// arguments, says ready on fd 3 (or not, with ready false) and waits.
func fakeFuse(t *testing.T, ready bool) (bin, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	bin, argsFile = filepath.Join(dir, "distri-fuse"), filepath.Join(dir, "args")
	say := `echo "$5" >&3`
	if !ready {
		say = "exit 1"
	}
	script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\n" + say + "\nexec sleep 30\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, argsFile
}

func TestStartFuse(t *testing.T) {
	bin, argsFile := fakeFuse(t, true)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "ro")
	p, err := StartFuse(FuseOptions{Fuse: bin, Store: filepath.Join(dir, "roimg"), Mount: mnt, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("StartFuse: %v", err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), "--store "+filepath.Join(dir, "roimg")+" --readiness-fd 3 "+mnt; got != want {
		t.Errorf("distri-fuse args = %q, want %q", got, want)
	}
	if fi, err := os.Stat(mnt); err != nil || !fi.IsDir() {
		t.Errorf("mount point %s not made: %v", mnt, err)
	}
}

func TestStartFuseNotReady(t *testing.T) {
	bin, _ := fakeFuse(t, false)
	dir := t.TempDir()
	if p, err := StartFuse(FuseOptions{Fuse: bin, Store: dir, Mount: filepath.Join(dir, "ro"), Timeout: 10 * time.Second}); err == nil {
		p.Kill()
		t.Errorf("StartFuse with a daemon that exits = nil error, want one")
	}
	if _, err := StartFuse(FuseOptions{Fuse: filepath.Join(dir, "missing"), Store: dir, Mount: filepath.Join(dir, "ro")}); err == nil {
		t.Errorf("StartFuse with a missing binary = nil error, want one")
	}
}
