package build

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/sandbox"
)

func TestMain(m *testing.M) {
	if sandbox.IsInit(os.Args[0]) {
		sandbox.Init() // does not return
	}
	os.Exit(m.Run())
}

// TestBuildHelloSandbox builds the repository's pkgs/hello (GNU hello from
// its upstream tarball, cbuilder) in the sandbox with the Debian-imported
// toolchain of pkgs/, then runs the built hello from its package in the
// sandbox with only its runtime dependencies under /ro.
func TestBuildHelloSandbox(t *testing.T) {
	b, repo := newSandboxBuilder(t)
	b.opts.Check = true
	helloDir := filepath.Join("..", "..", "pkgs", "hello")
	start := time.Now()
	img, err := b.Build(t.Context(), helloDir)
	if err != nil {
		if lb, rerr := os.ReadFile(filepath.Join(repo, "log", "hello-amd64-2.10-1.log")); rerr == nil {
			t.Logf("build log (tail):\n%s", tail(string(lb), 4000))
		}
		t.Fatal(err)
	}
	t.Logf("built %s (with its dependencies) in %v", img, time.Since(start).Round(time.Millisecond))
	if got, want := filepath.Base(img), "hello-amd64-2.10-1.squashfs"; got != want {
		t.Errorf("image %s, want %s", got, want)
	}
	lb, err := os.ReadFile(filepath.Join(repo, "log", "hello-amd64-2.10-1.log"))
	if err != nil {
		t.Errorf("no build log: %v", err)
	}
	if !bytes.Contains(lb, []byte("# PASS:")) || !bytes.Contains(lb, []byte("# FAIL:  0")) {
		t.Errorf("build log shows no passing make check:\n%s", tail(string(lb), 4000))
	}
	meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
	if err != nil {
		t.Fatal(err)
	}
	hasLibc := false
	for _, d := range meta.GetRuntimeDep() {
		if strings.HasPrefix(d, "libc6-amd64-") {
			hasLibc = true
		}
	}
	if !hasLibc {
		t.Errorf("runtime_dep %q lacks libc6 (hello needs libc.so.6)", meta.GetRuntimeDep())
	}

	t.Run("failure", func(t *testing.T) { testBuildFailure(t, b, repo) })

	// Run the built hello with /ro holding hello and its runtime deps.
	hello, err := ReadRecipe(helloDir)
	if err != nil {
		t.Fatal(err)
	}
	ro := runtimeRO(t, b, meta.GetRuntimeDep(), []*Recipe{hello}, map[string]string{hello.FullName(): img})
	var stdout, stderr bytes.Buffer
	err = sandbox.Run(t.Context(), sandbox.Options{
		RO:     ro.dir,
		Links:  sandboxLinks,
		Env:    []string{"PATH=/ro/bin:/bin"},
		Argv:   []string{"hello"},
		Stdout: &stdout,
		Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("running hello: %v; stderr: %s", err, stderr.String())
	}
	if got, want := stdout.String(), "Hello, world!\n"; got != want {
		t.Errorf("hello printed %q, want %q (stderr %q)", got, want, stderr.String())
	}

	t.Run("reproducible", func(t *testing.T) { testReproducible(t, b, helloDir, img) })
}

// A failing step names the recipe, the step and the log; nothing lands
// in the repository and nothing stays mounted. The recipe lives in a
// copy of pkgs/ so that its dependencies resolve (they are built in
// repo already).
func testBuildFailure(t *testing.T, b *Builder, repo string) {
	pkgs := filepath.Join(t.TempDir(), "pkgs")
	copyRecipes(t, pkgs) // both layouts: pkgs/<name>/ and pkgs/<name>/<version>/
	hello, err := os.ReadFile(filepath.Join(pkgs, "hello", "build.textproto"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(hello), "cbuilder: {}", `cbuilder: { extra_configure_flag: "CC=/nonexistent/cc" }`, 1)
	write(t, filepath.Join(pkgs, "broken", "build.textproto"), []byte(broken))
	_, err = b.Build(t.Context(), filepath.Join(pkgs, "broken"))
	logPath := filepath.Join(repo, "log", "broken-amd64-2.10-1.log")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(pkgs, "broken", "build.textproto")) ||
		!strings.Contains(err.Error(), `step "configure"`) || !strings.Contains(err.Error(), logPath) {
		t.Errorf("failing configure: err = %v, want the recipe, the step and %s named", err, logPath)
	}
	if lb, err := os.ReadFile(logPath); err != nil || !bytes.Contains(lb, []byte("/nonexistent/cc")) {
		t.Errorf("log %s lacks the failing compiler (err %v)", logPath, err)
	}
	if m, _ := filepath.Glob(filepath.Join(repo, "pkg", "broken-*")); len(m) > 0 {
		t.Errorf("failed build left %v in the repository", m)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte("distri-build-broken-")) {
		t.Errorf("failed build left mounts behind:\n%s", mi)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
