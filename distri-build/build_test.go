package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/squashfs"
)

// TestScaffoldBuildHello imports GNU hello's Debian binary package: a real
// apt-cache lookup and a real fetch from the machine's Debian archive
// (cached under distritest.CacheDir).
func TestScaffoldBuildHello(t *testing.T) {
	distritest.NeedTool(t, "apt-cache")
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "pkgs")
	repo := filepath.Join(dir, "repo")
	cache := filepath.Join(distritest.CacheDir(t), "sources")

	code, out, errs := runCmd(t, "scaffold", "debian:hello", "-o", pkgs)
	if code != 0 {
		t.Fatalf("scaffold: exit %d\n%s", code, errs)
	}
	if !strings.Contains(out, filepath.Join(pkgs, "hello", "build.textproto")) || !strings.Contains(out, filepath.Join(pkgs, "libc6", "build.textproto")) {
		t.Errorf("scaffold printed %q, want the hello and libc6 recipes", out)
	}
	if code, _, errs := runCmd(t, "check", pkgs); code != 0 {
		t.Fatalf("scaffolded recipes fail check:\n%s", errs)
	}

	code, out, errs = runCmd(t, "build", "--repo", repo, "--cache", cache, filepath.Join(pkgs, "hello"), filepath.Join(pkgs, "libc6"))
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, errs)
	}
	imgs := strings.Fields(out)
	if len(imgs) != 2 {
		t.Fatalf("build printed %q, want two images", out)
	}
	img := imgs[0]
	if !strings.HasPrefix(filepath.Base(img), "hello-amd64-") || filepath.Dir(img) != filepath.Join(repo, "pkg") {
		t.Fatalf("build printed %q, want %s/hello-amd64-….squashfs", out, filepath.Join(repo, "pkg"))
	}
	r, err := squashfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ino, err := r.LookupPath("out/bin/hello")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := r.Stat(ino); err != nil || st.Mode&0o111 == 0 || st.Size == 0 {
		t.Errorf("out/bin/hello: %+v, %v; want an executable", st, err)
	}
	ino, err = r.LookupPath("bin/hello")
	if err != nil {
		t.Fatal(err)
	}
	if target, err := r.Readlink(ino); err != nil || target != "../out/bin/hello" {
		t.Errorf("bin/hello -> %q, %v; want ../out/bin/hello", target, err)
	}
	// libc6's loader symlink, absolute in the .deb, points within the
	// package.
	libc, err := squashfs.Open(imgs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer libc.Close()
	ino, err = libc.LookupPath("out/lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Fatal(err)
	}
	if target, err := libc.Readlink(ino); err != nil || target != "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" {
		t.Errorf("libc6 out/lib64/ld-linux-x86-64.so.2 -> %q, %v; want ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", target, err)
	}
	if _, err := libc.LookupPath("out/lib/x86_64-linux-gnu/libc.so.6"); err != nil {
		t.Error(err)
	}

	meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(meta.GetRuntimeDep(), func(d string) bool { return strings.HasPrefix(d, "libc6-amd64-") }) {
		t.Errorf("runtime_dep %q lacks libc6", meta.GetRuntimeDep())
	}
	if len(meta.GetInputDigest()) != 64 {
		t.Errorf("input_digest %q, want a sha256", meta.GetInputDigest())
	}
}

func TestBuildNeedsSandbox(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkgs", "make")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	recipe := `source: "https://example.invalid/make-4.4.tar.gz"
hash: "` + strings.Repeat("a", 64) + `"
version: "4.4-1"
perlbuilder: {}
`
	if err := os.WriteFile(filepath.Join(pkg, "build.textproto"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "build", "--repo", filepath.Join(dir, "repo"), "--cache", filepath.Join(dir, "cache"), pkg)
	if code == 0 || out != "" || !strings.Contains(errs, "needs the build sandbox (not yet supported): "+filepath.Join(pkg, "build.textproto")) {
		t.Errorf("build of a compiling recipe: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestBuildJobsFlag(t *testing.T) {
	if code, _, errs := runCmd(t, "build", "--jobs", "many", "pkgs/hello"); code != 2 || !strings.Contains(errs, "--jobs") {
		t.Errorf("build --jobs many: exit %d, stderr %q; want exit 2 naming --jobs", code, errs)
	}
}
