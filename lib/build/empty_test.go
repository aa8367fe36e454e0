package build

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/squashfs"
)

// packRepoPackage packs a package that has no recipe (as `make repo`
// packs the suite as distri) into repoDir/pkg.
func packRepoPackage(t *testing.T, repoDir, full string, deps []string) {
	t.Helper()
	tree := t.TempDir()
	write(t, filepath.Join(tree, "out/bin", strings.SplitN(full, "-", 2)[0]), []byte("#!/bin/sh\n"))
	if _, err := pack.Pack(pack.Options{Name: full, Dir: tree, Meta: &pb.Meta{RuntimeDep: deps}, OutDir: filepath.Join(repoDir, "pkg")}); err != nil {
		t.Fatal(err)
	}
}

// TestBuildMetaPackage builds an empty:// recipe with runtime deps from
// the recipe tree (tool, with base and base2 behind it) and from the
// repository only (suite, which needs libs): an image without files whose
// meta lists the closure, reproducibly, rebuilt when the recipe or a
// runtime dep's version changes; installing it installs the closure.
func TestBuildMetaPackage(t *testing.T) {
	pkgs := setup(t)
	write(t, filepath.Join(pkgs, "sys", "build.textproto"), []byte(`source: "empty://"
version: "1-1"
runtime_dep: "tool"
runtime_dep: "suite"
`))
	b := newBuilder(t)
	repoDir := b.opts.RepoDir
	packRepoPackage(t, repoDir, "libs-amd64-1-1", nil)
	packRepoPackage(t, repoDir, "suite-amd64-0.5-1", []string{"libs-amd64-1-1"})
	for _, p := range []string{"base", "base2", "tool"} {
		if _, err := b.Build(t.Context(), filepath.Join(pkgs, p)); err != nil {
			t.Fatal(err)
		}
	}
	sys := filepath.Join(pkgs, "sys")
	img, err := b.Build(t.Context(), sys)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(img) != "sys-amd64-1-1.squashfs" {
		t.Errorf("image %s, want sys-amd64-1-1.squashfs", img)
	}
	// The image: its root directory only, readable by everyone.
	r, err := squashfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(r.FS(), ".")
	if err != nil || len(ents) != 0 {
		t.Errorf("image root holds %v (%v), want nothing", ents, err)
	}
	if st, err := r.Stat(r.Root()); err != nil || st.Mode.Perm() != 0o755 || !st.Mode.IsDir() {
		t.Errorf("image root: %v (%v), want a directory 0755", st.Mode, err)
	}
	r.Close()
	meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
	if err != nil {
		t.Fatal(err)
	}
	closure := []string{"base-amd64-1-3", "base2-amd64-2-1", "libs-amd64-1-1", "suite-amd64-0.5-1", "tool-amd64-1.0-2-1"}
	if !slices.Equal(meta.GetRuntimeDep(), closure) {
		t.Errorf("runtime_dep %q, want %q", meta.GetRuntimeDep(), closure)
	}
	if len(meta.GetProvides()) != 0 || meta.GetSourcePkg() != "sys" || meta.GetVersion() != "1-1" {
		t.Errorf("meta %v, want source_pkg sys, version 1-1, nothing provided", meta)
	}
	digest := func() string {
		t.Helper()
		d, err := InputDigestWithRepo(sys, repoDir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d0 := digest()
	if meta.GetInputDigest() != d0 {
		t.Errorf("input_digest %q, want %q", meta.GetInputDigest(), d0)
	}

	// Built again a second later: the same bytes.
	first, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := b.Build(t.Context(), sys); err != nil {
		t.Fatal(err)
	}
	if again, err := os.ReadFile(img); err != nil || !bytes.Equal(first, again) {
		t.Errorf("two builds of the meta-package differ (%v)", err)
	}

	// Installing it from the signed repository installs the closure.
	key, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.Index(mirror.IndexOptions{Repo: repoDir, Key: key}); err != nil {
		t.Fatal(err)
	}
	pubText, err := key.Public().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "repo.pub")
	write(t, pub, pubText)
	root := t.TempDir()
	in, err := install.New(install.Options{Root: root, Repos: []string{repoDir}, PubKeyFiles: []string{pub}, Arch: Arch})
	if err != nil {
		t.Fatal(err)
	}
	got, err := in.Install(t.Context(), []string{"sys"})
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values(append(slices.Clone(closure), "sys-amd64-1-1"))); !slices.Equal(got, want) {
		t.Errorf("Install(sys) = %q, want %q", got, want)
	}
	if ls, err := in.List(t.Context(), install.ListOptions{}); err != nil || !slices.Contains(ls, "sys-amd64-1-1") || len(ls) != len(got) {
		t.Errorf("store holds %q (%v), want %q", ls, err, got)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/tool.conf")); err != nil {
		t.Errorf("tool's /etc file not installed: %v", err)
	}

	// A changed recipe (even a comment) and a new revision of a runtime
	// dep in the repository each change the digest.
	write(t, filepath.Join(sys, "build.textproto"), []byte(`source: "empty://"
version: "1-1"
# the system
runtime_dep: "tool"
runtime_dep: "suite"
`))
	d1 := digest()
	packRepoPackage(t, repoDir, "suite-amd64-0.5-2", []string{"libs-amd64-1-1"})
	d2 := digest()
	if d1 == d0 || d2 == d1 {
		t.Errorf("digests %s, %s, %s: want each change to give a new one", d0, d1, d2)
	}
	if _, err := b.Build(t.Context(), sys); err != nil {
		t.Fatal(err)
	}
	if meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto"); err != nil ||
		!slices.Contains(meta.GetRuntimeDep(), "suite-amd64-0.5-2") || meta.GetInputDigest() != d2 {
		t.Errorf("rebuilt meta %v (%v), want suite-amd64-0.5-2 and digest %s", meta, err, d2)
	}

	// A meta-package builds nothing: a dep is an error naming it.
	write(t, filepath.Join(pkgs, "bad", "build.textproto"), []byte("source: \"empty://\"\nversion: \"1-1\"\ndep: \"tool\"\n"))
	if _, err := b.Build(t.Context(), filepath.Join(pkgs, "bad")); err == nil || !strings.Contains(err.Error(), "meta-package: dep") {
		t.Errorf("meta-package with a dep: err = %v", err)
	}
}
