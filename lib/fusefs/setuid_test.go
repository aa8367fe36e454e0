package fusefs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
)

// TestSetuidOnlyNewest attacks the update of a setuid program: after a
// newer revision is installed (and until gc), the old revision's copy
// at /ro/<old>/bin/id must not run as root any more, and its file
// capabilities must be gone, also when the kernel had cached its
// attributes before the rescan. The newest revision keeps both; removing
// it gives them back to the old one.
func TestSetuidOnlyNewest(t *testing.T) {
	setpriv := distritest.NeedTool(t, "setpriv")
	id := distritest.NeedTool(t, "id")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	mk := func(full string) {
		src := filepath.Join(t.TempDir(), full)
		writeTree(t, src, map[string]string{"bin/": ""})
		copyFile(t, id, filepath.Join(src, "bin/id"), 0o755|os.ModeSetuid)
		copyFile(t, self, filepath.Join(src, "bin/capeff"), 0o755)
		if err := unix.Setxattr(filepath.Join(src, "bin/capeff"), "security.capability", distritest.CapNetRaw(), 0); err != nil {
			t.Fatal(err)
		}
		packDir(t, store, full, src, nil)
	}
	mk("priv-amd64-1-1")
	srv, mnt, _ := mountStore(t, store)
	asNobody := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, args...)...)
		cmd.Env = append(os.Environ(), helperEnv+"=capeff")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", cmd.Args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	check := func(full string, privileged bool) {
		t.Helper()
		p := filepath.Join(mnt, full, "bin/id")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode()&os.ModeSetuid != 0; got != privileged {
			t.Errorf("%s mode %v: setuid %v, want %v", p, fi.Mode(), got, privileged)
		}
		wantUID := map[bool]string{true: "0", false: "65534"}[privileged]
		if got := asNobody(p, "-u"); got != wantUID {
			t.Errorf("%s -u as nobody = %q, want %q", p, got, wantUID)
		}
		capeff := filepath.Join(mnt, full, "bin/capeff")
		wantCap := map[bool]string{true: "0000000000002000", false: "0000000000000000"}[privileged]
		if got := asNobody(capeff); got != wantCap {
			t.Errorf("CapEff of %s as nobody = %q, want %q", capeff, got, wantCap)
		}
		_, err = unix.Getxattr(capeff, "security.capability", make([]byte, 256))
		if got := err == nil; got != privileged {
			t.Errorf("getxattr %s security.capability = %v, want present %v", capeff, err, privileged)
		}
	}
	check("priv-amd64-1-1", true) // the kernel now caches its attributes

	mk("priv-amd64-1-2")
	if err := srv.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("priv-amd64-1-1", false)
	check("priv-amd64-1-2", true)
	if got := asNobody(filepath.Join(mnt, "bin/id"), "-u"); got != "0" {
		t.Errorf("/ro/bin/id (the newest) -u as nobody = %q, want 0", got)
	}

	removePkg(t, store, "priv-amd64-1-2")
	if err := srv.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("priv-amd64-1-1", true)
}
