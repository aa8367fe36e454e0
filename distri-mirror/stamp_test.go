package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/repo"
)

// TestIndexNameValidFor signs with --name and --valid-for and reads the
// trusted comment back as the client does.
func TestIndexNameValidFor(t *testing.T) {
	name := filepath.Join(t.TempDir(), "distri")
	dir := t.TempDir()
	mirrortest.WritePackages(t, filepath.Join(dir, "pkg"), mirrortest.Package{Name: "hello-amd64-2.12-1"})
	if code, _, errs := runCmd(t, "keygen", "-o", name); code != 0 {
		t.Fatalf("keygen: %s", errs)
	}
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "negative validity", args: []string{"--valid-for", "-1h"}, wantCode: 2, wantErr: "--valid-for -1h0m0s: negative"},
		{name: "bad name", args: []string{"--name", "a/b"}, wantCode: 1, wantErr: `repository name "a/b"`},
		{name: "name and validity", args: []string{"--name", "distri", "--valid-for", "168h"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCmd(t, append(append([]string{"index", "--key", name + ".key"}, tt.args...), dir)...)
			if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
				t.Errorf("index %v: exit %d, stderr %q; want %d, %q", tt.args, code, errs, tt.wantCode, tt.wantErr)
			}
		})
	}
	pub, err := minisign.ReadPublicKeyFile(name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "pkg", "index"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sig, err := os.ReadFile(filepath.Join(dir, "pkg", "index.minisig"))
	if err != nil {
		t.Fatal(err)
	}
	comment, err := minisign.Verify(f, sig, pub)
	if err != nil {
		t.Fatal(err)
	}
	s, err := repo.ParseStamp(comment)
	if err != nil {
		t.Fatal(err)
	}
	if s.Repo != "distri" || s.Expires.Sub(s.Signed).Hours() != 168 {
		t.Errorf("trusted comment %q: want repo:distri and an expiry 168h after the time stamp", comment)
	}
}
