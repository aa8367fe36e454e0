package query

import (
	"errors"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/fusefs"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/store"
)

// TestOwnerDirectoriesMatchMount (root tier, a real mount) packs
// packages with empty directories under the exchange directories (as
// automake ships share/aclocal), a file another package's directory
// hides, and serves them with lib/fusefs: Owner, reading only the store,
// must answer what the mount answers for every path. Before directories
// were provided, Owner found no owner of /ro/share/aclocal (the mount
// did not show it either) and named the hidden file's package as the
// owner of a path /ro shows as a directory.
func TestOwnerDirectoriesMatchMount(t *testing.T) {
	distritest.NeedFUSE(t)
	dir := t.TempDir()
	stDir := filepath.Join(dir, "roimg")
	for full, files := range map[string][]string{
		"automake-amd64-1.16.5-1": {"bin/aclocal", "out/share/aclocal/", "out/share/x/y/"},
		"pkgconf-amd64-1.8.1-1":   {"out/share/aclocal/pkg.m4"},
		"aaa-amd64-1-1":           {"out/share/x", "out/share/aclocal/pkg.m4"}, // x: a file, hidden by automake's directory
		"zz-amd64-1-1":            {"out/lib/only/empty/"},
	} {
		src := filepath.Join(dir, "src", full)
		for _, f := range files {
			p := filepath.Join(src, f)
			if strings.HasSuffix(f, "/") {
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(full), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pack.Pack(pack.Options{Name: full, Dir: src, OutDir: stDir}); err != nil {
			t.Fatal(err)
		}
	}
	// One meta without provides: both sides read the image.
	if err := pb.WriteMetaFile(filepath.Join(stDir, "zz-amd64-1-1.meta.textproto"), &pb.Meta{Version: new("1-1")}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	mnt := filepath.Join(root, "ro")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	srv, err := fusefs.Mount(t.Context(), fusefs.Options{Store: stDir, Mountpoint: mnt, Log: log.New(&logs, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	st := store.At(stDir)
	for _, tt := range []struct {
		path string
		want []string // what the mount must say too
	}{
		// pkgconf's only entry is shadowed by aaa's: not an owner.
		{"/ro/share/aclocal", []string{"aaa-amd64-1-1", "automake-amd64-1.16.5-1"}},
		{"/ro/share/aclocal/pkg.m4", []string{"aaa-amd64-1-1"}},
		{"/ro/share/x", []string{"automake-amd64-1.16.5-1"}},
		{"/ro/share/x/y", []string{"automake-amd64-1.16.5-1"}},
		{"/ro/share", []string{"aaa-amd64-1-1", "automake-amd64-1.16.5-1"}},
		{"/ro/lib/only/empty", []string{"zz-amd64-1-1"}},
		{"/ro/lib", []string{"zz-amd64-1-1"}},
		{"/ro/bin/aclocal", []string{"automake-amd64-1.16.5-1"}},
		{"/ro/include", nil},
		{"/ro/share/nothing", nil},
	} {
		stored, sErr := Owner(root, st, tt.path)
		mounted, mErr := fusefs.Owner(filepath.Join(root, tt.path))
		if !slices.Equal(stored, tt.want) || (sErr == nil) != (tt.want != nil) {
			t.Errorf("Owner(%s) = %q, %v; want %q", tt.path, stored, sErr, tt.want)
		}
		if !slices.Equal(stored, mounted) || (sErr == nil) != (mErr == nil) {
			t.Errorf("owner %s: the store says %q, %v; the mount %q, %v", tt.path, stored, sErr, mounted, mErr)
		}
		if tt.want == nil && sErr != nil && !errors.Is(sErr, ErrNoOwner) && !errors.Is(sErr, os.ErrNotExist) {
			t.Errorf("Owner(%s): %v, want ErrNoOwner", tt.path, sErr)
		}
	}
	if fi, err := os.Stat(filepath.Join(mnt, "share/x")); err != nil || !fi.IsDir() {
		t.Errorf("/ro/share/x: %v, %v; want the directory, not aaa's file", fi, err)
	}
}
