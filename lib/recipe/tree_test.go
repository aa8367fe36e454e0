package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, version := range files {
		f := filepath.Join(root, p, FileName)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		content := "source: \"empty://\"\nversion: \"" + version + "\"\n"
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTree(t *testing.T) {
	root := writeTree(t, map[string]string{
		"hello":      "2.10-1",
		"lua/5.3.6":  "5.3.6-1",
		"lua/5.4.4":  "5.4.4-1",
		"gcc/12.2.0": "12.2.0-3",
		"gcc/13.1.0": "13.1.0-4",
		"gcc-i686":   "12.2.0-1",
		"odd/5.0":    "5.1-1", // not a version directory
	})
	if name, r := Identify(filepath.Join(root, "lua", "5.3.6"), "5.3.6-1"); name != "lua" || r != root {
		t.Errorf("Identify(lua/5.3.6) = %q, %q; want lua, %s", name, r, root)
	}
	if name, r := Identify(filepath.Join(root, "hello"), "2.10-1"); name != "hello" || r != root {
		t.Errorf("Identify(hello) = %q, %q; want hello, %s", name, r, root)
	}
	for _, tt := range []struct{ dep, dir, err string }{
		{dep: "hello", dir: "hello"},
		{dep: "hello-amd64", dir: "hello"},
		{dep: "hello-amd64-2.10-1", dir: "hello"},
		{dep: "hello-amd64-2.9-1", err: "no recipe of hello has version 2.9-1 (have 2.10-1)"},
		{dep: "lua-amd64-5.3.6-1", dir: "lua/5.3.6"},
		{dep: "lua-amd64-5.4.4-1", dir: "lua/5.4.4"},
		{dep: "lua", err: `"lua" is ambiguous`},
		{dep: "gcc", dir: "gcc/13.1.0"}, // the newest revision
		{dep: "gcc-amd64-12.2.0-3", dir: "gcc/12.2.0"},
		{dep: "gcc-i686", dir: "gcc-i686"}, // a package of that name wins over gcc for i686
		{dep: "nonexistent", err: "no such file"},
		{dep: "odd", err: `version "5.1-1" does not start with its directory's name`},
	} {
		ref, err := Resolve(root, tt.dep)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Resolve(%q) = %v, %v; want an error containing %q", tt.dep, ref, err, tt.err)
			}
			continue
		}
		if err != nil || ref.Dir != filepath.Join(root, tt.dir) {
			t.Errorf("Resolve(%q) = %v, %v; want %s", tt.dep, ref.Dir, err, tt.dir)
		}
	}
	if _, err := Resolve(root, "nonexistent"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Resolve(nonexistent) = %v, want os.ErrNotExist", err)
	}

	delete := func(p string) {
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	delete("odd")
	refs, err := All(root)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range refs {
		ids = append(ids, r.ID(root)+"@"+r.Version)
	}
	if got, want := strings.Join(ids, " "), "gcc/12.2.0@12.2.0-3 gcc/13.1.0@13.1.0-4 gcc-i686@12.2.0-1 hello@2.10-1 lua/5.3.6@5.3.6-1 lua/5.4.4@5.4.4-1"; got != want {
		t.Errorf("All = %s\nwant  %s", got, want)
	}
	idx := NewIndex(refs)
	if ref, ok, err := idx.Resolve("lua-amd64-5.4.4-1"); !ok || err != nil || ref.ID(root) != "lua/5.4.4" {
		t.Errorf("Index.Resolve(lua-amd64-5.4.4-1) = %v, %v, %v", ref, ok, err)
	}
	if _, ok, err := idx.Resolve("lua"); !ok || err == nil {
		t.Errorf("Index.Resolve(lua) = %v, %v; want the ambiguity", ok, err)
	}
	if _, ok, err := idx.Resolve("libc6"); ok || err != nil {
		t.Errorf("Index.Resolve(libc6) = %v, %v; want not found", ok, err)
	}
}
