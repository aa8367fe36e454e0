// Package mirrortest makes package repositories for tests of the mirror,
// the repository client and the installer: real SquashFS images (written
// by lib/pack), meta files, and a signed index.
package mirrortest

import (
	"os"
	"path/filepath"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
)

// Package describes one package to make.
type Package struct {
	// Name is the full name, e.g. hello-amd64-2.12-1.
	Name string
	// Deps are the meta's runtime_dep (full names).
	Deps []string
	// Files maps paths in the image to contents, e.g.
	// "out/bin/hello": "#!/bin/sh\n" or "etc/hello.conf": "greeting=hi\n".
	// Empty means one file, out/share/<name>/README.
	Files map[string]string
	// Symlinks maps paths in the image to link targets.
	Symlinks map[string]string
	// Blob, if non-zero, adds out/share/<name>/blob with that many
	// pseudo-random bytes, to make the image large.
	Blob int
}

// WritePackages packs pkgs into dir (<full>.squashfs and
// <full>.meta.textproto each).
func WritePackages(t testing.TB, dir string, pkgs ...Package) {
	t.Helper()
	for _, p := range pkgs {
		tree := t.TempDir()
		files := p.Files
		if len(files) == 0 && len(p.Symlinks) == 0 {
			files = map[string]string{"out/share/" + p.Name + "/README": "package " + p.Name + "\n"}
		}
		for name, content := range files {
			write(t, filepath.Join(tree, name), []byte(content))
		}
		if p.Blob > 0 {
			write(t, filepath.Join(tree, "out/share", p.Name, "blob"), distritest.Bytes(p.Blob, int64(len(p.Name))))
		}
		for name, target := range p.Symlinks {
			l := filepath.Join(tree, name)
			if err := os.MkdirAll(filepath.Dir(l), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, l); err != nil {
				t.Fatal(err)
			}
		}
		metaFile := filepath.Join(t.TempDir(), "meta.textproto")
		if err := pb.WriteMetaFile(metaFile, &pb.Meta{RuntimeDep: p.Deps}); err != nil {
			t.Fatal(err)
		}
		if _, err := pack.Pack(pack.Options{Name: p.Name, Dir: tree, MetaFile: metaFile, OutDir: dir}); err != nil {
			t.Fatalf("pack %s: %v", p.Name, err)
		}
	}
}

func write(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Repo is a repository made for a test.
type Repo struct {
	Dir string              // the repository folder; packages are in Dir/pkg
	Key minisign.PrivateKey // the key that signed its index
}

// Pub returns the public key of the repository.
func (r *Repo) Pub() minisign.PublicKey { return r.Key.Public() }

// PubFile writes the public key to a file and returns its path.
func (r *Repo) PubFile(t testing.TB) string {
	t.Helper()
	b, err := r.Pub().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "repo.pub")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// NewRepo makes a repository with pkgs and indexes it with a new key.
func NewRepo(t testing.TB, pkgs ...Package) *Repo {
	t.Helper()
	k, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Repo{Dir: t.TempDir(), Key: k}
	r.Add(t, pkgs...)
	return r
}

// Add packs more packages into the repository and re-indexes it.
func (r *Repo) Add(t testing.TB, pkgs ...Package) {
	t.Helper()
	WritePackages(t, filepath.Join(r.Dir, "pkg"), pkgs...)
	if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key}); err != nil {
		t.Fatal(err)
	}
}
