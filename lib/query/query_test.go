package query

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestResolveStaysInRoot attacks resolve with symlinks that would leave
// the root: relative ones climbing above it and absolute ones. Both must
// be taken inside the root, as the kernel would with the root as /.
func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	for _, l := range []struct{ name, target string }{
		{"up", "../../../../../../ro/bin"}, // climbs above root: stops at its /
		{"abs", "/ro/lib"},
		{"hostetc", "/etc"}, // the host's /etc must not be read
		{"loop", "loop"},
	} {
		if err := os.Symlink(l.target, filepath.Join(root, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ in, want, wantErr string }{
		{in: "/up/bash", want: "/ro/bin/bash"},
		{in: "/abs/libz.so.1", want: "/ro/lib/libz.so.1"},
		{in: "/ro/bin/bash", want: "/ro/bin/bash"},
		{in: "/hostetc/ssl/x", wantErr: "no such file"}, // the root has no /etc; the host has
		{in: "/loop/x", wantErr: "too many symlinks"},
	} {
		got, err := resolve(root, tt.in)
		if tt.wantErr != "" {
			if err == nil || !contains(err.Error(), tt.wantErr) {
				t.Errorf("resolve(%s) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestCatalog(t *testing.T) {
	c := NewCatalog("amd64",
		[]Package{{Name: "zlib-amd64-1.3-4", Installed: true, Provides: []string{"lib/libz.so.1"}}, {Name: "bash-amd64-5.2-3", Deps: []string{"zlib-amd64-1.3-4"}, Installed: true}},
		[]Package{{Name: "bash-amd64-5.2-4", Repo: "r", Deps: []string{"zlib-amd64-1.3-4"}}, {Name: "zlib-amd64-1.3-4", Repo: "r", Size: 9}},
	)
	if got, err := c.Resolve("bash"); err != nil || got != "bash-amd64-5.2-4" {
		t.Errorf("Resolve(bash) = %q, %v; want the newest, available or not", got, err)
	}
	if got := c.Search("LIBZ"); !slices.Equal(got, []string{"zlib-amd64-1.3-4"}) {
		t.Errorf("Search(LIBZ) = %q", got)
	}
	info, err := c.Info("zlib")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Installed || info.Repo != "r" || info.Version != "1.3-4" ||
		!slices.Equal(info.ReverseDeps, []string{"bash-amd64-5.2-3", "bash-amd64-5.2-4"}) {
		t.Errorf("Info(zlib) = %+v", info)
	}
	if _, err := c.Resolve("../etc"); err == nil {
		t.Error("Resolve accepted a name outside the safe alphabet")
	}
}
