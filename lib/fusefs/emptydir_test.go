package fusefs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/pb"
)

// TestEmptyExchangeDir (root tier, a real mount): automake ships
// out/share/aclocal empty, and aclocal refuses to run unless
// /usr/share/aclocal (→ /ro/share/aclocal) can be opened. Before
// directories were provided, the exchange directories listed files only
// and /ro/share/aclocal did not exist. It must exist, be a directory and
// list (empty), from a meta's provides and from an image whose meta has
// none; a package adding share/aclocal/pkg.m4 later merges into it, and
// owner names every package that has the directory.
func TestEmptyExchangeDir(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "automake-amd64-1.16.5-1", map[string]string{
		"bin/aclocal":                     "#!/bin/sh\n",
		"out/share/aclocal/":              "",
		"out/share/automake-1.16/am/x.am": "am",
	}, nil)
	// A meta without provides: the daemon walks the image instead.
	mkpkg(t, store, "imported-amd64-1-1", map[string]string{"out/lib/imported/plugins/": ""}, nil)
	if err := pb.WriteMetaFile(filepath.Join(store, "imported-amd64-1-1"+metaSuffix), &pb.Meta{Version: new("1-1")}); err != nil {
		t.Fatal(err)
	}
	meta, err := pb.ReadMetaFile(filepath.Join(store, "automake-amd64-1.16.5-1"+metaSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"bin/aclocal", "share/aclocal/", "share/automake-1.16/am/x.am"}, meta.GetProvides()); diff != "" {
		t.Errorf("automake's packed provides mismatch (-want +got):\n%s", diff)
	}
	srv, mnt, _ := mountStore(t, store)

	for _, d := range []string{"share/aclocal", "lib/imported/plugins"} {
		fi, err := os.Stat(filepath.Join(mnt, d))
		if err != nil {
			t.Fatalf("stat /ro/%s: %v", d, err)
		}
		if !fi.IsDir() {
			t.Errorf("/ro/%s is %v, want a directory", d, fi.Mode())
		}
		if got := names(t, filepath.Join(mnt, d)); len(got) != 0 {
			t.Errorf("ls /ro/%s = %q, want empty", d, got)
		}
	}
	if got := dirTypes(t, filepath.Join(mnt, "share")); got["aclocal"] == 0 {
		t.Errorf("ls /ro/share = %v, want aclocal in it", got)
	}
	owners, err := Owner(filepath.Join(mnt, "share/aclocal"))
	if err != nil || !cmp.Equal(owners, []string{"automake-amd64-1.16.5-1"}) {
		t.Errorf("Owner(/ro/share/aclocal) = %q, %v; want automake", owners, err)
	}

	// Another package's file merges into the directory.
	mkpkg(t, store, "pkgconf-amd64-1.8.1-1", map[string]string{"out/share/aclocal/pkg.m4": "dnl pkg.m4\n"}, nil)
	if err := srv.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"pkg.m4"}, names(t, filepath.Join(mnt, "share/aclocal"))); diff != "" {
		t.Errorf("ls /ro/share/aclocal after adding pkgconf mismatch (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "share/aclocal/pkg.m4")); err != nil || string(b) != "dnl pkg.m4\n" {
		t.Errorf("read /ro/share/aclocal/pkg.m4 = %q, %v", b, err)
	}
	owners, err = Owner(filepath.Join(mnt, "share/aclocal"))
	if err != nil || !cmp.Equal(owners, []string{"automake-amd64-1.16.5-1", "pkgconf-amd64-1.8.1-1"}) {
		t.Errorf("Owner(/ro/share/aclocal) = %q, %v; want automake and pkgconf", owners, err)
	}
}
