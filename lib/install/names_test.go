package install_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

// TestBadNamesCreateNothing: a name outside the safe alphabet (a newline
// corrupted the installed file, and gc then deleted the package just
// installed) is refused before anything is fetched or created, and a
// command that only reads creates no store either.
func TestBadNamesCreateNothing(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, hello10)
	root := filepath.Join(t.TempDir(), "root")
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, serve(t, r))
	for _, name := range []string{"hello\nlibc-amd64-1-2", "../hello", ".hello", "hello world", ""} {
		if _, err := in.Install(t.Context(), []string{name}); !errors.Is(err, pkgname.ErrBadName) {
			t.Errorf("Install(%q) = %v, want ErrBadName", name, err)
		}
	}
	if got := list(t, in); len(got) != 0 {
		t.Errorf("List = %v, want nothing", got)
	}
	if _, err := in.Remove(t.Context(), []string{"hello\nx"}); err == nil {
		t.Errorf("Remove(hello\\nx) = nil, want an error")
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused commands created %s (%v)", root, err)
	}
}

// TestShadowWarning: a package from another repository that provides an
// exchange path another installed package provides (here /ro/bin/ls) is
// installed with a warning naming both; an update of the same package
// is not a shadow.
func TestShadowWarning(t *testing.T) {
	core1 := mirrortest.Package{Name: "coreutils-amd64-9-1", Files: map[string]string{"bin/ls": "ls 1", "bin/cat": "cat"}}
	core2 := mirrortest.Package{Name: "coreutils-amd64-9-2", Files: map[string]string{"bin/ls": "ls 2", "bin/cat": "cat"}}
	evil := mirrortest.Package{Name: "aardvark-amd64-1-1", Files: map[string]string{"bin/ls": "evil ls", "bin/aardvark": "x"}}
	official := mirrortest.NewRepo(t, core1, core2)
	third := mirrortest.NewRepo(t, evil)
	root := t.TempDir()
	var logs bytes.Buffer
	in := newInstaller(t, root, &logs, []string{official.PubFile(t), third.PubFile(t)}, serve(t, official), serve(t, third))
	if _, err := in.Install(t.Context(), []string{"coreutils-amd64-9-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(t.Context(), []string{"coreutils"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "warning") {
		t.Errorf("an update warned: %q", logs.String())
	}
	if _, err := in.Install(t.Context(), []string{"aardvark"}); err != nil {
		t.Fatal(err)
	}
	want := "warning: /ro/bin/ls is provided by both aardvark-amd64-1-1 and coreutils-amd64-9-2; /ro shows aardvark-amd64-1-1's\n"
	if diff := cmp.Diff(want, logs.String()); diff != "" {
		t.Errorf("log mismatch (-want +got):\n%s", diff)
	}
}

// TestBadProvides: a meta whose provides would make /ro/bin/x a symlink
// out of its package (and of /ro) is refused, naming the entry.
func TestBadProvides(t *testing.T) {
	for _, bad := range []string{"bin/../../../etc/shadow", "/bin/sh", "bin/a\nb", "bin", "etc/passwd"} {
		t.Run(strings.ReplaceAll(bad, "/", "_"), func(t *testing.T) {
			r := mirrortest.NewRepo(t, hello10, libc2)
			p := filepath.Join(r.Dir, "pkg", "hello-amd64-2.10-10.meta.textproto")
			m, err := pb.ReadMetaFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m.Provides = append(m.Provides, bad)
			for _, suf := range []string{".zst", ".gz"} {
				os.Remove(p + suf)
			}
			if err := pb.WriteMetaFile(p, m); err != nil {
				t.Fatal(err)
			}
			if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key}); err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			in := newInstaller(t, root, nil, []string{r.PubFile(t)}, serve(t, r))
			_, err = in.Install(t.Context(), []string{"hello"})
			if err == nil || !strings.Contains(err.Error(), "hello-amd64-2.10-10") || !strings.Contains(err.Error(), "provides") {
				t.Errorf("Install with provides %q = %v, want an error naming the package and its provides", bad, err)
			}
			checkNothingInstalled(t, in)
		})
	}
}
