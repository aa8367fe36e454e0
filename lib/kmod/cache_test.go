package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

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
	appendAlias(t, entry, "distri-test-marker")
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

const (
	fakeRelease = "6.1.0-9-cloud-amd64"
	fakeKernel  = "linux-image-amd64-6.1.9-1"
)

// fakeRo lays out a distri /ro: the kernel package fakeKernel's tree
// ro/<full>/out/lib/modules/<release> with the given files (copied from
// src, or written empty when src is ""), and returns ro.
func fakeRo(t *testing.T, src string, files ...string) string {
	t.Helper()
	ro := filepath.Join(t.TempDir(), "ro")
	pkg := filepath.Join(ro, fakeKernel, "out/lib/modules", fakeRelease)
	for _, rel := range files {
		var b []byte
		if src != "" {
			var err error
			if b, err = os.ReadFile(filepath.Join(src, rel)); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(pkg, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ro
}

// exchangeDir makes ro/lib/modules/<release> as distri-fuse serves it: a
// directory per directory, a relative symlink into ro/<full>/ per file,
// for the given files of package full. It replaces what was there (a
// new directory: new inode and times).
func exchangeDir(t *testing.T, ro, full string, files ...string) string {
	t.Helper()
	dir := filepath.Join(ro, "lib/modules", fakeRelease)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rel := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		target, err := filepath.Rel(filepath.Dir(p), filepath.Join(ro, full, "out/lib/modules", fakeRelease, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCacheKey keys a symlink farm into a kernel package by the
// package, anything else by the directory's identity.
func TestCacheKey(t *testing.T) {
	markers := []string{"modules.order", "modules.builtin"}
	ro := fakeRo(t, "", markers...)
	// A second package and a directory that is no package, both with
	// the same files.
	other := "linux-image-amd64-6.1.9-2"
	for _, d := range []string{other, "not-a-package"} {
		if err := os.CopyFS(filepath.Join(ro, d), os.DirFS(filepath.Join(ro, fakeKernel))); err != nil {
			t.Fatal(err)
		}
	}
	byPackage := PackageKey(fakeRelease, fakeKernel)
	if want := fakeRelease + "@" + fakeKernel; byPackage != want {
		t.Errorf("PackageKey = %q, want %q", byPackage, want)
	}
	key := func(dir string) string {
		t.Helper()
		k, err := CacheKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	isIdentity := func(k string) bool {
		rest, ok := strings.CutPrefix(k, fakeRelease+"-")
		return ok && len(rest) == 16
	}
	for _, tt := range []struct {
		name  string
		setup func() string
		want  string // "" means an identity hash
	}{
		{"farm", func() string { return exchangeDir(t, ro, fakeKernel, markers...) }, byPackage},
		{"farm reached through a /lib symlink", func() string {
			exchangeDir(t, ro, fakeKernel, markers...)
			root := t.TempDir()
			if err := os.Symlink(filepath.Join(ro, "lib"), filepath.Join(root, "lib")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, "lib/modules", fakeRelease)
		}, byPackage},
		{"only modules.builtin", func() string { return exchangeDir(t, ro, fakeKernel, "modules.builtin") }, byPackage},
		{"plain directory", func() string { return filepath.Join(ro, fakeKernel, "out/lib/modules", fakeRelease) }, ""},
		{"no markers", func() string { return exchangeDir(t, ro, fakeKernel) }, ""},
		{"into no package", func() string { return exchangeDir(t, ro, "not-a-package", markers...) }, ""},
		{"two packages", func() string {
			dir := exchangeDir(t, ro, fakeKernel, markers...)
			os.Remove(filepath.Join(dir, "modules.builtin"))
			if err := os.Symlink(filepath.Join("../../..", other, "out/lib/modules", fakeRelease, "modules.builtin"), filepath.Join(dir, "modules.builtin")); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ""},
		{"one marker a plain file", func() string {
			dir := exchangeDir(t, ro, fakeKernel, "modules.order")
			if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ""},
		{"dangling marker", func() string { return exchangeDir(t, ro, "linux-image-amd64-6.1.9-3", markers...) }, ""},
	} {
		got := key(tt.setup())
		if tt.want == "" && !isIdentity(got) || tt.want != "" && got != tt.want {
			want := tt.want
			if want == "" {
				want = fakeRelease + "-<16 hex digits>"
			}
			t.Errorf("%s: CacheKey = %q, want %s", tt.name, got, want)
		}
	}
}

// appendAlias adds a marker alias to the index cached in entry, to tell a
// read cache from a scan.
func appendAlias(t *testing.T, entry, alias string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(entry, "modules.alias"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("alias " + alias + " fat\n"); err != nil {
		t.Fatal(err)
	}
}

// fatModules are the files of Debian's kernel the cache tests scan.
var fatModules = []string{"kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko", "modules.order", "modules.builtin"}

// TestOpenIndexStableKey finds the cached index of an exchange directory
// after distri-fuse made it anew (as at every boot: new inode, new
// times), because the key is the kernel package's.
func TestOpenIndexStableKey(t *testing.T) {
	ro := fakeRo(t, debianModules(t), fatModules...)
	cache := filepath.Join(t.TempDir(), "kmod")
	dir := exchangeDir(t, ro, fakeKernel, fatModules...)
	if _, err := OpenIndex(dir, cache); err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(cache, PackageKey(fakeRelease, fakeKernel))
	appendAlias(t, entry, "distri-test-marker")
	dir = exchangeDir(t, ro, fakeKernel, fatModules...)
	x, err := OpenIndex(dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	if mods, _ := x.Resolve("distri-test-marker"); !cmp.Equal(mods, []string{"fat"}) {
		t.Errorf("the re-created exchange directory was scanned again, not read from %s", entry)
	}
	if mods, _, err := x.Needs("fs-vfat"); err != nil || !cmp.Equal(mods, []string{"fat", "vfat"}) {
		t.Errorf("Needs(fs-vfat) = %v, %v", mods, err)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 2 { // .lock and the entry
		t.Errorf("cache holds %d entries, want .lock and %s", len(ents), filepath.Base(entry))
	}
}

// readOnly bind-mounts dir read-only on itself until the test ends.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

// TestOpenIndexFallback reads an index from the first cache directory
// even when it is read-only, and writes a scan into the next one when
// the first cannot be written.
func TestOpenIndexFallback(t *testing.T) {
	distritest.NeedRoot(t)
	ro := fakeRo(t, debianModules(t), fatModules...)
	dir := exchangeDir(t, ro, fakeKernel, fatModules...)
	key := PackageKey(fakeRelease, fakeKernel)
	tmp := t.TempDir()
	varCache, runCache := filepath.Join(tmp, "var/kmod"), filepath.Join(tmp, "run/kmod")

	// Not writable (a file where its parent should be) and read-only
	// (with a lock file already): the index goes to runCache.
	notDir := filepath.Join(tmp, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(varCache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(varCache, ".lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly(t, varCache)
	x, err := OpenIndex(dir, filepath.Join(notDir, "kmod"), varCache, runCache)
	if err != nil {
		t.Fatal(err)
	}
	if mods, _, err := x.Needs("fs-vfat"); err != nil || !cmp.Equal(mods, []string{"fat", "vfat"}) {
		t.Errorf("Needs(fs-vfat) = %v, %v", mods, err)
	}
	if _, err := os.Stat(filepath.Join(runCache, key, "modules.dep")); err != nil {
		t.Errorf("no index in the fallback cache: %v", err)
	}
	if _, err := os.Stat(filepath.Join(varCache, key)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the read-only cache has an entry: %v", err)
	}
	appendAlias(t, filepath.Join(runCache, key), "distri-run-marker")
	if x, err = OpenIndex(dir, varCache, runCache); err != nil {
		t.Fatal(err)
	}
	if mods, _ := x.Resolve("distri-run-marker"); !cmp.Equal(mods, []string{"fat"}) {
		t.Errorf("the fallback cache was not read")
	}

	// An index made beforehand (as distri-mkimage writes it) in the
	// read-only first directory wins.
	made := filepath.Join(tmp, "made")
	if err := WriteCache(x, made, key); err != nil {
		t.Fatal(err)
	}
	appendAlias(t, filepath.Join(made, key), "distri-made-marker")
	readOnly(t, made)
	if x, err = OpenIndex(dir, made, runCache); err != nil {
		t.Fatal(err)
	}
	if mods, _ := x.Resolve("distri-made-marker"); !cmp.Equal(mods, []string{"fat"}) {
		t.Errorf("the index in the read-only first directory was not read")
	}
}
