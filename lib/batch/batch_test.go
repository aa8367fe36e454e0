package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/pb"
)

// fakeBuilder records the builds it runs and how many ran at once.
type fakeBuilder struct {
	fail  map[string]bool // recipe names whose build fails
	delay time.Duration
	// gate makes each build wait (up to 5s) until gate builds ran at
	// once, so that a parallelism test does not depend on timing.
	gate int

	mu      sync.Mutex
	order   []string
	active  int
	maxSeen int
}

func (f *fakeBuilder) Build(ctx context.Context, dir string) ([]string, string, error) {
	name := filepath.Base(dir)
	f.mu.Lock()
	f.order = append(f.order, name)
	f.active++
	f.maxSeen = max(f.maxSeen, f.active)
	f.mu.Unlock()
	time.Sleep(f.delay)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		reached := f.maxSeen >= f.gate
		f.mu.Unlock()
		if reached {
			break
		}
	}
	f.mu.Lock()
	f.active--
	f.mu.Unlock()
	log := "/logs/" + name + ".log"
	if f.fail[name] {
		return nil, log, errors.New("step failed")
	}
	return []string{"/repo/pkg/" + name + "-amd64-1.0-1.squashfs"}, log, nil
}

// writeRecipes writes <dir>/pkgs/<name>/build.textproto for each entry,
// whose value holds extra fields (dep, runtime_dep).
func writeRecipes(t *testing.T, recipes map[string]string) (pkgs, repo string) {
	t.Helper()
	dir := t.TempDir()
	pkgs = filepath.Join(dir, "pkgs")
	repo = filepath.Join(dir, "repo")
	for name, extra := range recipes {
		d := filepath.Join(pkgs, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		content := "source: \"empty://\"\nversion: \"1.0-1\"\nbuild_step: { argv: \"true\" }\n" + extra
		if err := os.WriteFile(filepath.Join(d, "build.textproto"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return pkgs, repo
}

// deps formats dep (and runtime_dep) fields.
func deps(field string, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s: %q\n", field, n)
	}
	return b.String()
}

func TestOrder(t *testing.T) {
	for _, tt := range []struct {
		name    string
		recipes map[string]string
		want    []string
	}{
		{
			name: "chain",
			recipes: map[string]string{
				"a": deps("dep", "b"),
				"b": deps("dep", "c"),
				"c": "",
			},
			want: []string{"c", "b", "a"},
		},
		{
			name: "diamond",
			recipes: map[string]string{
				"app":  deps("dep", "left", "right"),
				"left": deps("dep", "base"),
				"right": deps("dep", "base") +
					deps("runtime_dep", "base-amd64"),
				"base": "",
			},
			want: []string{"base", "left", "right", "app"},
		},
		{
			// libc6 ↔ libgcc-s1 in Debian imports: a runtime-only cycle
			// does not block, and the order is by name.
			name: "runtime cycle",
			recipes: map[string]string{
				"libc6":     deps("runtime_dep", "libgcc-s1"),
				"libgcc-s1": deps("runtime_dep", "libc6"),
				"hello":     deps("runtime_dep", "libc6"),
			},
			want: []string{"libc6", "libgcc-s1", "hello"},
		},
		{
			// A dep on a split package is one on the recipe splitting it off.
			name: "split package",
			recipes: map[string]string{
				"app": deps("dep", "lib-dev"),
				"lib": `split_package: { name: "lib-dev" claim: { glob: "out/include" } }`,
			},
			want: []string{"lib", "app"},
		},
		{
			// A build dep inside a runtime cycle decides the order.
			name: "runtime cycle with build dep",
			recipes: map[string]string{
				"a": deps("runtime_dep", "b") + deps("dep", "b"),
				"b": deps("runtime_dep", "a"),
			},
			want: []string{"b", "a"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, repo := writeRecipes(t, tt.recipes)
			fb := &fakeBuilder{}
			res, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, Builder: fb})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res.Stale); diff != "" {
				t.Errorf("Run: Stale mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, fb.order); diff != "" {
				t.Errorf("Run: build order mismatch (-want +got):\n%s", diff)
			}
			if got, want := len(res.Paths), len(tt.want); got != want {
				t.Errorf("Run: %d paths, want %d", got, want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		recipes map[string]string
		want    string
	}{
		{
			name: "build cycle",
			recipes: map[string]string{
				"a": deps("dep", "b"),
				"b": deps("dep", "c"),
				"c": deps("dep", "a") + deps("runtime_dep", "d"),
				"d": "",
			},
			want: "dependency cycle: a → b → c → a",
		},
		{
			name: "cycle through a runtime dep is not enough",
			recipes: map[string]string{
				"a":  deps("dep", "b"),
				"b":  deps("runtime_dep", "a") + deps("dep", "b2"),
				"b2": deps("dep", "b"),
			},
			want: "dependency cycle: b → b2 → b",
		},
		{
			name:    "missing dep",
			recipes: map[string]string{"hello": deps("runtime_dep", "libnope")},
			want:    `hello/build.textproto: dependency "libnope" is neither in`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, repo := writeRecipes(t, tt.recipes)
			_, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, Builder: &fakeBuilder{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestDepInRepo: a dep that is no recipe but has a package in the
// repository is fine.
func TestDepInRepo(t *testing.T) {
	pkgs, repo := writeRecipes(t, map[string]string{"hello": deps("runtime_dep", "libc6")})
	writeMeta(t, repo, "libc6-amd64-2.36-1", "whatever")
	res, err := Run(t.Context(), Options{
		PkgsDir: pkgs, RepoDir: repo, DryRun: true,
		Digest: func(string) (string, error) { return "d", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello"}, res.Stale); diff != "" {
		t.Errorf("Run: Stale mismatch (-want +got):\n%s", diff)
	}
}

func TestParallelism(t *testing.T) {
	recipes := make(map[string]string)
	for i := range 8 {
		recipes[fmt.Sprintf("p%d", i)] = ""
	}
	for _, jobs := range []int{1, 3} {
		t.Run(fmt.Sprintf("jobs=%d", jobs), func(t *testing.T) {
			pkgs, repo := writeRecipes(t, recipes)
			fb := &fakeBuilder{delay: 5 * time.Millisecond, gate: jobs}
			if _, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, Jobs: jobs, Builder: fb}); err != nil {
				t.Fatal(err)
			}
			if got, want := len(fb.order), 8; got != want {
				t.Errorf("built %d recipes, want %d", got, want)
			}
			if got, want := fb.maxSeen, jobs; got != want {
				t.Errorf("at most %d builds ran at once, want %d", got, want)
			}
		})
	}
}

// TestDependencyWaits: with plenty of jobs, a dependent still never runs
// alongside its dependency.
func TestDependencyWaits(t *testing.T) {
	pkgs, repo := writeRecipes(t, map[string]string{
		"a": deps("dep", "b"),
		"b": deps("dep", "c"),
		"c": "",
	})
	fb := &fakeBuilder{delay: 10 * time.Millisecond}
	if _, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, Jobs: 4, Builder: fb}); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.maxSeen, 1; got != want {
		t.Errorf("at most %d builds ran at once, want %d", got, want)
	}
}

func TestFailure(t *testing.T) {
	recipes := map[string]string{
		"base":  "",
		"bad":   deps("dep", "base"),
		"user":  deps("dep", "bad"),
		"user2": deps("runtime_dep", "user"),
		"other": deps("dep", "base"),
	}
	// Order: bad, base..., see below; jobs=1 keeps it deterministic.
	for _, tt := range []struct {
		name       string
		keepGoing  bool
		wantBuilt  []string
		skipped    []string
		notStarted []string
	}{
		{
			name:       "stop",
			wantBuilt:  []string{"base", "bad"},
			notStarted: []string{"other"},
			skipped:    []string{"user", "user2"},
		},
		{
			name:      "keep going",
			keepGoing: true,
			wantBuilt: []string{"base", "bad", "other"},
			skipped:   []string{"user", "user2"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, repo := writeRecipes(t, recipes)
			fb := &fakeBuilder{fail: map[string]bool{"bad": true}}
			var progress bytes.Buffer
			res, err := Run(t.Context(), Options{
				PkgsDir: pkgs, RepoDir: repo, Builder: fb,
				KeepGoing: tt.keepGoing, Progress: &progress,
			})
			var be *BuildError
			if !errors.As(err, &be) {
				t.Fatalf("Run = %v, want a *BuildError", err)
			}
			if diff := cmp.Diff(tt.wantBuilt, fb.order); diff != "" {
				t.Errorf("built mismatch (-want +got):\n%s", diff)
			}
			if got, want := len(be.Failed), 1; got != want || be.Failed[0].Name != "bad" || be.Failed[0].Log != "/logs/bad.log" {
				t.Errorf("Failed = %+v, want bad with /logs/bad.log", be.Failed)
			}
			if diff := cmp.Diff(tt.skipped, be.Skipped); diff != "" {
				t.Errorf("Skipped mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.notStarted, be.NotStarted); diff != "" {
				t.Errorf("NotStarted mismatch (-want +got):\n%s", diff)
			}
			for _, want := range []string{"1 of 5 builds failed", "bad: step failed (log: /logs/bad.log)", "skipped (a dependency failed): user, user2"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if got, want := len(res.Paths), len(tt.wantBuilt)-1; got != want {
				t.Errorf("Run: %d paths, want %d", got, want)
			}
			if !strings.Contains(progress.String(), "[1/5] building base …") {
				t.Errorf("progress %q lacks [1/5] building base …", progress.String())
			}
		})
	}
}

func writeMeta(t *testing.T, repo, full, digest string) {
	t.Helper()
	dir := filepath.Join(repo, "pkg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pb.WriteMetaFile(filepath.Join(dir, full+".meta.textproto"), &pb.Meta{InputDigest: &digest}); err != nil {
		t.Fatal(err)
	}
}

// TestStaleness uses the real input digest: a recipe whose digest matches
// its newest meta is not rebuilt; a changed dependency makes its dependent
// stale too.
func TestStaleness(t *testing.T) {
	pkgs, repo := writeRecipes(t, map[string]string{
		"lib":   "",
		"app":   deps("dep", "lib"),
		"fresh": "",
		"new":   "",
	})
	for _, n := range []string{"lib", "app", "fresh"} {
		d, err := build.InputDigest(filepath.Join(pkgs, n))
		if err != nil {
			t.Fatal(err)
		}
		writeMeta(t, repo, n+"-amd64-1.0-1", d)
	}
	// An older revision with another digest does not count.
	writeMeta(t, repo, "fresh-amd64-1.0-0", "old")

	res, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"new"}, res.Stale); diff != "" {
		t.Errorf("unchanged: Stale mismatch (-want +got):\n%s", diff)
	}

	f := filepath.Join(pkgs, "lib", "build.textproto")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, "cherry_pick: \"fix.patch\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkgs, "lib", "fix.patch"), []byte("patch"), 0o644); err != nil {
		t.Fatal(err)
	}
	fb := &fakeBuilder{}
	res, err = Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, Builder: fb})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"lib", "app", "new"}, fb.order); diff != "" {
		t.Errorf("changed lib: built mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fb.order, res.Stale); diff != "" {
		t.Errorf("changed lib: Stale mismatch (-want +got):\n%s", diff)
	}
}

func TestDryRun(t *testing.T) {
	pkgs, repo := writeRecipes(t, map[string]string{"a": deps("dep", "b"), "b": ""})
	fb := &fakeBuilder{}
	res, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, DryRun: true, Builder: fb})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b", "a"}, res.Stale); diff != "" {
		t.Errorf("Stale mismatch (-want +got):\n%s", diff)
	}
	if len(fb.order) != 0 || len(res.Paths) != 0 {
		t.Errorf("dry run built %v, wrote %v; want nothing", fb.order, res.Paths)
	}
}

