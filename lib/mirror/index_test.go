package mirror_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/pb"
)

var testPkgs = []mirrortest.Package{
	{Name: "libbar-amd64-1.0-1"},
	{Name: "libfoo-amd64-2.0-3", Deps: []string{"libbar-amd64-1.0-1"}, Files: map[string]string{
		"out/lib/libfoo.so.2":       "ELF",
		"out/include/foo.h":         "int foo;",
		"out/share/doc/foo/README":  "foo",
		"out/private/not-exchanged": "x",
	}, Symlinks: map[string]string{"out/lib/libfoo.so": "libfoo.so.2"}},
	{Name: "hello-amd64-2.12-9", Deps: []string{"libfoo-amd64-2.0-3"}, Files: map[string]string{
		"out/bin/hello":   "#!/bin/sh\necho hello\n",
		"bin/hello":       "#!/bin/sh\nexec /ro/hello-amd64-2.12-9/out/bin/hello\n",
		"out/sbin/hellod": "daemon",
		"etc/hello.conf":  "greeting=hello\n",
	}},
	// Revision 10 is newer than 9 although "10" < "9" as strings.
	{Name: "hello-amd64-2.10-10", Files: map[string]string{"out/bin/hello": "old upstream, newer revision"}},
}

func readIndex(t *testing.T, repo string) *pb.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "pkg", mirror.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx pb.Index
	if err := proto.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return &idx
}

func sha(t *testing.T, p string) (uint64, string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return uint64(len(b)), hex.EncodeToString(s[:])
}

