package debian

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/recipe"
)

func TestArchiveURIs(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "sources.list")
	d := filepath.Join(dir, "sources.list.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		list: `# comment
deb http://one.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://two.example/debian/ bookworm main # trailing
deb-src http://one.example/debian bookworm main
deb cdrom:[Debian]/ bookworm main
`,
		filepath.Join(d, "a.sources"): `Types: deb deb-src
# a comment
URIs: http://three.example/debian
  http://four.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://one.example/debian
Suites: bookworm-security
`,
		filepath.Join(d, "b.list"):      "deb http://five.example/x stable main\n",
		filepath.Join(d, "ignored.txt"): "deb http://no.example/x stable main\n",
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Sources{List: list, Dir: d}.ArchiveURIs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"http://one.example/debian",
		"http://two.example/debian",
		"cdrom:[Debian]",
		"http://three.example/debian",
		"http://four.example/debian",
		"http://five.example/x",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ArchiveURIs (-want +got):\n%s", diff)
	}
	if got, err := (Sources{List: filepath.Join(dir, "none"), Dir: filepath.Join(dir, "none.d")}).ArchiveURIs(); err != nil || len(got) != 0 {
		t.Errorf("missing files: %q, %v; want none, nil", got, err)
	}
}

// The machine's own apt sources name at least one archive.
func TestMachineArchiveURIs(t *testing.T) {
	uris, err := DefaultSources.ArchiveURIs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/apt"); err == nil && len(uris) == 0 {
		t.Error("no archive URI found in the machine's apt sources")
	}
}

const showHello = `Package: hello
Version: 2.10-3
Architecture: amd64
Pre-Depends: dpkg (>= 1.19)
Depends: libc6 (>= 2.34), awk | mawk, foo:any [amd64]
Description: example package based on GNU hello
 with a continuation line
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
SHA256: 2e6e2f1a0007dc43bc91c273fd36e91e40a4f1c2765a03eca68b70a42103878a

`

func TestParseShow(t *testing.T) {
	p, err := ParseShow("hello", []byte(showHello))
	if err != nil {
		t.Fatal(err)
	}
	want := &Package{
		Name:     "hello",
		Version:  "2.10-3",
		Filename: "pool/main/h/hello/hello_2.10-3_amd64.deb",
		SHA256:   "2e6e2f1a0007dc43bc91c273fd36e91e40a4f1c2765a03eca68b70a42103878a",
		Depends:  [][]string{{"dpkg"}, {"libc6"}, {"awk", "mawk"}, {"foo"}},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("ParseShow (-want +got):\n%s", diff)
	}
	if _, err := ParseShow("other", []byte(showHello)); err == nil {
		t.Error("ParseShow(other) succeeded")
	}
}

func TestVersion(t *testing.T) {
	for in, want := range map[string]string{"2.10-3": "2.10-3-1", "1:5.2.1-2": "1_5.2.1-2-1", "2.36-9+deb12u10": "2.36-9+deb12u10-1"} {
		if got := Version(in, 1); got != want {
			t.Errorf("Version(%q) = %q, want %q", in, got, want)
		}
	}
}

type fakeApt map[string]*Package

func (f fakeApt) Show(_ context.Context, name string) (*Package, error) {
	if p, ok := f[name]; ok && p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("no package %s", name)
}

func (f fakeApt) Providers(_ context.Context, name string) ([]string, error) {
	if name == "awk" {
		return []string{"mawk", "gawk"}, nil
	}
	return nil, nil
}

func pkg(name, version string, deps ...string) *Package {
	p := &Package{Name: name, Version: version, Filename: "pool/main/x/" + name + ".deb", SHA256: strings.Repeat("ab", 32)}
	for _, d := range deps {
		p.Depends = append(p.Depends, strings.Split(d, "|"))
	}
	return p
}

func TestScaffold(t *testing.T) {
	apt := fakeApt{
		"hello":  pkg("hello", "2.10-3", "libc6", "awk|gawk"),
		"libc6":  pkg("libc6", "2.36-9", "libgcc"),
		"libgcc": pkg("libgcc", "1:12.2-1", "libc6"), // a cycle
		"mawk":   pkg("mawk", "1.3.4-3", "libc6"),
		"gawk":   pkg("gawk", "1:5.2.1-2", "libc6"),
	}
	pkgs := t.TempDir()
	written, err := Scaffold(t.Context(), "hello", ScaffoldOptions{PkgsDir: pkgs, Apt: apt})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range written {
		names = append(names, filepath.Base(filepath.Dir(w)))
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"hello", "libc6", "libgcc", "mawk"}, names); diff != "" {
		t.Errorf("recipes written (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(filepath.Join(pkgs, "hello", "build.textproto"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`source: "debian:pool/main/x/hello.deb"`, `version: "2.10-3-1"`, `runtime_dep: "libc6"`, `runtime_dep: "mawk"`, `hash: "abab`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("hello recipe lacks %s:\n%s", s, b)
		}
	}
	if errs := recipe.Check([]string{pkgs}, recipe.Options{}); len(errs) > 0 {
		t.Errorf("scaffolded recipes do not pass check: %v", errs)
	}

	// Existing recipes are neither rewritten nor followed.
	if err := os.RemoveAll(filepath.Join(pkgs, "libgcc")); err != nil {
		t.Fatal(err)
	}
	written, err = Scaffold(t.Context(), "hello", ScaffoldOptions{PkgsDir: pkgs, Apt: apt})
	if err != nil || len(written) != 0 {
		t.Errorf("second scaffold wrote %q, %v; want nothing", written, err)
	}

	// A dependency apt does not know is an error naming it.
	apt["broken"] = pkg("broken", "1-1", "nonexistent")
	if _, err := Scaffold(t.Context(), "broken", ScaffoldOptions{PkgsDir: pkgs, Apt: apt}); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("unknown dependency: err = %v", err)
	}
}
