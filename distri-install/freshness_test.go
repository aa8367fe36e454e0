package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// TestAllowExpired installs from a repository whose index expired an
// hour ago: refused, then accepted with --allow-expired.
func TestAllowExpired(t *testing.T) {
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "libc-amd64-1-2"})
	if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key, Now: time.Now().Add(-25 * time.Hour), ValidFor: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	g := []string{"--root", t.TempDir(), "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	code, out, errs := runCmd(t, append(g, "libc")...)
	if code != 1 || out != "" || !strings.Contains(errs, "index expired") || !strings.Contains(errs, "--allow-expired") {
		t.Errorf("install from an expired index: exit %d, stdout %q, stderr %q; want exit 1 and an error about the expiry", code, out, errs)
	}
	code, out, errs = runCmd(t, append(g, "--allow-expired", "libc")...)
	if code != 0 || out != "libc-amd64-1-2\n" || !strings.Contains(errs, "using an expired index") {
		t.Errorf("install --allow-expired: exit %d, stdout %q, stderr %q; want the package installed with a notice", code, out, errs)
	}
	// The repository is remembered by its URL (it has no name).
	if got, _ := filepath.Glob(filepath.Join(g[1], "var/lib/distri/repos/by-url/*.json")); len(got) != 1 {
		t.Errorf("state files %v, want one", got)
	}
}
