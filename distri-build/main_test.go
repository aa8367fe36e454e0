package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/distritest"
)

// runCmd runs distri-build in-process with args and returns the exit code,
// stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli.RunArgs(t.Context(), newRootCmd, args...)
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good", "build.textproto")
	bad := filepath.Join(dir, "bad", "build.textproto")
	for p, content := range map[string]string{
		good: "source: \"empty://\"\nversion: \"1.0-1\"\n",
		bad:  "source: \"empty://\"\nversoin: \"1.0-1\"\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string // substring of stdout
		wantErr    string // substring of stderr
		wantNoErrs bool
	}{
		{name: "version", args: []string{"--version"}, wantCode: 0, wantOut: "distri-build version", wantNoErrs: true},
		{name: "help has examples", args: []string{"pack", "--help"}, wantCode: 0, wantOut: "Examples:", wantNoErrs: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `distri-build: unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"check", "--frob", "x"}, wantCode: 2, wantErr: "unknown flag: --frob"},
		{name: "missing argument", args: []string{"check"}, wantCode: 2, wantErr: "requires at least 1 arg"},
		{name: "pack without name", args: []string{"pack", dir}, wantCode: 2, wantErr: `"name" not set`},
		{name: "check good", args: []string{"check", good}, wantCode: 0, wantNoErrs: true},
		{name: "check bad", args: []string{"check", filepath.Join(dir, "bad")}, wantCode: 1, wantErr: bad + ":2:1: unknown field: versoin"},
		{name: "check tree", args: []string{"check", dir}, wantCode: 1, wantErr: "1 problem(s) found"},
		{name: "bad compression", args: []string{"pack", "--name", "a-amd64-1-1", "--compression", "lzo", dir}, wantCode: 2, wantErr: "unknown compression"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("distri-build %q exit code = %d, want %d (stderr: %s)", tt.args, code, tt.wantCode, errs)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("distri-build %q stdout = %q, want it to contain %q", tt.args, out, tt.wantOut)
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("distri-build %q stderr = %q, want it to contain %q", tt.args, errs, tt.wantErr)
			}
			if tt.wantNoErrs && errs != "" {
				t.Errorf("distri-build %q stderr = %q, want nothing", tt.args, errs)
			}
			if n := strings.Count(errs, "distri-build: "); n > 1 {
				t.Errorf("distri-build %q printed the error %d times, want once:\n%s", tt.args, n, errs)
			}
		})
	}
}

// TestCheckOriginalRecipes runs check over the original distri's 541
// recipes, which must all pass. Their patches are not part of the
// reference copy, hence --skip-files.
func TestCheckOriginalRecipes(t *testing.T) {
	const pkgs = "../../shared/reference/distri-pkgs"
	if _, err := os.Stat(pkgs); err != nil {
		distritest.Skip(t, "the original's recipes are not beside the project: %v", err)
	}
	code, _, errs := runCmd(t, "check", "--skip-files", pkgs)
	if code != 0 {
		t.Fatalf("distri-build check %s = exit %d, want 0:\n%s", pkgs, code, errs)
	}
}

// TestPackPrintsPath checks that pack prints the image path, and only
// that, on stdout, and that squashfs-tools list the image.
func TestPackPrintsPath(t *testing.T) {
	unsquashfs := distritest.NeedTool(t, "unsquashfs")
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "out", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "out", "bin", "hello"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "pack", "--name", "hello-amd64-2.12-1", "--compression", "zstd", src, "-o", out)
	if code != 0 {
		t.Fatalf("pack = exit %d: %s", code, stderr)
	}
	image := filepath.Join(out, "hello-amd64-2.12-1.squashfs")
	if got, want := stdout, image+"\n"; got != want {
		t.Errorf("pack stdout = %q, want %q", got, want)
	}
	listing, err := exec.Command(unsquashfs, "-lln", image).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln %s: %v\n%s", image, err, listing)
	}
	if !strings.Contains(string(listing), "squashfs-root/out/bin/hello") {
		t.Errorf("unsquashfs -lln does not list out/bin/hello:\n%s", listing)
	}
}
