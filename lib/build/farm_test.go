package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/elfdeps"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/sandbox"
	"distri.dev/distri/lib/squashfs"
)

// newSandboxBuilder returns a Builder for sandboxed builds into a fresh
// repository, with sources from the test cache.
func newSandboxBuilder(t *testing.T) (*Builder, string) {
	t.Helper()
	distritest.NeedRoot(t)
	distritest.NeedTool(t, "mount")
	distritest.NeedTool(t, "umount")
	uris, err := debian.DefaultSources.ArchiveURIs()
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	b, err := New(Options{
		RepoDir: repo,
		Fetcher: &source.Fetcher{CacheDir: filepath.Join(distritest.CacheDir(t), "sources"), ArchiveURIs: uris},
		TempDir: t.TempDir(),
		Log:     t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, repo
}

// runtimeRO assembles a /ro (unmounted when the test ends) from recipes
// and images (full name → image) and the packages runtimeDeps (full
// names) from b's repository. The order of recipes is the farm order: the
// first package providing a path wins.
func runtimeRO(t *testing.T, b *Builder, runtimeDeps []string, recipes []*Recipe, images map[string]string) *roTree {
	t.Helper()
	for _, full := range runtimeDeps {
		if images[full] != "" {
			continue
		}
		n, err := pkgname.Parse(full)
		if err != nil {
			t.Fatal(err)
		}
		r := &Recipe{Name: n.Pkg, Build: &pb.Build{Version: new(n.Version())}}
		recipes = append(recipes, r)
		images[full] = b.imagePath(r)
	}
	ro, err := assembleRO(t.Context(), filepath.Join(t.TempDir(), "ro"), recipes, images)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ro.close(); err != nil {
			t.Error(err)
		}
	})
	return ro
}

