package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
)

// TestBuildStepOutput: with Options.StepOutput (distri-build build
// --show-output), what a step writes to stdout and stderr reaches it as
// well as the build's log, and the step has no terminal on the way.
func TestBuildStepOutput(t *testing.T) {
	b, repo := newSandboxBuilder(t)
	var out distritest.Buffer
	b.opts.StepOutput = &out
	pkgs := filepath.Join(t.TempDir(), "pkgs")
	copyRecipes(t, pkgs)
	tb, sum := tarball(t, filepath.Join(t.TempDir(), "talk-1.0.tar.gz"), map[string]string{"README": "talks\n"})
	dir := filepath.Join(pkgs, "talk")
	write(t, filepath.Join(dir, "build.textproto"), []byte(`source: "`+tb+`"
hash: "`+sum+`"
version: "1.0-1"
dep: "bash"
dep: "coreutils"
build_step: { argv: ["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; if tty -s; then echo has-a-terminal; fi; test -e /dev/tty && echo has-dev-tty; mkdir -p $DISTRI_DESTDIR$DISTRI_PREFIX/share && echo x > $DISTRI_DESTDIR$DISTRI_PREFIX/share/talk"] }
`))
	if _, err := b.Build(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(repo, "log", "talk-amd64-1.0-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"to-stdout\n", "to-stderr\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("StepOutput = %q, want it to hold %q", out.String(), want)
		}
		if !strings.Contains(string(log), want) {
			t.Errorf("log = %q, want it to hold %q", log, want)
		}
	}
	for _, bad := range []string{"has-a-terminal", "has-dev-tty"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("the step said %q: it must have no terminal", bad)
		}
	}
}
