package exchange

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestPaths(t *testing.T) {
	fsys := fstest.MapFS{
		"bin/bash":                    {Data: []byte("wrapper")},
		"out/bin/bash":                {Data: []byte("ELF")},
		"out/lib/libz.so.1":           {Data: []byte("ELF")},
		"out/lib/pkgconfig/zlib.pc":   {Data: []byte("pc")},
		"out/lib64":                   {Data: []byte("lib"), Mode: 0o777 | 1<<27}, // a symlink: not merged
		"out/share/man/man1/bash.1":   {Data: []byte("man")},
		"out/sbin/agetty":             {Data: []byte("ELF")},
		"out/libexec/helper":          {Data: []byte("ELF")},
		"out/etc-not-exchanged/x":     {Data: []byte("x")},
		"etc/bash.bashrc":             {Data: []byte("rc")},
		"out/include/zlib.h":          {Data: []byte("h")},
		"out/share/empty/.keep":       {Data: nil},
		"out/lib/girepository-1.0/.x": {Data: nil},
		"out/share/aclocal":           {Mode: fs.ModeDir | 0o755}, // empty: provided as a directory
		"out/share/a/b/c":             {Mode: fs.ModeDir | 0o755}, // only its leaf is listed
		"out/share/a/b.txt":           {Data: []byte("a file next to b")},
		"out/lib/z-last-empty":        {Mode: fs.ModeDir | 0o755}, // the last entry walked
		"out/libexec/empty":           {Mode: fs.ModeDir | 0o755},
		"out/include":                 {Mode: fs.ModeDir | 0o755}, // the exchange directory itself: no entry
	}
	got, err := Paths(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"bin/bash",
		"include/zlib.h",
		"lib/girepository-1.0/.x",
		"lib/libz.so.1",
		"lib/pkgconfig/zlib.pc",
		"lib/z-last-empty/",
		"libexec/empty/",
		"libexec/helper",
		"sbin/agetty",
		"share/a/b.txt",
		"share/a/b/c/",
		"share/aclocal/",
		"share/empty/.keep",
		"share/man/man1/bash.1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Paths() mismatch (-want +got):\n%s", diff)
	}
}

func TestImagePath(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
		ok             bool
	}{
		{name: "bin", in: "bin/bash", want: "bin/bash", ok: true},
		{name: "lib", in: "lib/libz.so.1", want: "out/lib/libz.so.1", ok: true},
		{name: "nested", in: "lib/pkgconfig/zlib.pc", want: "out/lib/pkgconfig/zlib.pc", ok: true},
		{name: "lib64 is not lib", in: "lib64/ld-linux-x86-64.so.2", want: "out/lib64/ld-linux-x86-64.so.2", ok: true},
		{name: "directory itself", in: "share", want: "out/share", ok: true},
		{name: "not exchanged", in: "etc/passwd", ok: false},
		{name: "prefix only", in: "binaries/x", ok: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ImagePath(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ImagePath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    string
		ok   bool
	}{
		{"file in bin", "bin/bash", true},
		{"deep", "lib/pkgconfig/zlib.pc", true},
		{"dots in names", "share/.hidden/..x", true},
		{"dotdot out of /ro", "bin/../../etc/shadow", false},
		{"dot", "bin/./bash", false},
		{"absolute", "/bin/bash", false},
		{"empty component", "bin//bash", false},
		{"directory", "share/aclocal/", true},
		{"two trailing slashes", "share/aclocal//", false},
		{"exchange dir itself with slash", "share/", false},
		{"dotdot directory", "share/../", false},
		{"newline", "bin/ba\nsh", false},
		{"exchange dir itself", "bin", false},
		{"not an exchange dir", "etc/passwd", false},
		{"empty", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckPath(tt.p); (err == nil) != tt.ok {
				t.Errorf("CheckPath(%q) = %v, want ok %v", tt.p, err, tt.ok)
			}
		})
	}
}

func TestPathsRefusesControlCharacters(t *testing.T) {
	fsys := fstest.MapFS{"bin/evil\nlib/libc.so.6": {Data: []byte("x")}}
	if got, err := Paths(fsys); err == nil {
		t.Errorf("Paths with a newline in a name = %q, want an error", got)
	}
}

func TestShadows(t *testing.T) {
	pkgs := []Provider{
		{Full: "coreutils-amd64-9-2", Provides: []string{"bin/cat", "bin/ls"}},
		{Full: "aardvark-amd64-1-1", Provides: []string{"bin/ls", "bin/aardvark"}},
		{Full: "zsh-amd64-5-1", Provides: []string{"bin/ls", "bin/zsh"}},
		{Full: "old-amd64-1-1", Provides: []string{"bin/cat"}},
	}
	isNew := func(f string) bool { return f == "zsh-amd64-5-1" }
	want := []Shadow{{Path: "bin/ls", Winner: "aardvark-amd64-1-1", Loser: "zsh-amd64-5-1"}}
	if diff := cmp.Diff(want, Shadows(pkgs, isNew)); diff != "" {
		t.Errorf("Shadows mismatch (-want +got):\n%s", diff)
	}
	// A directory that several packages provide is merged, not shadowed.
	dirs := []Provider{
		{Full: "automake-amd64-1.16-1", Provides: []string{"share/aclocal/"}},
		{Full: "aaa-amd64-1-1", Provides: []string{"share/aclocal/"}},
	}
	if got := Shadows(dirs, func(string) bool { return true }); len(got) != 0 {
		t.Errorf("Shadows of a directory two packages provide = %v, want none", got)
	}
	// Nothing new involved: nothing reported, although coreutils and old
	// share bin/cat.
	if got := Shadows(pkgs, func(string) bool { return false }); len(got) != 0 {
		t.Errorf("Shadows without new packages = %v, want none", got)
	}
}
