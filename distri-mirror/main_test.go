package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// runCmd runs distri-mirror in-process with args and returns the exit
// code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli.RunArgs(t.Context(), newRootCmd, args...)
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "distri")
	repo := t.TempDir()
	mirrortest.WritePackages(t, filepath.Join(repo, "pkg"), mirrortest.Package{Name: "hello-amd64-2.12-1"})
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{name: "help has examples", args: []string{"index", "--help"}, wantOut: "Examples:"},
		{name: "keygen", args: []string{"keygen", "-o", name}, wantOut: name + ".pub\n" + name + ".key\n"},
		{name: "keygen again", args: []string{"keygen", "-o", name}, wantCode: 1, wantErr: "file exists"},
		{name: "index without key", args: []string{"index", repo}, wantCode: 2, wantErr: "--key is required"},
		{name: "index", args: []string{"index", "--key", name + ".key", repo}, wantOut: filepath.Join(repo, "pkg", "index") + "\n"},
		{name: "index with public key", args: []string{"index", "--key", name + ".pub", repo}, wantCode: 1, wantErr: "not a minisign Ed25519 secret key"},
		{name: "serve two repos", args: []string{"serve", repo, repo}, wantCode: 2, wantErr: "accepts 1 arg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, errs)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %q, want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errs, tt.wantErr)
			}
		})
	}
	minisign := distritest.NeedTool(t, "minisign")
	if out, err := exec.Command(minisign, "-V", "-p", name+".pub", "-m", filepath.Join(repo, "pkg", "index")).CombinedOutput(); err != nil {
		t.Errorf("minisign -V of the index: %v\n%s", err, out)
	}
}