func TestIndex(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	pkgDir := filepath.Join(r.Dir, "pkg")
	idx := readIndex(t, r.Dir)

	byName := map[string]*pb.Package{}
	var names []string
	for _, p := range idx.GetPackage() {
		byName[p.GetName()] = p
		names = append(names, p.GetName())
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "hello-amd64-2.12-9", "libbar-amd64-1.0-1", "libfoo-amd64-2.0-3"}, names); diff != "" {
		t.Errorf("index packages mismatch (-want +got):\n%s", diff)
	}
	for _, p := range idx.GetPackage() {
		size, sum := sha(t, filepath.Join(pkgDir, p.GetName()+".squashfs"))
		if p.GetImageSize() != size || p.GetImageSha256() != sum {
			t.Errorf("%s: image %d %s, want %d %s", p.GetName(), p.GetImageSize(), p.GetImageSha256(), size, sum)
		}
		size, sum = sha(t, filepath.Join(pkgDir, p.GetName()+".meta.textproto"))
		if p.GetMetaSize() != size || p.GetMetaSha256() != sum {
			t.Errorf("%s: meta %d %s, want %d %s", p.GetName(), p.GetMetaSize(), p.GetMetaSha256(), size, sum)
		}
	}
	hello := byName["hello-amd64-2.12-9"]
	if diff := cmp.Diff([]string{"libbar-amd64-1.0-1", "libfoo-amd64-2.0-3"}, hello.GetRuntimeDep()); diff != "" {
		t.Errorf("hello runtime_dep closure mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bin/hello", "bin/hellod"}, hello.GetProvides()); diff != "" {
		t.Errorf("hello provides mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"include/foo.h", "lib/libfoo.so", "lib/libfoo.so.2", "share/doc/foo/README"}, byName["libfoo-amd64-2.0-3"].GetProvides()); diff != "" {
		t.Errorf("libfoo provides mismatch (-want +got):\n%s", diff)
	}

	// Pointer metas are copies of the newest revision's meta.
	for _, tt := range []struct{ pointer, full string }{
		{"hello-amd64", "hello-amd64-2.10-10"},
		{"libfoo-amd64", "libfoo-amd64-2.0-3"},
	} {
		got, err := os.ReadFile(filepath.Join(pkgDir, tt.pointer+".meta.textproto"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(pkgDir, tt.full+".meta.textproto"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.meta.textproto is not a copy of %s's meta", tt.pointer, tt.full)
		}
	}

	// Siblings decompress to their originals.
	for _, name := range []string{"index", "hello-amd64-2.12-9.squashfs", "hello-amd64-2.12-9.meta.textproto", "hello-amd64.meta.textproto"} {
		want, err := os.ReadFile(filepath.Join(pkgDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, suf := range []string{".zst", ".gz"} {
			got := decompress(t, filepath.Join(pkgDir, name+suf))
			if !bytes.Equal(got, want) {
				t.Errorf("%s%s does not decompress to %s", name, suf, name)
			}
		}
		// zstd frames carry the decoded size, which clients (lib/repo)
		// use to size their buffers. (Below 256 bytes a frame that is
		// not single-segment has no room for it.)
		if len(want) < 256 {
			continue
		}
		zb, err := os.ReadFile(filepath.Join(pkgDir, name+".zst"))
		if err != nil {
			t.Fatal(err)
		}
		var h zstd.Header
		if err := h.Decode(zb); err != nil || !h.HasFCS || h.FrameContentSize != uint64(len(want)) {
			t.Errorf("%s.zst frame header: content size %d (present %v, %v), want %d", name, h.FrameContentSize, h.HasFCS, err, len(want))
		}
	}

	// The signature verifies.
	b, err := os.ReadFile(filepath.Join(pkgDir, mirror.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(pkgDir, mirror.SignatureFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := minisign.Verify(bytes.NewReader(b), sig, r.Pub()); err != nil {
		t.Errorf("index signature: %v", err)
	}
}

func decompress(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rd io.Reader
	if strings.HasSuffix(p, ".zst") {
		d, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		rd = d
	} else {
		g, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		rd = g
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decompress %s: %v", p, err)
	}
	return b
}

func TestIndexIncremental(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	pkgDir := filepath.Join(r.Dir, "pkg")
	run := func() []string {
		t.Helper()
		var buf bytes.Buffer
		if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key, Log: log.New(&buf, "", 0)}); err != nil {
			t.Fatal(err)
		}
		return strings.Fields(strings.ReplaceAll(buf.String(), "\n", " "))
	}
	if got := run(); len(got) != 0 {
		t.Errorf("second run with nothing new did work: %q", got)
	}

	mirrortest.WritePackages(t, pkgDir, mirrortest.Package{Name: "libbar-amd64-1.1-2"})
	got := strings.Join(run(), " ")
	for _, want := range []string{
		"hash libbar-amd64-1.1-2.squashfs", "compress libbar-amd64-1.1-2.squashfs",
		"hash libbar-amd64-1.1-2.meta.textproto", "hash libbar-amd64.meta.textproto",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("run after adding a package logged %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "hello") {
		t.Errorf("run after adding libbar touched hello: %q", got)
	}

	// A deleted sibling is made again; a removed package's siblings and
	// pointer meta go away.
	if err := os.Remove(filepath.Join(pkgDir, "hello-amd64-2.12-9.squashfs.zst")); err != nil {
		t.Fatal(err)
	}
	for _, suf := range []string{".squashfs", ".meta.textproto"} {
		if err := os.Remove(filepath.Join(pkgDir, "libfoo-amd64-2.0-3"+suf)); err != nil {
			t.Fatal(err)
		}
	}
	got = strings.Join(run(), " ")
	if !strings.Contains(got, "compress hello-amd64-2.12-9.squashfs") || strings.Contains(got, "hash hello") {
		t.Errorf("run after deleting a sibling logged %q, want only a compress of it", got)
	}
	for _, gone := range []string{"libfoo-amd64-2.0-3.squashfs.zst", "libfoo-amd64-2.0-3.meta.textproto.gz", "libfoo-amd64.meta.textproto", "libfoo-amd64.meta.textproto.zst"} {
		if _, err := os.Stat(filepath.Join(pkgDir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v) after its package was removed", gone, err)
		}
	}
	if n := len(readIndex(t, r.Dir).GetPackage()); n != 4 {
		t.Errorf("index has %d packages, want 4", n)
	}
}

func TestIndexErrors(t *testing.T) {
	k, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		files []string
		want  string
	}{
		{name: "image without meta", files: []string{"a-amd64-1-1.squashfs"}, want: "no meta file"},
		{name: "bad image name", files: []string{"notapackage.squashfs"}, want: "not named"},
		{name: "not an image", files: []string{"a-amd64-1-1.squashfs", "a-amd64-1-1.meta.textproto"}, want: "a-amd64-1-1.squashfs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo := t.TempDir()
			os.MkdirAll(filepath.Join(repo, "pkg"), 0o755)
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(repo, "pkg", f), []byte("garbage"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := mirror.Index(mirror.IndexOptions{Repo: repo, Key: k})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Index = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