// TestVersions: two recipes of one package (pkgs/lua/<upstream>/) are
// two nodes; a full name pins one, and each is stale on its own.
func TestVersions(t *testing.T) {
	pkgs, repo := writeRecipes(t, map[string]string{
		"app":  deps("dep", "lua-amd64-5.3.6-1"),
		"app2": deps("dep", "lua-amd64-5.4.4-1"),
	})
	for _, v := range []string{"5.3.6", "5.4.4"} {
		d := filepath.Join(pkgs, "lua", v)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		content := "source: \"empty://\"\nversion: \"" + v + "-1\"\nbuild_step: { argv: \"true\" }\n"
		if err := os.WriteFile(filepath.Join(d, "build.textproto"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := build.InputDigest(filepath.Join(pkgs, "lua", "5.4.4"))
	if err != nil {
		t.Fatal(err)
	}
	writeMeta(t, repo, "lua-amd64-5.4.4-1", d)
	res, err := Run(t.Context(), Options{PkgsDir: pkgs, RepoDir: repo, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"lua/5.3.6", "app", "app2"}, res.Stale); diff != "" {
		t.Errorf("Stale mismatch (-want +got):\n%s", diff)
	}

	// An unqualified dep on a package with two recipes of the same
	// revision is ambiguous.
	pkgs2, repo2 := writeRecipes(t, map[string]string{"app": deps("dep", "lua")})
	if err := os.Rename(filepath.Join(pkgs, "lua"), filepath.Join(pkgs2, "lua")); err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), Options{PkgsDir: pkgs2, RepoDir: repo2, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), `"lua" is ambiguous`) || !strings.Contains(err.Error(), filepath.Join(pkgs2, "app", "build.textproto")) {
		t.Errorf("Run with an ambiguous dep: %v, want the recipe and the ambiguity named", err)
	}
}
