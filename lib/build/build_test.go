package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/squashfs"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

// makeDeb returns a .deb (ar archive) whose data.tar.zst holds entries
// and whose control.tar.zst a control file.
func makeDeb(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	control := zstdTar(t, []tarEntry{{name: "./control", body: "Package: tool\n", typ: tar.TypeReg}})
	var buf bytes.Buffer
	buf.WriteString("!<arch>\n")
	for _, m := range [][2]string{{"debian-binary", "2.0\n"}, {"control.tar.zst", control}, {"data.tar.zst", zstdTar(t, entries)}} {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m[0], 0, 0, 0, "100644", len(m[1]))
		buf.WriteString(m[1])
		if len(m[1])%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

// zstdTar returns a zstd-compressed tar of entries.
func zstdTar(t *testing.T, entries []tarEntry) string {
	t.Helper()
	var tb bytes.Buffer
	zw, err := zstd.NewWriter(&tb)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return tb.String()
}

var debEntries = []tarEntry{
	{name: "./", typ: tar.TypeDir, mode: 0o755},
	{name: "./usr/bin/", typ: tar.TypeDir, mode: 0o755},
	{name: "./usr/bin/tool", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
	{name: "./usr/sbin/admin", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
	{name: "./usr/lib/x86_64-linux-gnu/libt.so.1.0", body: "lib", typ: tar.TypeReg},
	{name: "./usr/lib/x86_64-linux-gnu/libt.so.1", link: "libt.so.1.0", typ: tar.TypeSymlink},
	{name: "./lib64/libt.so", link: "/usr/lib/x86_64-linux-gnu/libt.so.1", typ: tar.TypeSymlink},
	{name: "./usr/bin/alt", link: "/etc/alternatives/alt", typ: tar.TypeSymlink},
	{name: "./etc/tool.conf", body: "conf", typ: tar.TypeReg},
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// setup writes pkgs/tool (a Debian import of a local .deb, depending at
// run time on pkgs/base) and returns the pkgs dir.
func setup(t *testing.T) string {
	t.Helper()
	pkgs := t.TempDir()
	deb := makeDeb(t, debEntries)
	h := sha256.Sum256(deb)
	write(t, filepath.Join(pkgs, "tool", "tool_1.0-2_amd64.deb"), deb)
	write(t, filepath.Join(pkgs, "tool", "build.textproto"), fmt.Appendf(nil, `source: "tool_1.0-2_amd64.deb"
hash: %q
version: "1.0-2-1"
runtime_dep: "base"
`, hex.EncodeToString(h[:])))
	write(t, filepath.Join(pkgs, "base", "build.textproto"), []byte(`source: "empty://"
version: "1-3"
runtime_dep: "base2"
`))
	write(t, filepath.Join(pkgs, "base2", "build.textproto"), []byte(`source: "empty://"
version: "2-1"
runtime_dep: "base"
`))
	return pkgs
}

func TestImportDebian(t *testing.T) {
	pkgs := setup(t)
	src := filepath.Join(t.TempDir(), "src")
	dest := filepath.Join(t.TempDir(), "dest")
	if err := source.Extract(filepath.Join(pkgs, "tool", "tool_1.0-2_amd64.deb"), "tool.deb", src); err != nil {
		t.Fatal(err)
	}
	if err := ImportDebian(src, dest); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"out/bin/tool":      "#!/bin/sh\n",
		"out/sbin/admin":    "#!/bin/sh\n",
		"etc/tool.conf":     "conf",
		"out/lib64/libt.so": "lib",
		"bin/tool":          "#!/bin/sh\n",
		"bin/admin":         "#!/bin/sh\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, want := range map[string]string{
		"out/lib64/libt.so":                  "../lib/x86_64-linux-gnu/libt.so.1",
		"out/lib/x86_64-linux-gnu/libt.so.1": "libt.so.1.0",
		"out/bin/alt":                        "/etc/alternatives/alt",
		"bin/tool":                           "../out/bin/tool",
		"bin/admin":                          "../out/sbin/admin",
	} {
		if got, err := os.Readlink(filepath.Join(dest, name)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %q", name, got, err, want)
		}
	}
}

func newBuilder(t *testing.T) *Builder {
	t.Helper()
	b, err := New(Options{RepoDir: t.TempDir(), Fetcher: &source.Fetcher{CacheDir: t.TempDir()}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildDebianImport(t *testing.T) {
	pkgs := setup(t)
	b := newBuilder(t)
	img, err := b.Build(t.Context(), filepath.Join(pkgs, "tool"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(img) != "tool-amd64-1.0-2-1.squashfs" {
		t.Errorf("image %s, want tool-amd64-1.0-2-1.squashfs", img)
	}
	r, err := squashfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"out/bin/tool", "bin/tool", "etc/tool.conf"} {
		if _, err := r.LookupPath(p); err != nil {
			t.Errorf("image lacks %s: %v", p, err)
		}
	}
	meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base-amd64-1-3", "base2-amd64-2-1"}; !slices.Equal(meta.GetRuntimeDep(), want) {
		t.Errorf("runtime_dep %q, want %q", meta.GetRuntimeDep(), want)
	}
	digest, err := InputDigest(filepath.Join(pkgs, "tool"))
	if err != nil {
		t.Fatal(err)
	}
	if meta.GetInputDigest() != digest || len(digest) != 64 {
		t.Errorf("input_digest %q, want %q", meta.GetInputDigest(), digest)
	}
	if !slices.Contains(meta.GetProvides(), "bin/tool") {
		t.Errorf("provides %q lacks bin/tool", meta.GetProvides())
	}

	// A second build, a second later (so that directories made during
	// the build get other time stamps), gives the same bytes.
	time.Sleep(1100 * time.Millisecond)
	b2 := newBuilder(t)
	img2, err := b2.Build(t.Context(), filepath.Join(pkgs, "tool"))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(img)
	y, _ := os.ReadFile(img2)
	if !bytes.Equal(x, y) {
		t.Error("two builds of the same recipe differ")
	}
}

func TestBuildErrors(t *testing.T) {
	pkgs := setup(t)
	b := newBuilder(t)
	write(t, filepath.Join(pkgs, "hello", "build.textproto"), []byte(`source: "https://example.invalid/hello-2.12.tar.gz"
hash: "`+strings.Repeat("0", 64)+`"
version: "2.12-1"
perlbuilder: {}
`))
	_, err := b.Build(t.Context(), filepath.Join(pkgs, "hello"))
	if !errors.Is(err, ErrNeedsSandbox) || !strings.Contains(err.Error(), "needs the build sandbox (not yet supported): ") || !strings.Contains(err.Error(), "hello") {
		t.Errorf("compiling recipe: err = %v, want ErrNeedsSandbox naming the recipe", err)
	}

	// A wrong sha256 names the recipe, and nothing lands in the repository.
	f := filepath.Join(pkgs, "tool", "build.textproto")
	rb, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	wrong := sha256.Sum256([]byte("something else"))
	i := bytes.Index(rb, []byte(`hash: "`)) + len(`hash: "`)
	write(t, f, slices.Concat(rb[:i], []byte(hex.EncodeToString(wrong[:])), rb[i+64:]))
	_, err = b.Build(t.Context(), filepath.Join(pkgs, "tool"))
	if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("wrong hash: err = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(b.opts.RepoDir, "pkg")); len(ents) != 0 {
		t.Errorf("failed build left %d files in the repository", len(ents))
	}

	// An unknown dependency is an error naming it.
	write(t, filepath.Join(pkgs, "dangling", "build.textproto"), []byte(`source: "empty://"
version: "1-1"
dep: "nosuch"
`))
	if _, err := InputDigest(filepath.Join(pkgs, "dangling")); err == nil || !strings.Contains(err.Error(), `unknown dependency "nosuch"`) {
		t.Errorf("unknown dep: err = %v", err)
	}
}

func TestInputDigest(t *testing.T) {
	pkgs := t.TempDir()
	write(t, filepath.Join(pkgs, "lib", "build.textproto"), []byte("source: \"empty://\"\nversion: \"1-1\"\n"))
	write(t, filepath.Join(pkgs, "app", "build.textproto"), []byte("source: \"empty://\"\nversion: \"1-1\"\ncherry_pick: \"fix.patch\"\nextra_file: \"x.conf\"\ndep: \"lib\"\n"))
	write(t, filepath.Join(pkgs, "app", "fix.patch"), []byte("patch 1"))
	write(t, filepath.Join(pkgs, "app", "x.conf"), []byte("conf 1"))
	app := filepath.Join(pkgs, "app")
	digest := func() string {
		t.Helper()
		d, err := InputDigest(app)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d0 := digest()
	if d0 != digest() {
		t.Fatal("digest not stable")
	}
	seen := map[string]string{d0: "initial"}
	for _, change := range []struct {
		name, file, content string
	}{
		{"patch", "app/fix.patch", "patch 2"},
		{"extra file", "app/x.conf", "conf 2"},
		{"dep recipe", "lib/build.textproto", "source: \"empty://\"\nversion: \"1-2\"\n"},
		{"recipe", "app/build.textproto", "source: \"empty://\"\nversion: \"1-2\"\ncherry_pick: \"fix.patch\"\nextra_file: \"x.conf\"\ndep: \"lib\"\n"},
	} {
		write(t, filepath.Join(pkgs, change.file), []byte(change.content))
		d := digest()
		if prev, ok := seen[d]; ok {
			t.Errorf("changing the %s gives the digest of %s", change.name, prev)
		}
		seen[d] = change.name
	}

	// A build dependency cycle is an error naming it.
	write(t, filepath.Join(pkgs, "lib", "build.textproto"), []byte("source: \"empty://\"\nversion: \"1-1\"\ndep: \"app\"\n"))
	if _, err := InputDigest(app); err == nil || !strings.Contains(err.Error(), "app -> lib -> app") {
		t.Errorf("cycle: err = %v", err)
	}
}
