package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"distri.dev/distri/lib/distritest"
)

type entry struct {
	name, body, link string
	typ              byte
}

func tarball(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		switch e.typ {
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeReg:
			h.Size = int64(len(e.body))
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
	return buf.Bytes()
}

var upstream = []entry{
	{name: "hello-2.10/", typ: tar.TypeDir},
	{name: "hello-2.10/README", body: "hello\n", typ: tar.TypeReg},
	{name: "hello-2.10/src/", typ: tar.TypeDir},
	{name: "hello-2.10/src/hello.c", body: "int main() {}\n", typ: tar.TypeReg},
	{name: "hello-2.10/README.link", link: "README", typ: tar.TypeSymlink},
	{name: "hello-2.10/README.hard", link: "hello-2.10/README", typ: tar.TypeLink},
}

func compress(t *testing.T, format string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch format {
	case "gz":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zst":
		w, err = zstd.NewWriter(&buf)
	case "bz2":
		distritest.NeedTool(t, "bzip2")
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	case "":
		return b
	default:
		t.Fatalf("format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkTree(t *testing.T, dst string, want map[string]string) {
	t.Helper()
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", name, b, err, content)
		}
	}
}

func TestExtractTarballs(t *testing.T) {
	raw := tarball(t, upstream)
	for _, tt := range []struct{ name, format string }{
		{"hello-2.10.tar.gz", "gz"},
		{"hello-2.10.tgz", "gz"},
		{"hello-2.10.tar.bz2", "bz2"},
		{"hello-2.10.tar.xz", "xz"},
		{"hello-2.10.tar.zst", "zst"},
		{"hello-2.10.tar", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			archive := writeTemp(t, compress(t, tt.format, raw))
			dst := filepath.Join(t.TempDir(), "src")
			if err := Extract(archive, "https://example.invalid/"+tt.name, dst); err != nil {
				t.Fatal(err)
			}
			checkTree(t, dst, map[string]string{"README": "hello\n", "src/hello.c": "int main() {}\n", "README.link": "hello\n", "README.hard": "hello\n"})
			fi, err := os.Stat(filepath.Join(dst, "README"))
			if err != nil || !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
				t.Errorf("README mtime %v, %v; want the archive's", fi.ModTime(), err)
			}
			// Extraction is always fresh.
			if err := Extract(archive, tt.name, dst); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Errorf("extracting into an existing dir: err = %v, want already exists", err)
			}
		})
	}
}

// arArchive builds an ar archive (a .deb) of the members.
func arArchive(members ...[2]string) []byte {
	var buf bytes.Buffer
	buf.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m[0], 1700000000, 0, 0, "100644", len(m[1]))
		buf.WriteString(m[1])
		if len(m[1])%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

func TestExtractDeb(t *testing.T) {
	data := tarball(t, []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "./usr/", typ: tar.TypeDir},
		{name: "./usr/bin/", typ: tar.TypeDir},
		{name: "./usr/bin/hello", body: "ELF", typ: tar.TypeReg},
		{name: "./lib64/ld.so", link: "/lib/x86_64-linux-gnu/ld.so", typ: tar.TypeSymlink},
	})
	for _, format := range []string{"xz", "zst", "gz"} {
		t.Run(format, func(t *testing.T) {
			deb := arArchive(
				[2]string{"debian-binary", "2.0\n"},
				[2]string{"control.tar.xz", "odd"},
				[2]string{"data.tar." + format, string(compress(t, format, data))},
			)
			dst := filepath.Join(t.TempDir(), "src")
			if err := Extract(writeTemp(t, deb), "debian:pool/main/h/hello/hello_2.10-3_amd64.deb", dst); err != nil {
				t.Fatal(err)
			}
			checkTree(t, dst, map[string]string{"usr/bin/hello": "ELF"})
			if l, err := os.Readlink(filepath.Join(dst, "lib64/ld.so")); err != nil || l != "/lib/x86_64-linux-gnu/ld.so" {
				t.Errorf("lib64/ld.so -> %q, %v", l, err)
			}
		})
	}
	if err := Extract(writeTemp(t, arArchive([2]string{"debian-binary", "2.0\n"})), "x.deb", filepath.Join(t.TempDir(), "d")); err == nil || !strings.Contains(err.Error(), "no data.tar") {
		t.Errorf("deb without data: err = %v", err)
	}
}

func TestExtractTraversal(t *testing.T) {
	for _, tt := range []struct {
		name    string
		entries []entry
	}{
		{"dotdot", []entry{{name: "top/../../evil", body: "x", typ: tar.TypeReg}}},
		{"absolute", []entry{{name: "/tmp/evil", body: "x", typ: tar.TypeReg}}},
		{"symlink escape", []entry{
			{name: "top/link", link: "/tmp", typ: tar.TypeSymlink},
			{name: "top/link/evil", body: "x", typ: tar.TypeReg},
		}},
		{"relative symlink escape", []entry{
			{name: "top/link", link: "../../..", typ: tar.TypeSymlink},
			{name: "top/link/evil", body: "x", typ: tar.TypeReg},
		}},
		{"hard link escape", []entry{{name: "top/hard", link: "top/../../etc/passwd", typ: tar.TypeLink}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "a", "src")
			err := Extract(writeTemp(t, tarball(t, tt.entries)), "x.tar", dst)
			if err == nil {
				t.Fatal("Extract succeeded, want an error")
			}
			if testing.Verbose() {
				t.Log(err)
			}
			if _, err := os.Lstat(filepath.Join(base, "a", "evil")); err == nil {
				t.Error("evil written outside the extraction dir")
			}
			if _, err := os.Lstat("/tmp/evil"); err == nil {
				t.Error("/tmp/evil exists")
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	distritest.NeedTool(t, "patch")
	recipeDir := t.TempDir()
	patch := `--- a/README
+++ b/README
@@ -1 +1 @@
-hello
+hello, patched
`
	if err := os.WriteFile(filepath.Join(recipeDir, "fix.patch"), []byte(patch), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recipeDir, "extra.conf"), []byte("extra\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := writeTemp(t, compress(t, "gz", tarball(t, upstream[:2])))
	dst := filepath.Join(t.TempDir(), "src")
	if err := Prepare(archive, "hello.tar.gz", dst, recipeDir, []string{"fix.patch"}, []string{"extra.conf"}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dst, map[string]string{"README": "hello, patched\n", "extra.conf": "extra\n"})
	// Patched and extra files have the archive's newest time, not now.
	for _, f := range []string{"README", "extra.conf"} {
		fi, err := os.Stat(filepath.Join(dst, f))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: mtime %v, want the archive's newest", f, fi.ModTime())
		}
	}

	// A patch that does not apply is an error naming it.
	dst2 := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(filepath.Join(recipeDir, "bad.patch"), []byte(strings.ReplaceAll(patch, "-hello", "-goodbye")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(archive, "hello.tar.gz", dst2, recipeDir, []string{"bad.patch"}, nil); err == nil || !strings.Contains(err.Error(), "bad.patch") {
		t.Errorf("bad patch: err = %v, want an error naming bad.patch", err)
	}
}
