package squashfs

import (
	"bytes"
	"errors"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
)

// TestExtractMksquashfs extracts mksquashfs images of a rich tree and
// compares the result with the tree on disk: content, modes including
// setuid/setgid/sticky, owners, mtimes, xattrs, symlinks, hard links and
// device nodes. The sparse file must come out sparse.
func TestExtractMksquashfs(t *testing.T) {
	distritest.NeedTool(t, "mksquashfs")
	distritest.NeedRoot(t)
	src := richSource(t)
	for _, tt := range []struct {
		name string
		args []string
		jobs int
	}{
		{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX"}, 0},
		{"zstd", []string{"-comp", "zstd"}, 0},
		{"xz one job", []string{"-comp", "xz", "-no-fragments"}, 1},
		{"gzip 4k blocks", []string{"-comp", "gzip", "-b", "4096", "-always-use-fragments"}, 3},
		{"lz4", []string{"-comp", "lz4"}, 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(mksquashfs(t, src, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			dst := filepath.Join(t.TempDir(), "out") // Extract creates it
			var logBuf bytes.Buffer
			if err := r.Extract(dst, ExtractOptions{Jobs: tt.jobs, Log: log.New(&logBuf, "", 0)}); err != nil {
				t.Fatal(err)
			}
			for _, d := range distritest.DiffTrees(src, dst) {
				t.Error(d)
			}
			if logBuf.Len() > 0 {
				t.Errorf("Extract logged, want nothing as root:\n%s", logBuf.String())
			}
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(dst, "sizes/sparse"), &st); err != nil {
				t.Fatal(err)
			}
			if used := st.Blocks * 512; used > 4<<20 {
				t.Errorf("sizes/sparse uses %d bytes on disk for %d bytes of data: holes not kept", used, st.Size)
			}
		})
	}
}

// TestExtractFixtures extracts the committed images without needing
// squashfs-tools.
func TestExtractFixtures(t *testing.T) {
	distritest.NeedRoot(t) // device nodes
	for _, name := range []string{"gzip.sqfs", "xz.sqfs", "zstd.sqfs", "lz4.sqfs", "none.sqfs", "nofrag.sqfs", "allfrag.sqfs"} {
		t.Run(strings.TrimSuffix(name, ".sqfs"), func(t *testing.T) {
			r := openFixture(t, name)
			dst := filepath.Join(t.TempDir(), "out")
			if err := r.Extract(dst, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			got := treeNodes(t, dst)
			want := fixtureNodes()
			// The disk reports what it stores: symlink sizes agree, but
			// special files have no size either way.
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("extracted tree mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExtractSubtree extracts one directory of an image.
func TestExtractSubtree(t *testing.T) {
	distritest.NeedTool(t, "mksquashfs")
	src := t.TempDir()
	distritest.RichTree(t, src)
	r, err := Open(mksquashfs(t, src, "-comp", "zstd"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, sub := range []string{"links", "xattrs", "modes/sticky"} {
		t.Run(sub, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out")
			if err := r.Extract(dst, ExtractOptions{Path: sub}); err != nil {
				t.Fatal(err)
			}
			for _, d := range distritest.DiffTrees(filepath.Join(src, sub), dst) {
				t.Error(d)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		err := r.Extract(t.TempDir(), ExtractOptions{Path: "nope"})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Extract(Path: nope) = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("file", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "one")
		if err := r.Extract(dst, ExtractOptions{Path: "sizes/4096"}); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(src, "sizes/4096"))
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("extracted sizes/4096: %d bytes, %v; want %d bytes", len(got), err, len(want))
		}
	})
}

// TestExtractExisting refuses to overwrite: a corrupt or hostile image
// must not replace files outside what it creates.
func TestExtractExisting(t *testing.T) {
	r := openFixture(t, "zstd.sqfs")
	dst := t.TempDir()
	if err := os.WriteFile(filepath.Join(dst, "hello"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := r.Extract(dst, ExtractOptions{})
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Extract over an existing file = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "hello")); string(b) != "mine" {
		t.Errorf("existing file overwritten with %q", b)
	}
}
