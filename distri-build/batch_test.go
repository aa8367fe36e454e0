package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
)

// TestBatch runs batch on Debian-import recipes whose builds fail fast (a
// local source that does not exist): nothing is downloaded and no sandbox
// is needed.
func TestBatch(t *testing.T) {
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "pkgs")
	repo := filepath.Join(dir, "repo")
	logs := filepath.Join(dir, "logs")
	cache := filepath.Join(dir, "cache")
	for name, extra := range map[string]string{
		"a": "",
		"b": "dep: \"a\"\n",
		"c": "runtime_dep: \"a\"\n",
		"d": "",
	} {
		d := filepath.Join(pkgs, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		content := "source: \"missing_1.0_amd64.deb\"\nhash: \"" + strings.Repeat("0", 64) + "\"\nversion: \"1.0-1\"\n" + extra
		if err := os.WriteFile(filepath.Join(d, "build.textproto"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errs := runCmd(t, "batch", "--repo", repo, "--dry-run", pkgs)
	if code != 0 {
		t.Fatalf("batch --dry-run: exit %d\n%s", code, errs)
	}
	if got, want := out, "a\nb\nc\nd\n"; got != want {
		t.Errorf("batch --dry-run printed %q, want %q", got, want)
	}
	if _, err := os.Stat(logs); !os.IsNotExist(err) {
		t.Errorf("batch --dry-run made %s: %v", logs, err)
	}

	for _, tt := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{
			name: "stop",
			want: []string{
				"1 of 4 builds failed",
				"\n  a: ",
				"(log: " + filepath.Join(logs, "a.log") + ")",
				"skipped (a dependency failed): b, c",
				"not started: d",
			},
		},
		{
			name:  "keep going",
			flags: []string{"--keep-going", "--jobs", "2"},
			want: []string{
				"2 of 4 builds failed",
				"(log: " + filepath.Join(logs, "d.log") + ")",
				"skipped (a dependency failed): b, c",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"batch", "--repo", repo, "--cache", cache, "--log-dir", logs}, tt.flags...)
			code, out, errs := runCmd(t, append(args, pkgs)...)
			if code != 1 {
				t.Fatalf("batch: exit %d, want 1\n%s", code, errs)
			}
			if out != "" {
				t.Errorf("batch printed %q, want nothing", out)
			}
			for _, want := range append(tt.want, "[1/4] building a …") {
				if !strings.Contains(errs, want) {
					t.Errorf("batch stderr lacks %q:\n%s", want, errs)
				}
			}
			if b, err := os.ReadFile(filepath.Join(logs, "a.log")); err != nil || !strings.Contains(string(b), "error: ") {
				t.Errorf("a.log = %q, %v; want the error", b, err)
			}
		})
	}

	// A cycle of build deps names the cycle.
	if err := os.WriteFile(filepath.Join(pkgs, "a", "build.textproto"),
		[]byte("source: \"empty://\"\nversion: \"1.0-1\"\ndep: \"b\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, "batch", "--repo", repo, "--dry-run", pkgs)
	if want := "dependency cycle: a → b → a"; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("batch with a cycle: exit %d, stderr %q; want 1 and %q", code, errs, want)
	}
}

// TestBatchDebianImports scaffolds GNU hello's Debian closure and batch
// builds it: a real apt-cache lookup and real fetches from the machine's
// Debian archive (cached under distritest.CacheDir). A second batch finds
// nothing stale.
func TestBatchDebianImports(t *testing.T) {
	distritest.NeedTool(t, "apt-cache")
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "pkgs")
	repo := filepath.Join(dir, "repo")
	cache := filepath.Join(distritest.CacheDir(t), "sources")
	if code, _, errs := runCmd(t, "scaffold", "debian:hello", "-o", pkgs); code != 0 {
		t.Fatalf("scaffold: exit %d\n%s", code, errs)
	}
	ents, err := os.ReadDir(pkgs)
	if err != nil {
		t.Fatal(err)
	}

	args := []string{"batch", "--repo", repo, "--cache", cache, "--log-dir", filepath.Join(dir, "logs"), "--jobs", "2", pkgs}
	code, out, errs := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("batch: exit %d\n%s", code, errs)
	}
	imgs := strings.Fields(out)
	if got, want := len(imgs), len(ents); got != want {
		t.Fatalf("batch printed %d images, want one per recipe (%d):\n%s", got, want, out)
	}
	for _, img := range imgs {
		if filepath.Dir(img) != filepath.Join(repo, "pkg") || !strings.HasSuffix(img, ".squashfs") {
			t.Errorf("batch printed %q, want %s/….squashfs", img, filepath.Join(repo, "pkg"))
		}
	}
	// hello comes last: everything else is its runtime closure.
	if last := filepath.Base(imgs[len(imgs)-1]); !strings.HasPrefix(last, "hello-amd64-") {
		t.Errorf("batch built %s last, want hello", last)
	}

	code, out, errs = runCmd(t, args...)
	if code != 0 || out != "" {
		t.Errorf("second batch: exit %d, printed %q, want 0 and nothing\n%s", code, out, errs)
	}
}
