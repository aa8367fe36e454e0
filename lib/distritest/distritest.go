// Package distritest holds test helpers shared by distri's packages: the
// gates of the four test tiers (DESIGN.md §6) and a helper that builds the
// binaries an integration test runs.
//
// Every gate skips with a reason. When the environment says CI=true (or
// DISTRI_TEST_DISALLOW_SKIP=1), a gate fails the test instead, so CI
// cannot go green by skipping.
package distritest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// skipDisallowed reports whether a gate must fail rather than skip.
func skipDisallowed() bool {
	return os.Getenv("CI") == "true" || os.Getenv("DISTRI_TEST_DISALLOW_SKIP") == "1"
}

// Skip skips t with the reason, or fails it where skips are disallowed.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if skipDisallowed() {
		t.Fatalf("skip not allowed in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedRoot gates the root tier: the test needs uid 0.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (running as uid %d)", os.Geteuid())
	}
}

// NeedTool gates the tools tier: the test runs name, which must be in $PATH.
// It returns the tool's path.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, "%s not in $PATH (install it with 'make deps')", name)
	}
	return p
}

// NeedFUSE gates FUSE tests: /dev/fuse must be usable and the test root.
func NeedFUSE(t testing.TB) {
	t.Helper()
	NeedRoot(t)
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		Skip(t, "FUSE not available: %v", err)
	}
	f.Close()
}

// NeedQEMU gates the vm tier: qemu-system-x86_64 must be installed.
func NeedQEMU(t testing.TB) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		Skip(t, "vm tests boot amd64 guests; this is %s", runtime.GOARCH)
	}
	return NeedTool(t, "qemu-system-x86_64")
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Binary builds the main package at importPath (e.g.
// "distri.dev/distri/distri-build") once per test process and returns the
// path of the binary. Tests run what they built, never what is in $PATH.
func Binary(t testing.TB, importPath string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[importPath]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "distritest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(importPath))
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", out, importPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	buildCache[importPath] = out
	return out
}
