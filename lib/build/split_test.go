package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/pb"
)

// TestSplitPackages splits a package tree without building anything:
// claims move files and directories (into claim.dir when set), symlinks
// that cross between the outputs are rewritten and recorded, and bad
// claims are errors naming the recipe.
func TestSplitPackages(t *testing.T) {
	tree := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "pkg")
		write(t, filepath.Join(dir, "out/lib/libfoo.so.1.2"), []byte("lib"))
		write(t, filepath.Join(dir, "out/include/foo.h"), []byte("h"))
		write(t, filepath.Join(dir, "out/lib/pkgconfig/foo.pc"), []byte("pc"))
		write(t, filepath.Join(dir, "out/share/doc/foo/README"), []byte("doc"))
		for at, target := range map[string]string{
			"out/lib/libfoo.so.1":      "libfoo.so.1.2",
			"out/lib/libfoo.so":        "libfoo.so.1",
			"out/share/doc/foo/header": "../../../include/foo.h",
			"out/bin/abs":              "/etc/alternatives/x",
		} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, at)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, at)); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	recipe := func(splits ...*pb.SplitPackage) *Recipe {
		return &Recipe{Name: "foo", File: "pkgs/foo/build.textproto", Build: &pb.Build{
			Version:      new("1.0-1"),
			RuntimeDep:   []string{"bar"},
			SplitPackage: splits,
		}}
	}
	claim := func(glob, dir string) *pb.Claim {
		c := &pb.Claim{Glob: new(glob)}
		if dir != "" {
			c.Dir = new(dir)
		}
		return c
	}

	dir := tree(t)
	outputs, err := splitPackages(recipe(
		&pb.SplitPackage{Name: new("foo-dev"), RuntimeDep: []string{"baz"}, Claim: []*pb.Claim{
			claim("out/include", ""), claim("out/lib/pkgconfig", ""), claim("out/lib/*.so", ""),
		}},
		&pb.SplitPackage{Name: new("foo-doc"), Claim: []*pb.Claim{claim("out/share/doc/foo/*", "out/share/doc/foo-doc")}},
	), dir, filepath.Join(t.TempDir(), "split"))
	if err != nil {
		t.Fatal(err)
	}
	if len(outputs) != 3 || outputs[0].full != "foo-amd64-1.0-1" || outputs[1].full != "foo-dev-amd64-1.0-1" || outputs[2].full != "foo-doc-amd64-1.0-1" {
		t.Fatalf("outputs %+v, want foo, foo-dev, foo-doc", outputs)
	}
	main, dev, doc := outputs[0], outputs[1], outputs[2]
	if main.runtimeDep[0] != "bar" || dev.runtimeDep[0] != "baz" {
		t.Errorf("declared runtime deps: main %q, dev %q", main.runtimeDep, dev.runtimeDep)
	}
	for _, tt := range []struct {
		o      *output
		path   string
		exists bool
	}{
		{main, "out/lib/libfoo.so.1.2", true},
		{main, "out/lib/libfoo.so.1", true},
		{main, "out/bin/abs", true},
		{main, "out/include", false},
		{main, "out/lib/libfoo.so", false},
		{main, "out/lib/pkgconfig", false},
		{main, "out/share/doc/foo/README", false},
		{dev, "out/include/foo.h", true},
		{dev, "out/lib/pkgconfig/foo.pc", true},
		{dev, "out/lib/libfoo.so", true},
		{doc, "out/share/doc/foo-doc/README", true},
	} {
		_, err := os.Lstat(filepath.Join(tt.o.dir, tt.path))
		if (err == nil) != tt.exists {
			t.Errorf("%s: %s exists %v, want %v", tt.o.name, tt.path, err == nil, tt.exists)
		}
	}
	for _, tt := range []struct {
		o          *output
		path, want string
	}{
		// Into another output: by its /ro/<full> path.
		{dev, "out/lib/libfoo.so", "../../../foo-amd64-1.0-1/out/lib/libfoo.so.1"},
		// Moved by claim.dir, target in a third output.
		{doc, "out/share/doc/foo-doc/header", "../../../../../foo-dev-amd64-1.0-1/out/include/foo.h"},
		// Inside one output and absolute targets: unchanged.
		{main, "out/lib/libfoo.so.1", "libfoo.so.1.2"},
		{main, "out/bin/abs", "/etc/alternatives/x"},
	} {
		got, err := os.Readlink(filepath.Join(tt.o.dir, tt.path))
		if err != nil || got != tt.want {
			t.Errorf("%s: %s → %q (%v), want %q", tt.o.name, tt.path, got, err, tt.want)
		}
	}
	if !dev.links[main.full] || !doc.links[dev.full] || len(main.links) != 0 {
		t.Errorf("cross-output links: main %v, dev %v, doc %v", main.links, dev.links, doc.links)
	}

	for _, tt := range []struct {
		name  string
		split *pb.SplitPackage
		want  string
	}{
		{"nothing", &pb.SplitPackage{Name: new("x"), Claim: []*pb.Claim{claim("out/nope/*", "")}}, `claim "out/nope/*" matches nothing`},
		{"outside", &pb.SplitPackage{Name: new("x"), Claim: []*pb.Claim{claim("../x", "")}}, "must be a relative path inside the package"},
		{"same-name", &pb.SplitPackage{Name: new("foo"), Claim: []*pb.Claim{claim("out/include", "")}}, `bad or duplicate name "foo"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := splitPackages(recipe(tt.split), tree(t), filepath.Join(t.TempDir(), "split"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "pkgs/foo/build.textproto") {
				t.Errorf("err = %v, want the recipe and %q", err, tt.want)
			}
		})
	}
}

// TestWrapperBytes checks the configuration written into the wrapper
// stub (without compiling one: a stand-in with the marker).
func TestWrapperBytes(t *testing.T) {
	stub := []byte("ELF...." + wrapperMarker + strings.Repeat("\x00", wrapperConfigSize) + "tail")
	got, err := wrapperBytes(stub, "/ro/x-amd64-1-1/out/bin/x", []string{"PERL5LIB=/ro/x-amd64-1-1/out/lib/perl5"})
	if err != nil {
		t.Fatal(err)
	}
	want := "ELF...." + "/ro/x-amd64-1-1/out/bin/x\x00PERL5LIB=/ro/x-amd64-1-1/out/lib/perl5\x00\x00"
	if !strings.HasPrefix(string(got), want) || len(got) != len(stub) || !strings.HasSuffix(string(got), "\x00tail") {
		t.Errorf("wrapperBytes = %q…, want %q… and the stub's length", got[:len(want)+2], want)
	}
	if _, err := wrapperBytes(stub, strings.Repeat("x", wrapperConfigSize), nil); err == nil {
		t.Error("a configuration larger than the area: no error")
	}
	if _, err := wrapperBytes([]byte("no marker"), "/x", nil); err == nil {
		t.Error("a stub without the marker: no error")
	}
}
