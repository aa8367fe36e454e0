package install_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// TestEtcSymlinkNotFollowed attacks the etc/ copy with the exploit of
// issue 12: package A ships etc/x as a symlink to a host folder, package
// B ships etc/x/authorized_keys. Installed one after the other or
// together, in either order, with the link absolute or relative, nothing
// may appear in the host folder. Where the symlink is there first, the
// install fails naming it, and a benign package installed in the same
// run leaves nothing in /etc; where B's folder is there first, A's
// symlink goes beside it as etc/x.distri-new (a safe outcome).
func TestEtcSymlinkNotFollowed(t *testing.T) {
	for _, tt := range []struct {
		name     string
		relative bool
		link     string // package name of A; its order against keys decides which is copied first
		together bool
	}{
		{name: "absolute, one after the other", link: "link"},
		{name: "relative, one after the other", link: "link", relative: true},
		{name: "absolute, together, link first", link: "alink", together: true},
		{name: "relative, together, link first", link: "alink", relative: true, together: true},
		{name: "absolute, together, keys first", link: "zlink", together: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host := t.TempDir() // stands for /root/.ssh of the host
			root := t.TempDir()
			target := host
			if tt.relative {
				rel, err := filepath.Rel(filepath.Join(root, "etc"), host)
				if err != nil {
					t.Fatal(err)
				}
				target = rel
			}
			a := mirrortest.Package{Name: tt.link + "-amd64-1-1", Symlinks: map[string]string{"etc/x": target}}
			b := mirrortest.Package{Name: "keys-amd64-1-1", Files: map[string]string{"etc/x/authorized_keys": "ssh-ed25519 AAAA attacker\n"}}
			benign := mirrortest.Package{Name: "aaa-amd64-1-1", Files: map[string]string{"etc/aaa.conf": "a=1\n", "etc/aaa.d/b.conf": "b=1\n"}}
			r := mirrortest.NewRepo(t, a, b, benign)
			in := newInstaller(t, root, nil, []string{r.PubFile(t)}, serve(t, r))
			var err error
			if tt.together {
				_, err = in.Install(t.Context(), []string{"aaa", "keys", tt.link})
			} else {
				if _, err := in.Install(t.Context(), []string{tt.link}); err != nil {
					t.Fatal(err)
				}
				// A's symlink is created as it is, not followed.
				if got, err := os.Readlink(filepath.Join(root, "etc/x")); err != nil || got != target {
					t.Errorf("etc/x -> %q (%v), want %q", got, err, target)
				}
				_, err = in.Install(t.Context(), []string{"aaa", "keys"})
			}
			ents, rerr := os.ReadDir(host)
			if rerr != nil || len(ents) != 0 {
				t.Fatalf("host folder holds %v (%v), want nothing", ents, rerr)
			}
			if tt.link == "zlink" {
				// keys-amd64 is copied first: etc/x is its folder.
				if err != nil {
					t.Fatalf("Install = %v, want success", err)
				}
				if fi, err := os.Lstat(filepath.Join(root, "etc/x")); err != nil || !fi.IsDir() {
					t.Errorf("etc/x = %v (%v), want a folder", fi, err)
				}
				if got, err := os.Readlink(filepath.Join(root, "etc/x.distri-new")); err != nil || got != target {
					t.Errorf("etc/x.distri-new -> %q (%v), want %q", got, err, target)
				}
				return
			}
			var se *install.EtcSymlinkError
			if !errors.As(err, &se) || se.Path != "etc/x" || se.Target != target {
				t.Errorf("Install = %v, want an *EtcSymlinkError for etc/x -> %s", err, target)
			}
			for _, p := range []string{"etc/aaa.conf", "etc/aaa.d", "etc/x/authorized_keys"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after the failed install (%v), want it rolled back", p, err)
				}
			}
			var want []string
			if !tt.together {
				want = []string{tt.link + "-amd64-1-1"}
			}
			if diff := cmp.Diff(want, list(t, in)); diff != "" {
				t.Errorf("store mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEtcRootEtcSymlink: the root's /etc itself a symlink to a host
// folder is not written through either.
func TestEtcRootEtcSymlink(t *testing.T) {
	host := t.TempDir()
	root := t.TempDir()
	if err := os.Symlink(host, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "aaa-amd64-1-1", Files: map[string]string{"etc/aaa.conf": "a=1\n"}})
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, serve(t, r))
	_, err := in.Install(t.Context(), []string{"aaa"})
	var se *install.EtcSymlinkError
	if !errors.As(err, &se) || se.Path != "etc" {
		t.Errorf("Install = %v, want an *EtcSymlinkError for etc", err)
	}
	if ents, _ := os.ReadDir(host); len(ents) != 0 {
		t.Errorf("host folder holds %v, want nothing", ents)
	}
}

// TestEtcRollbackOnDiskFull fills the root's /etc half way through an
// install: the files the first package wrote are removed again, a file
// the update would have replaced is restored, and no temporary file
// stays.
func TestEtcRollbackOnDiskFull(t *testing.T) {
	distritest.NeedRoot(t)
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", etc).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", etc).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", etc, err, out)
		}
	})
	aaa1 := mirrortest.Package{Name: "aaa-amd64-1-1", Files: map[string]string{"etc/aaa.conf": "version 1\n"}}
	aaa2 := mirrortest.Package{Name: "aaa-amd64-1-2", Files: map[string]string{"etc/aaa.conf": "version 2\n", "etc/aaa.d/new.conf": "new\n"}}
	big := mirrortest.Package{Name: "big-amd64-1-1", Files: map[string]string{"etc/big.conf": strings.Repeat("x", 1<<20)}}
	r := mirrortest.NewRepo(t, aaa1)
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, serve(t, r))
	if _, err := in.Install(t.Context(), []string{"aaa"}); err != nil {
		t.Fatal(err)
	}
	r.Add(t, aaa2, big)
	_, err := in.Install(t.Context(), []string{"aaa", "big"})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Install onto a full /etc = %v, want ENOSPC", err)
	}
	if b, err := os.ReadFile(filepath.Join(etc, "aaa.conf")); err != nil || string(b) != "version 1\n" {
		t.Errorf("etc/aaa.conf = %q (%v), want version 1 restored", b, err)
	}
	var names []string
	ents, _ := os.ReadDir(etc)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"aaa.conf"}, names); diff != "" {
		t.Errorf("/etc after the failed install mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"aaa-amd64-1-1"}, list(t, in)); diff != "" {
		t.Errorf("store mismatch (-want +got):\n%s", diff)
	}
}