// copyRecipes copies the repository's pkgs/ recipe tree to dst.
func copyRecipes(t *testing.T, dst string) {
	t.Helper()
	src := filepath.Join("..", "..", "pkgs")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		write(t, filepath.Join(dst, rel), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tarball writes a .tar.gz of files (name → contents; names ending in
// configure or starting with greet- are executable) under a top
// directory and returns its path and sha256.
func tarball(t *testing.T, path string, files map[string]string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		mode := int64(0o644)
		if n == "configure" || strings.HasPrefix(n, "greet-") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: "src/" + n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	write(t, path, buf.Bytes())
	sum := sha256.Sum256(buf.Bytes())
	return path, hex.EncodeToString(sum[:])
}

// configureScript is an autotools stand-in: it records --prefix.
const configureScript = `#!/bin/sh
for a in "$@"; do
	case "$a" in --prefix=*) echo "PREFIX=${a#--prefix=}" > config.mk ;; esac
done
`

// libgreetRecipe writes pkgs/libgreet for version (1.0 or 2.0) whose
// greet_version() returns letter, with a -dev split package.
func libgreetRecipe(t *testing.T, pkgs, version, letter string) {
	t.Helper()
	tb, sum := tarball(t, filepath.Join(t.TempDir(), "libgreet-"+version+".tar.gz"), map[string]string{
		"configure": configureScript,
		// It links a library of a dependency the programs linking it do
		// not declare: their builds need it through libgreet's meta.
		"greet.c": "const char *sqlite3_libversion(void);\n" +
			`const char *greet_version(void) { return sqlite3_libversion()[0] ? "` + letter + `" : "?"; }` + "\n",
		"greet.h":  "const char *greet_version(void);\n",
		"greet.pc": "Name: greet\nDescription: greetings\nVersion: " + version + "\nRequires.private: libxcrypt >= 4\nLibs: -lgreet\n",
		"Makefile": `include config.mk
all: libgreet.so.1
libgreet.so.1: greet.c
	$(CC) -shared -fPIC -Wl,-soname,libgreet.so.1 $(LDFLAGS) -o $@ greet.c -l:libsqlite3.so.0
install:
	mkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	cp libgreet.so.1 $(DESTDIR)$(PREFIX)/lib/
	ln -sf libgreet.so.1 $(DESTDIR)$(PREFIX)/lib/libgreet.so
	cp greet.h $(DESTDIR)$(PREFIX)/include/
	cp greet.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
`,
	})
	write(t, filepath.Join(pkgs, "libgreet", "build.textproto"), []byte(`source: "`+tb+`"
hash: "`+sum+`"
version: "`+version+`-1"
dep: "libsqlite3-0"
cbuilder: {}
split_package: {
  name: "libgreet-dev"
  claim: { glob: "out/include" }
  claim: { glob: "out/lib/pkgconfig" }
  claim: { glob: "out/lib/libgreet.so" }
}
`))
}

const greeterSource = `#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <greet.h>
int priv(void);
int main(int argc, char **argv) {
	char exe[512] = {0};
	const char *p = getenv("PERL5LIB");
	if (readlink("/proc/self/exe", exe, sizeof exe - 1) < 0) strcpy(exe, "?");
	printf("libgreet %s\nargv0 %s\nexe %s\nPERL5LIB %s\n", greet_version(), argv[0], exe, p ? p : "");
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "kill") == 0) raise(SIGTERM);
	return argc > 1 ? atoi(argv[1]) : priv();
}
`

// TestPackaging builds, in the sandbox with the bootstrap toolchain, a
// library (libgreet 1.0, with a -dev split) and a program built with
// libgreet-dev (a dep on the split package builds libgreet) and linked
// against libgreet (greeter, with #! scripts, a private library and a
// perl5 directory), then version 2.0
// of the library, and checks the packaging: the lib/ farm and the pinned
// loader keep greeter on libgreet 1.0 while 2.0 owns /ro/lib; the bin/
// wrappers work from /ro/bin and /ro/<full>/bin, keep argv[0], set
// PERL5LIB and pass exit status and signals through; runtime deps come
// from ELF files, #! lines and pkg-config Requires, per split; a recipe
// outside pkgs/ builds with deps from the repository only.
//
// Cost: importing the toolchain (about 20 s) and four tiny builds.
func TestPackaging(t *testing.T) {
	b, repo := newSandboxBuilder(t)
	pkgs := filepath.Join(t.TempDir(), "pkgs")
	copyRecipes(t, pkgs)
	libgreetRecipe(t, pkgs, "1.0", "A")
	// A package in the repository without a recipe, named by a #! line.
	fakePerl := "fakeperl-amd64-5.36-1"
	fakeDir := filepath.Join(t.TempDir(), "fakeperl")
	write(t, filepath.Join(fakeDir, "out", "bin", "perl"), []byte("#!/bin/sh\n"))
	if _, err := pack.Pack(pack.Options{Name: fakePerl, Dir: fakeDir, OutDir: filepath.Join(repo, "pkg")}); err != nil {
		t.Fatal(err)
	}
	tb, sum := tarball(t, filepath.Join(t.TempDir(), "greeter-1.0.tar.gz"), map[string]string{
		"configure":  configureScript,
		"greeter.c":  greeterSource,
		"greet-sh":   "#!/bin/sh\necho greet-sh\n",
		"greet-env":  "#!/usr/bin/env bash\necho greet-env\n",
		"greet-perl": "#!/ro/" + fakePerl + "/out/bin/perl\nprint 1;\n",
		"Greeter.pm": "package Greeter;\n1;\n",
		"priv.c":     "int priv(void) { return 0; }\n",
		// A private library in out/lib/greeter, found through the
		// program's own rpath.
		"Makefile": `include config.mk
all: greeter
libpriv.so: priv.c
	$(CC) -shared -fPIC -Wl,-soname,libpriv.so $(LDFLAGS) -o $@ priv.c
greeter: greeter.c libpriv.so
	$(CC) -o $@ greeter.c $(LDFLAGS) -lgreet -L. -lpriv -Wl,-rpath,$(PREFIX)/lib/greeter
install:
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/perl5 $(DESTDIR)$(PREFIX)/lib/greeter
	cp greeter greet-sh greet-env greet-perl $(DESTDIR)$(PREFIX)/bin/
	cp Greeter.pm $(DESTDIR)$(PREFIX)/lib/perl5/
	cp libpriv.so $(DESTDIR)$(PREFIX)/lib/greeter/
`,
	})
	write(t, filepath.Join(pkgs, "greeter", "build.textproto"), []byte(`source: "`+tb+`"
hash: "`+sum+`"
version: "1.0-1"
dep: "libgreet"
dep: "libgreet-dev"
cbuilder: {}
`))
	libA, err := ReadRecipe(filepath.Join(pkgs, "libgreet"))
	if err != nil {
		t.Fatal(err)
	}
	greeterImg, err := b.Build(t.Context(), filepath.Join(pkgs, "greeter"))
	if err != nil {
		t.Fatal(err)
	}
	greeter, err := ReadRecipe(filepath.Join(pkgs, "greeter"))
	if err != nil {
		t.Fatal(err)
	}
	// Version 2.0 of the library, installed beside 1.0.
	libgreetRecipe(t, pkgs, "2.0", "B")
	libB, err := ReadRecipe(filepath.Join(pkgs, "libgreet"))
	if err != nil {
		t.Fatal(err)
	}
	libBPaths, err := b.BuildAll(t.Context(), libB.Dir)
	if err != nil {
		t.Fatal(err)
	}
	// BuildAll reports the main package and its split, both written.
	wantPaths := []string{
		filepath.Join(repo, "pkg", libB.FullName()+".squashfs"),
		filepath.Join(repo, "pkg", "libgreet-dev-"+Arch+"-"+libB.GetVersion()+".squashfs"),
	}
	if !slices.Equal(libBPaths, wantPaths) {
		t.Errorf("BuildAll(libgreet 2.0) = %q, want %q", libBPaths, wantPaths)
	}
	for _, p := range libBPaths {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}

	metaOf := func(full string) *pb.Meta {
		t.Helper()
		m, err := pb.ReadMetaFile(filepath.Join(repo, "pkg", full+".meta.textproto"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	hasDep := func(m *pb.Meta, pkg string) bool {
		return slices.ContainsFunc(m.GetRuntimeDep(), func(d string) bool {
			n, err := pkgname.Parse(d)
			return err == nil && n.Pkg == pkg
		})
	}
	gm := metaOf(greeter.FullName())
	for _, want := range []string{"libgreet", "libc6", "bash", "libsqlite3-0", "fakeperl"} {
		if !hasDep(gm, want) {
			t.Errorf("greeter runtime_dep %q lacks %s", gm.GetRuntimeDep(), want)
		}
	}
	if !slices.Contains(gm.GetRuntimeDep(), libA.FullName()) {
		t.Errorf("greeter runtime_dep %q lacks %s (the version it was built against)", gm.GetRuntimeDep(), libA.FullName())
	}
	if hasDep(gm, "libgreet-dev") {
		t.Errorf("greeter runtime_dep %q has libgreet-dev, which it does not use", gm.GetRuntimeDep())
	}
	lm := metaOf(libA.FullName())
	if hasDep(lm, "libgreet-dev") || hasDep(lm, "libcrypt-dev") {
		t.Errorf("libgreet runtime_dep %q has what only its -dev split needs", lm.GetRuntimeDep())
	}
	devFull := "libgreet-dev-" + Arch + "-" + libA.GetVersion()
	dm := metaOf(devFull)
	if !slices.Contains(dm.GetRuntimeDep(), libA.FullName()) || !hasDep(dm, "libcrypt-dev") {
		t.Errorf("libgreet-dev runtime_dep %q, want %s (its libgreet.so link) and libcrypt-dev (its .pc requires libxcrypt)", dm.GetRuntimeDep(), libA.FullName())
	}
	if dm.GetSourcePkg() != "libgreet" {
		t.Errorf("libgreet-dev source_pkg %q, want libgreet", dm.GetSourcePkg())
	}

	// build_steps without a builder, so without gcc: bin/ entries are
	// links, and the #!/bin/sh script depends on bash.
	write(t, filepath.Join(pkgs, "scripts", "build.textproto"), []byte(`source: "`+tb+`"
hash: "`+sum+`"
version: "1.0-1"
dep: "bash"
dep: "coreutils"
build_step: { argv: ["/bin/sh", "-c", "mkdir -p $DESTDIR$DISTRI_PREFIX/bin && cp $DISTRI_SOURCEDIR/greet-sh $DESTDIR$DISTRI_PREFIX/bin/"] }
`))
	scriptsImg, err := b.Build(t.Context(), filepath.Join(pkgs, "scripts"))
	if err != nil {
		t.Fatal(err)
	}
	if sr, err := squashfs.Open(scriptsImg); err != nil {
		t.Fatal(err)
	} else {
		l, err := sr.FS().(fs.ReadLinkFS).ReadLink("bin/greet-sh")
		if err != nil || l != "../out/bin/greet-sh" {
			t.Errorf("scripts: bin/greet-sh → %q (%v), want a link to ../out/bin/greet-sh", l, err)
		}
		sr.Close()
	}
	if m := metaOf("scripts-" + Arch + "-1.0-1"); !hasDep(m, "bash") {
		t.Errorf("scripts runtime_dep %q lacks bash (its #!/bin/sh)", m.GetRuntimeDep())
	}

	// A recipe outside pkgs/: every dep (the toolchain, libgreet 1.0 and
	// its -dev split, named by full name as 2.0 is there too) comes from
	// the repository.
	other := filepath.Join(t.TempDir(), "other", "greeter2")
	write(t, filepath.Join(other, "build.textproto"), []byte(`source: "`+tb+`"
hash: "`+sum+`"
version: "1.0-1"
dep: "`+libA.FullName()+`"
dep: "`+devFull+`"
cbuilder: {}
`))
	if _, err := b.Build(t.Context(), other); err != nil {
		t.Fatalf("building a recipe whose deps are in the repository only: %v", err)
	}
	if m := metaOf("greeter2-" + Arch + "-1.0-1"); !slices.Contains(m.GetRuntimeDep(), libA.FullName()) {
		t.Errorf("greeter2 runtime_dep %q lacks %s", m.GetRuntimeDep(), libA.FullName())
	}
	if d, err := InputDigestWithRepo(other, repo); err != nil || d != metaOf("greeter2-"+Arch+"-1.0-1").GetInputDigest() {
		t.Errorf("InputDigestWithRepo = %q, %v; want the meta's digest", d, err)
	}

	// /ro: libgreet 2.0 first, so that it owns /ro/lib/libgreet.so.1,
	// then 1.0, greeter, the split and greeter's runtime deps.
	recipes := []*Recipe{libB, libA, greeter}
	images := map[string]string{
		libB.FullName():    b.imagePath(libB),
		libA.FullName():    b.imagePath(libA),
		greeter.FullName(): greeterImg,
	}
	devRecipe := &Recipe{Name: "libgreet-dev", Build: &pb.Build{Version: libA.Version}}
	recipes = append(recipes, devRecipe)
	images[devFull] = filepath.Join(repo, "pkg", devFull+".squashfs")
	ro := runtimeRO(t, b, gm.GetRuntimeDep(), recipes, images)
	if l, err := os.Readlink(filepath.Join(ro.dir, "lib", "libgreet.so.1")); err != nil || !strings.Contains(l, libB.FullName()) {
		t.Fatalf("/ro/lib/libgreet.so.1 → %q (%v), want libgreet 2.0 to own it", l, err)
	}

	// The package's files.
	gdir := filepath.Join(ro.dir, greeter.FullName())
	if l, err := os.Readlink(filepath.Join(gdir, "lib", "libgreet.so.1")); err != nil || l != "/ro/"+libA.FullName()+"/out/lib/libgreet.so.1" {
		t.Errorf("lib/libgreet.so.1 → %q (%v), want /ro/%s/out/lib/libgreet.so.1", l, err, libA.FullName())
	}
	if l, err := os.Readlink(filepath.Join(gdir, "lib", "libpriv.so")); err != nil || l != "/ro/"+greeter.FullName()+"/out/lib/greeter/libpriv.so" {
		t.Errorf("lib/libpriv.so → %q (%v), want the private library in out/lib/greeter", l, err)
	}
	if l, err := os.Readlink(filepath.Join(gdir, "lib", "libsqlite3.so.0")); err != nil || !strings.HasPrefix(l, "/ro/libsqlite3-0-amd64-") {
		t.Errorf("lib/libsqlite3.so.0 (needed by libgreet.so.1) → %q (%v), want libsqlite3-0's", l, err)
	}
	if l, err := os.Readlink(filepath.Join(gdir, "lib", "libc.so.6")); err != nil || !strings.HasPrefix(l, "/ro/libc6-amd64-") {
		t.Errorf("lib/libc.so.6 → %q (%v), want libc6's", l, err)
	}
	d, err := elfdeps.Read(filepath.Join(gdir, "out", "bin", "greeter"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.Interp, "/ro/libc6-amd64-") || !strings.HasSuffix(d.Interp, "/out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2") {
		t.Errorf("PT_INTERP %q, want libc6's loader under /ro/libc6-amd64-…", d.Interp)
	}
	if want := []string{"/ro/" + greeter.FullName() + "/lib", "/ro/" + greeter.FullName() + "/out/lib/greeter"}; !slices.Equal(d.RPath, want) {
		t.Errorf("DT_RPATH %q, want %q", d.RPath, want)
	}
	target, err := WrapperTarget(filepath.Join(gdir, "bin", "greeter"))
	if want := "/ro/" + greeter.FullName() + "/out/bin/greeter"; err != nil || target != want {
		t.Errorf("bin/greeter is a wrapper for %q (%v), want %s", target, err, want)
	}
	wd, err := elfdeps.Read(filepath.Join(gdir, "bin", "greeter"))
	if err != nil || wd.Interp != "" || len(wd.Needed) > 0 {
		t.Errorf("the wrapper needs a loader or libraries: %+v (%v)", wd, err)
	}
	devDir := filepath.Join(ro.dir, devFull)
	for _, p := range []string{"out/include/greet.h", "out/lib/pkgconfig/greet.pc", "out/lib/libgreet.so"} {
		if _, err := os.Stat(filepath.Join(devDir, p)); err != nil {
			t.Errorf("libgreet-dev: %v", err)
		}
		if _, err := os.Lstat(filepath.Join(ro.dir, libA.FullName(), p)); err == nil {
			t.Errorf("libgreet still has %s, claimed by libgreet-dev", p)
		}
	}
	if l, _ := os.Readlink(filepath.Join(devDir, "out", "lib", "libgreet.so")); l != "../../../"+libA.FullName()+"/out/lib/libgreet.so.1" {
		t.Errorf("libgreet-dev's out/lib/libgreet.so → %q, want it to point into %s", l, libA.FullName())
	}

	// Run it in a root that has nothing but /ro: no /lib64, no /usr.
	perl5 := "/ro/" + greeter.FullName() + "/out/lib/perl5"
	run := func(env []string, argv ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := sandbox.Run(t.Context(), sandbox.Options{
			RO:     ro.dir,
			Env:    append([]string{"PATH=/ro/bin"}, env...),
			Argv:   argv,
			Stdout: &stdout,
			Stderr: &stderr,
		})
		return stdout.String(), stderr.String(), err
	}
	exe := "exe /ro/" + greeter.FullName() + "/out/bin/greeter\n"
	out, errOut, err := run(nil, "/ro/bin/greeter")
	if want := "libgreet A\nargv0 /ro/bin/greeter\n" + exe + "PERL5LIB " + perl5 + "\n"; err != nil || out != want {
		t.Errorf("/ro/bin/greeter: %v, printed %q, want %q (stderr %q)", err, out, want, errOut)
	}
	out, errOut, err = run([]string{"PERL5LIB=/x"}, "/ro/"+greeter.FullName()+"/bin/greeter", "3")
	var ee *sandbox.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("greeter 3: err %v, want exit status 3 (stderr %q)", err, errOut)
	}
	if want := "libgreet A\nargv0 /ro/" + greeter.FullName() + "/bin/greeter\n" + exe + "PERL5LIB " + perl5 + ":/x\n"; out != want {
		t.Errorf("/ro/<full>/bin/greeter printed %q, want %q", out, want)
	}
	_, _, err = run(nil, "greeter", "kill")
	if !errors.As(err, &ee) || ee.Code != 128+15 {
		t.Errorf("greeter kill: err %v, want death by SIGTERM (status 143)", err)
	}
	_, errOut, err = run([]string{"LD_DEBUG=libs"}, "greeter")
	// The loader names the program by its argv[0], kept by the wrapper.
	if err != nil || !strings.Contains(errOut, "search path=/ro/"+greeter.FullName()+"/lib:") || !strings.Contains(errOut, "(RPATH from file greeter)") ||
		!strings.Contains(errOut, "calling init: /ro/"+greeter.FullName()+"/lib/libgreet.so.1") {
		t.Errorf("LD_DEBUG=libs: %v; the loader did not search greeter's lib/ farm:\n%s", err, errOut)
	}
}
