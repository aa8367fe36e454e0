package pack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pb"
)

func TestPack(t *testing.T) {
	src := t.TempDir()
	distritest.RichTree(t, src)
	out := t.TempDir()
	image, err := Pack(Options{Name: "rich-amd64-1.0-2", Dir: src, OutDir: out})
	if err != nil {
		t.Fatalf("Pack() = %v", err)
	}
	if got, want := image, filepath.Join(out, "rich-amd64-1.0-2.squashfs"); got != want {
		t.Errorf("Pack() = %q, want %q", got, want)
	}
	meta, err := pb.ReadMetaFile(filepath.Join(out, "rich-amd64-1.0-2.meta.textproto"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := meta.GetVersion(), "1.0-2"; got != want {
		t.Errorf("meta version = %q, want %q", got, want)
	}
	if got, want := meta.GetSourcePkg(), "rich"; got != want {
		t.Errorf("meta source_pkg = %q, want %q", got, want)
	}
	if len(meta.GetProvides()) != 0 {
		t.Errorf("meta provides = %q, want none: the tree has no exchange directories", meta.GetProvides())
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("OutDir holds %d entries, want the image and the meta only", len(entries))
	}
	// The kernel must read back exactly the tree.
	mnt := distritest.MountSquashfs(t, image)
	if diffs := distritest.DiffTrees(src, mnt); len(diffs) > 0 {
		t.Errorf("kernel mount of the package differs from its tree:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestPackErrors(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	metaFile := filepath.Join(t.TempDir(), "m.meta.textproto")
	if err := os.WriteFile(metaFile, []byte("version: \"9.9-9\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "no arch", opts: Options{Name: "hello-1.0-1", Dir: src}, wantErr: "not a full package name"},
		{name: "no revision", opts: Options{Name: "hello-amd64-1.0", Dir: src}, wantErr: "no revision"},
		{name: "missing tree", opts: Options{Name: "hello-amd64-1.0-1", Dir: filepath.Join(src, "nope")}, wantErr: "no such file"},
		{name: "tree is a file", opts: Options{Name: "hello-amd64-1.0-1", Dir: filepath.Join(src, "file")}, wantErr: "not a directory"},
		{name: "meta version mismatch", opts: Options{Name: "hello-amd64-1.0-1", Dir: src, MetaFile: metaFile}, wantErr: `version "9.9-9" does not match`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			tt.opts.OutDir = out
			_, err := Pack(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Pack() = %v, want an error containing %q", err, tt.wantErr)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a failed Pack left %d entries in the output directory", len(entries))
			}
		})
	}
}

func TestPackProvides(t *testing.T) {
	src := t.TempDir()
	for _, p := range []string{"bin/hello", "out/bin/hello", "out/lib/libhello.so.1", "out/share/man/man1/hello.1", "etc/hello.conf"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("libhello.so.1", filepath.Join(src, "out/lib/libhello.so")); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := Pack(Options{Name: "hello-amd64-2.12-1", Dir: src, OutDir: out}); err != nil {
		t.Fatal(err)
	}
	meta, err := pb.ReadMetaFile(filepath.Join(out, "hello-amd64-2.12-1.meta.textproto"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin/hello", "lib/libhello.so", "lib/libhello.so.1", "share/man/man1/hello.1"}
	if diff := cmp.Diff(want, meta.GetProvides()); diff != "" {
		t.Errorf("meta provides mismatch (-want +got):\n%s", diff)
	}
}
