package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"distri.dev/distri/lib/distritest"
)

// debianModules returns the release directory of Debian's cloud kernel
// (no modules.dep: depmod never ran).
func debianModules(t *testing.T) string {
	t.Helper()
	k := distritest.DebianKernel(t)
	return filepath.Join(k.Modules, k.Release)
}

// TestTreeIndexNeeds resolves what the kernel asks modprobe for against
// a scanned tree: fs-vfat when a vfat file system is mounted, the nls
// modules vfat then needs, a crypto alias with a softdep, a built-in
// file system's alias.
func TestTreeIndexNeeds(t *testing.T) {
	tree, err := Scan(debianModules(t))
	if err != nil {
		t.Fatal(err)
	}
	x := tree.Index()
	for _, tt := range []struct {
		name        string
		want        []string
		wantBuiltin bool
	}{
		{"fs-vfat", []string{"fat", "vfat"}, false},
		{"vfat", []string{"fat", "vfat"}, false},
		{"nls_cp437", []string{"nls_cp437"}, false},
		{"nls_ascii", []string{"nls_ascii"}, false},
		{"crypto-xts", []string{"ecb", "xts"}, false}, // xts: softdep=pre: ecb
		{"fs-ext4", nil, true},
		{"ext4", nil, true},
	} {
		mods, builtin, err := x.Needs(tt.name)
		if err != nil || builtin != tt.wantBuiltin || !cmp.Equal(mods, tt.want) {
			t.Errorf("Needs(%q) = %v, %v, %v; want %v, %v", tt.name, mods, builtin, err, tt.want, tt.wantBuiltin)
		}
	}
	if _, _, err := x.Needs("fs-nonesuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Needs(fs-nonesuch) error %v, want ErrNotFound", err)
	}
	if got, want := x.Path["vfat"], "kernel/fs/fat/vfat.ko"; got != want {
		t.Errorf("Path[vfat] = %q, want %q", got, want)
	}
}

// TestOpenIndexCache scans once into the cache, then reads the cache.
func TestOpenIndexCache(t *testing.T) {
	dir := debianModules(t)
	cache := filepath.Join(t.TempDir(), "kmod")
	start := time.Now()
	scanned, err := OpenIndex(dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	scanTime := time.Since(start)
	ents, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != ".lock" {
		t.Fatalf("cache holds %v, want .lock and one index", names)
	}
	entry := filepath.Join(cache, names[1])
	if want := filepath.Base(dir) + "-"; len(names[1]) != len(want)+16 || names[1][:len(want)] != want {
		t.Errorf("cache entry %s, want %s<16 hex digits>", names[1], want)
	}
	start = time.Now()
	cached, err := OpenIndex(dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d modules: scan and write the cache %v, read the cache %v", len(scanned.Path), scanTime, time.Since(start))
	if diff := cmp.Diff(scanned, cached, cmpopts.IgnoreUnexported(Index{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("cached index differs from the scanned one (-scanned +cached):\n%s", diff)
	}
	if mods, _, err := cached.Needs("fs-vfat"); err != nil || !cmp.Equal(mods, []string{"fat", "vfat"}) {
		t.Errorf("cached Needs(fs-vfat) = %v, %v", mods, err)
	}
	// What the cache says wins: it is read, not rescanned.
	f, err := os.OpenFile(filepath.Join(entry, "modules.alias"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("alias distri-test-marker fat\n")
	f.Close()
	again, err := OpenIndex(dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	if mods, _ := again.Resolve("distri-test-marker"); !cmp.Equal(mods, []string{"fat"}) {
		t.Errorf("the cache was not read: Resolve(distri-test-marker) = %v", mods)
	}
	// Without a cache directory it scans.
	if x, err := OpenIndex(dir, ""); err != nil || len(x.Path) != len(scanned.Path) {
		t.Errorf("OpenIndex without cache: %v", err)
	}
}

// TestOpenIndexDepmod prefers depmod's files when the tree has them.
func TestOpenIndexDepmod(t *testing.T) {
	dir := t.TempDir()
	for name, s := range map[string]string{
		"modules.dep":           "kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\nkernel/fs/fat/fat.ko:\n",
		"modules.alias":         "alias fs-vfat vfat\n",
		"modules.builtin.alias": "alias fs-ext4 ext4\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := filepath.Join(t.TempDir(), "kmod")
	x, err := OpenIndex(dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	if mods, _, err := x.Needs("fs-vfat"); err != nil || !cmp.Equal(mods, []string{"fat", "vfat"}) {
		t.Errorf("Needs(fs-vfat) = %v, %v", mods, err)
	}
	if _, builtin := x.Resolve("fs-ext4"); !builtin {
		t.Errorf("fs-ext4 not built in")
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a depmod index was cached: %v", err)
	}
}

// TestScanSymlinks scans a tree like a booted distri system's
// /lib/modules/<release> (/ro/lib/modules/…, an exchange directory):
// directories whose modules are symlinks into the kernel package.
func TestScanSymlinks(t *testing.T) {
	pkg := debianModules(t)
	dir := filepath.Join(t.TempDir(), filepath.Base(pkg))
	for _, rel := range []string{"kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko", "kernel/fs/nls/nls_cp437.ko", "modules.builtin"} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(pkg, rel), p); err != nil {
			t.Fatal(err)
		}
	}
	// A dangling link is no module.
	if err := os.Symlink(filepath.Join(pkg, "kernel/fs/nonesuch.ko"), filepath.Join(dir, "kernel/fs/nonesuch.ko")); err != nil {
		t.Fatal(err)
	}
	x, err := OpenIndex(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if mods, _, err := x.Needs("fs-vfat"); err != nil || !cmp.Equal(mods, []string{"fat", "vfat"}) {
		t.Errorf("Needs(fs-vfat) = %v, %v", mods, err)
	}
	if got := len(x.Path); got != 3 {
		t.Errorf("%d modules, want 3: %v", got, x.Path)
	}
	if _, builtin := x.Resolve("fs-ext4"); builtin {
		t.Errorf("fs-ext4 built in without modules.builtin.modinfo")
	}
}
