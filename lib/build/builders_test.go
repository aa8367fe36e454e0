package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/sandbox"
)

// TestBuildBadInput: a wrong sha256, a missing source and an unknown
// dependency fail before anything is built, with an error naming the
// recipe, the step and the log; the repository gets no package.
func TestBuildBadInput(t *testing.T) {
	distritest.NeedRoot(t)
	pkgs := filepath.Join(t.TempDir(), "pkgs")
	copyRecipes(t, pkgs)
	src, good := tarball(t, filepath.Join(t.TempDir(), "src.tar.gz"), map[string]string{"hello.txt": "hello\n"})
	srcBytes, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	// A file that exists nowhere, so never in the cache either.
	absent := sha256.Sum256([]byte("the source of TestBuildBadInput's missing-source"))
	for _, tt := range []struct {
		name, recipe, step, msg string
	}{
		{"wrong-sha", `source: "src.tar.gz" hash: "` + wrong + `" cbuilder: {}`, "source", "sha256 mismatch: want " + wrong + ", got " + good},
		{"missing-source", `source: "nonexistent.tar.gz" hash: "` + hex.EncodeToString(absent[:]) + `" cbuilder: {}`, "source", "nonexistent.tar.gz"},
		{"unknown-dep", `source: "src.tar.gz" hash: "` + good + `" dep: "no-such-package" cbuilder: {}`, "dependencies", `unknown dependency "no-such-package"`},
		{"bad-step-var", `source: "src.tar.gz" hash: "` + good + `" build_step: { argv: ["echo", "${DISTRI_RESOLVE:nothing}"] }`, "steps", "${DISTRI_RESOLVE:nothing}: nothing is not a build dependency"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(pkgs, tt.name)
			write(t, filepath.Join(dir, "build.textproto"), []byte(tt.recipe+` version: "1.0-1"`+"\n"))
			write(t, filepath.Join(dir, "src.tar.gz"), srcBytes)
			b, repo := newSandboxBuilder(t)
			_, err := b.Build(t.Context(), dir)
			logPath := filepath.Join(repo, "log", tt.name+"-amd64-1.0-1.log")
			var se *StepError
			if !errors.As(err, &se) || se.Step != tt.step || se.Log != logPath || se.Recipe != filepath.Join(dir, "build.textproto") {
				t.Fatalf("Build = %v (%#v), want a StepError for step %q with log %s", err, se, tt.step, logPath)
			}
			for _, want := range []string{filepath.Join(dir, "build.textproto"), `step "` + tt.step + `"`, logPath, tt.msg} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if lb, err := os.ReadFile(logPath); err != nil || !bytes.Contains(lb, []byte(tt.msg)) {
				t.Errorf("log %s = %q (%v), want the error", logPath, lb, err)
			}
			if m, _ := filepath.Glob(filepath.Join(repo, "pkg", "*")); len(m) > 0 {
				t.Errorf("failed build left %v in the repository", m)
			}
		})
	}
}

// sourcePackage is a package built from its upstream tarball, and what
// shows that its tests ran and its program works.
type sourcePackage struct {
	dir      string   // recipe directory below pkgs/
	checkLog []string // lines of the build log showing the tests passed
	prog     string   // a program in bin/
	args     []string
	stdin    string
	want     string // in its output
}

var sourcePackages = []sourcePackage{
	{dir: "lua/5.3.6", checkLog: []string{"Lua 5.3.6  Copyright", "lua checks passed"},
		prog: "lua", args: []string{"-e", "print(_VERSION, 6 * 7)"}, want: "Lua 5.3\t42\n"},
	{dir: "lua/5.4.4", checkLog: []string{"Lua 5.4.4  Copyright", "lua checks passed"},
		prog: "lua", args: []string{"-e", "print(_VERSION, 6 * 7)"}, want: "Lua 5.4\t42\n"},
	{dir: "fribidi", checkLog: []string{"Ok:                 8", "Fail:               0"},
		prog: "fribidi", args: []string{"--nopad", "--nobreak"}, stdin: "abc\n", want: "abc\n"},
	{dir: "gnu-make", checkLog: []string{"No Failures :-)"},
		prog: "make", args: []string{"--version"}, want: "GNU Make 4.4.1"},
	{dir: "brotli", checkLog: []string{"100% tests passed"},
		prog: "brotli", args: []string{"--version"}, want: "brotli 1.0.9"},
	{dir: "zstd", checkLog: []string{"test : decompress file with wrong suffix", "===>  zstd asyncio tests", "Skipping large data tests"},
		prog: "zstd", args: []string{"-q", "-c"}, stdin: "hello\n", want: "\x28\xb5\x2f\xfd"},
}

// TestSourcePackages builds the packages of pkgs/ that come from upstream
// tarballs (lua twice, fribidi with meson, GNU make with autotools,
// brotli with cmake, zstd with make) in the sandbox with their tests,
// then runs each program from /ro/<full>/bin/… and from /ro/bin/… in a
// sandbox whose root holds only /ro: the package and its runtime closure.
// It shares one repository, so the toolchain is imported once.
func TestSourcePackages(t *testing.T) {
	b, repo := newSandboxBuilder(t)
	b.opts.Check = true
	for _, sp := range sourcePackages {
		t.Run(strings.ReplaceAll(sp.dir, "/", "-"), func(t *testing.T) {
			dir := filepath.Join("..", "..", "pkgs", sp.dir)
			r, err := ReadRecipe(dir)
			if err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(repo, "log", r.FullName()+".log")
			start := time.Now()
			img, err := b.Build(t.Context(), dir)
			if err != nil {
				if lb, rerr := os.ReadFile(logPath); rerr == nil {
					t.Logf("build log (tail):\n%s", tail(string(lb), 4000))
				}
				t.Fatal(err)
			}
			t.Logf("built %s in %v", img, time.Since(start).Round(time.Millisecond))
			lb, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range sp.checkLog {
				if !bytes.Contains(lb, []byte(want)) {
					t.Errorf("build log %s lacks %q (the tests did not run or pass):\n%s", logPath, want, tail(string(lb), 3000))
				}
			}
			for _, at := range []string{"/ro/" + r.FullName() + "/bin/" + sp.prog, "/ro/bin/" + sp.prog} {
				out := runFromRO(t, b, r, img, append([]string{at}, sp.args...), sp.stdin)
				if !strings.Contains(out, sp.want) {
					t.Errorf("%s %q printed %q, want %q in it", at, sp.args, out, sp.want)
				}
			}
		})
	}
}

// runFromRO runs argv in a sandbox whose root has only /ro (no links to
// it, no host /usr), holding the package r (image img) and its runtime
// closure, and returns its output.
func runFromRO(t *testing.T, b *Builder, r *Recipe, img string, argv []string, stdin string) string {
	t.Helper()
	meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
	if err != nil {
		t.Fatal(err)
	}
	ro := runtimeRO(t, b, meta.GetRuntimeDep(), []*Recipe{r}, map[string]string{r.FullName(): img})
	var stdout, stderr bytes.Buffer
	err = sandbox.Run(t.Context(), sandbox.Options{
		RO:     ro.dir,
		Argv:   argv,
		Stdin:  strings.NewReader(stdin),
		Stdout: &stdout,
		Stderr: &stderr,
	})
	if err != nil {
		t.Errorf("running %q: %v; stderr: %s", argv, err, stderr.String())
	}
	return stdout.String()
}
