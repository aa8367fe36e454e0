package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"distri.dev/distri/lib/batch"
	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/recipe"
)

// sourceBuilt are the recipes of pkgs/ built from upstream tarballs.
var sourceBuilt = []string{"hello", "lua/5.3.6", "lua/5.4.4", "zstd", "gnu-make", "brotli", "fribidi"}

// benchBuild measures the build sandbox (needs root):
//
//   - build-zstd: pkgs/zstd built in the sandbox (without its tests) vs
//     the same steps directly on the host with the host's gcc 12 (Debian
//     bookworm's, the compiler the imported toolchain carries): copy the
//     source, make -jN, make install DESTDIR. Ours includes everything a
//     build does once its dependencies are in the repository: extracting
//     the source, assembling /ro, the sandboxes, packaging.
//   - build-setup: from the start of a build (dependencies built, source
//     cached) until its first build step runs, against the 100 ms target.
//   - build-batch: distri-build batch over the closure of the
//     source-built packages (the bootstrap set included) in a fresh
//     repository, --jobs NumCPU, against the sum of the single builds
//     (from a --jobs 1 batch) and against the critical path (the longest
//     chain of dependencies, weighted by those single build times).
func benchBuild(work, _ string, rounds int) ([]result, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root: builds run in the sandbox and loop-mount images")
	}
	cache, err := distritest.DefaultCacheDir()
	if err != nil {
		return nil, err
	}
	uris, err := debian.DefaultSources.ArchiveURIs()
	if err != nil {
		return nil, err
	}
	fetcher := &source.Fetcher{CacheDir: filepath.Join(cache, "sources"), ArchiveURIs: uris}
	pkgs := filepath.Join(work, "build-pkgs")
	if err := copyClosure("pkgs", pkgs, sourceBuilt); err != nil {
		return nil, err
	}
	newBuilder := func(repo string) (*build.Builder, error) {
		return build.New(build.Options{RepoDir: repo, Fetcher: fetcher, TempDir: work})
	}
	var results []result

	// batch first: it fills the repository the other measurements use.
	times := make(map[string]time.Duration)
	seqRepo := filepath.Join(work, "build-repo-seq")
	seq, err := timedBatch(pkgs, seqRepo, 1, newBuilder, times)
	if err != nil {
		return nil, err
	}
	par, err := timedBatch(pkgs, filepath.Join(work, "build-repo-par"), runtime.NumCPU(), newBuilder, nil)
	if err != nil {
		return nil, err
	}
	os.RemoveAll(filepath.Join(work, "build-repo-par"))
	crit, path, err := criticalPath(pkgs, times)
	if err != nil {
		return nil, err
	}
	var sum time.Duration
	for _, d := range times {
		sum += d
	}
	results = append(results,
		result{name: "build-batch", ours: par, peerName: "sum of single builds", peer: sum,
			note: fmt.Sprintf("%d recipes, --jobs %d; --jobs 1 took %v", len(times), runtime.NumCPU(), seq.Round(time.Second))},
		result{name: "build-batch", ours: par, peerName: "critical path", peer: crit,
			note: strings.Join(path, " → ")})

	b, err := newBuilder(seqRepo)
	if err != nil {
		return nil, err
	}
	setup, detail, err := firstStepLatency(b, pkgs)
	if err != nil {
		return nil, err
	}
	results = append(results, result{name: "build-setup", ours: setup, peerName: "target", peer: 100 * time.Millisecond, note: detail})

	// zstd: the sandboxed build (the package is removed from the
	// repository before each round) against the host build.
	zstdDir := filepath.Join(pkgs, "zstd")
	zr, err := build.ReadRecipe(zstdDir)
	if err != nil {
		return nil, err
	}
	hash := zr.GetHash()
	archive, err := fetcher.Fetch(context.Background(), zr.File, zr.Dir, hash, []string{zr.GetSource()})
	if err != nil {
		return nil, err
	}
	ours, peer, err := measure(rounds, func() error {
		for _, suf := range []string{".squashfs", ".meta.textproto"} {
			os.Remove(filepath.Join(seqRepo, "pkg", zr.FullName()+suf))
		}
		_, err := b.Build(context.Background(), zstdDir)
		return err
	}, func() error {
		return hostZstd(work, archive, zr.GetSource())
	})
	if err != nil {
		return nil, err
	}
	results = append(results, result{name: "build-zstd", ours: ours, peerName: "host make, gcc 12", peer: peer,
		note: fmt.Sprintf("make -j%d, no tests; target ≤ 1.15x", runtime.NumCPU())})
	return results, nil
}

// copyClosure copies the recipes of roots and of everything they need to
// build and run, transitively, from the tree src to dst.
func copyClosure(src, dst string, roots []string) error {
	os.RemoveAll(dst)
	seen := map[string]bool{}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		dep := queue[0]
		queue = queue[1:]
		ref := recipe.Ref{Dir: filepath.Join(src, dep)} // a recipe directory, e.g. lua/5.3.6
		if !strings.Contains(dep, "/") {
			var err error
			if ref, err = recipe.Resolve(src, dep); errors.Is(err, os.ErrNotExist) {
				continue // no recipe: from the repository (distri); batch says if it is missing
			} else if err != nil {
				return err
			}
		}
		if seen[ref.Dir] {
			continue
		}
		seen[ref.Dir] = true
		b, err := pb.ReadBuildFile(filepath.Join(ref.Dir, recipe.FileName))
		if err != nil {
			return err
		}
		queue = append(queue, b.GetDep()...)
		queue = append(queue, build.BuilderDeps(b)...)
		queue = append(queue, b.GetRuntimeDep()...)
		rel, _ := filepath.Rel(src, ref.Dir)
		if err := copyTree(ref.Dir, filepath.Join(dst, rel)); err != nil {
			return err
		}
	}
	return nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}

// timedBuilder builds with lib/build and records how long each build
// took.
type timedBuilder struct {
	b     *build.Builder
	mu    sync.Mutex
	times map[string]time.Duration // recipe directory → build time
}

func (tb *timedBuilder) Build(ctx context.Context, dir string) ([]string, string, error) {
	start := time.Now()
	img, err := tb.b.Build(ctx, dir)
	if tb.times != nil {
		tb.mu.Lock()
		tb.times[dir] = time.Since(start)
		tb.mu.Unlock()
	}
	if err != nil {
		return nil, "", err
	}
	return []string{img}, "", nil
}

// timedBatch runs a batch over pkgs into a fresh repo and returns its
// wall time; times, if not nil, receives each build's time.
func timedBatch(pkgs, repo string, jobs int, newBuilder func(string) (*build.Builder, error), times map[string]time.Duration) (time.Duration, error) {
	os.RemoveAll(repo)
	b, err := newBuilder(repo)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "bench: batch --jobs %d over %s\n", jobs, pkgs)
	start := time.Now()
	_, err = batch.Run(context.Background(), batch.Options{
		PkgsDir: pkgs, RepoDir: repo, Jobs: jobs,
		Builder: &timedBuilder{b: b, times: times},
	})
	return time.Since(start), err
}

// criticalPath returns the longest chain of build and runtime
// dependencies among the recipes in pkgs, weighted by times (recipe
// directory → build time).
func criticalPath(pkgs string, times map[string]time.Duration) (time.Duration, []string, error) {
	refs, err := recipe.All(pkgs)
	if err != nil {
		return 0, nil, err
	}
	idx := recipe.NewIndex(refs)
	memo := map[string]time.Duration{}
	next := map[string]string{}
	var visit func(dir string, stack []string) (time.Duration, error)
	visit = func(dir string, stack []string) (time.Duration, error) {
		if d, ok := memo[dir]; ok {
			return d, nil
		}
		if slices.Contains(stack, dir) {
			return 0, nil // a runtime cycle (libc6 ↔ libgcc-s1): batch orders it by name
		}
		b, err := pb.ReadBuildFile(filepath.Join(dir, recipe.FileName))
		if err != nil {
			return 0, err
		}
		var longest time.Duration
		for _, d := range slices.Concat(b.GetDep(), build.BuilderDeps(b), b.GetRuntimeDep()) {
			ref, ok, err := idx.Resolve(d)
			if err != nil || !ok || ref.Dir == dir {
				continue
			}
			l, err := visit(ref.Dir, append(stack, dir))
			if err != nil {
				return 0, err
			}
			if l > longest {
				longest, next[dir] = l, ref.Dir
			}
		}
		memo[dir] = longest + times[dir]
		return memo[dir], nil
	}
	var best time.Duration
	var start string
	for _, r := range refs {
		d, err := visit(r.Dir, nil)
		if err != nil {
			return 0, nil, err
		}
		if d > best {
			best, start = d, r.Dir
		}
	}
	var path []string
	for dir := start; dir != ""; dir = next[dir] {
		rel, _ := filepath.Rel(pkgs, dir)
		path = append(path, fmt.Sprintf("%s %v", rel, times[dir].Round(100*time.Millisecond)))
	}
	return best, path, nil
}

// firstStepLatency builds a probe recipe (the cbuilder's toolchain, a
// tiny local source) whose first build step prints the time, and returns
// how long after the start of the build that step ran, with the build
// log's breakdown.
func firstStepLatency(b *build.Builder, pkgs string) (time.Duration, string, error) {
	dir := filepath.Join(pkgs, "setup-probe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, "", err
	}
	var tb bytes.Buffer
	zw := gzip.NewWriter(&tb)
	tw := tar.NewWriter(zw)
	readme := []byte("the set-up probe's source\n")
	tw.WriteHeader(&tar.Header{Name: "probe/README", Mode: 0o644, Size: int64(len(readme)), ModTime: time.Unix(1, 0)})
	tw.Write(readme)
	tw.Close()
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "src.tar.gz"), tb.Bytes(), 0o644); err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(tb.Bytes())
	hash := hex.EncodeToString(sum[:])
	rcp := `source: "src.tar.gz"
hash: "` + hash + `"
version: "1-1"
cbuilder: {}
build_step: { argv: ["date", "+%s.%N"] }
build_step: { argv: ["mkdir", "-p", "${DISTRI_DESTDIR}${DISTRI_PREFIX}/share/probe"] }
`
	if err := os.WriteFile(filepath.Join(dir, recipe.FileName), []byte(rcp), 0o644); err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	var best time.Duration
	var detail string
	for i := range 3 { // the first build also fetches the source into the cache
		start := time.Now()
		img, err := b.Build(context.Background(), dir)
		if err != nil {
			return 0, "", err
		}
		os.Remove(img)
		os.Remove(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
		logPath := filepath.Join(filepath.Dir(filepath.Dir(img)), "log", "setup-probe-amd64-1-1.log")
		lb, err := os.ReadFile(logPath)
		if err != nil {
			return 0, "", err
		}
		var stepAt time.Time
		sc := bufio.NewScanner(bytes.NewReader(lb))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "### set-up:") && i > 0 {
				detail = strings.TrimPrefix(line, "### ")
			}
			if f, err := strconv.ParseFloat(line, 64); err == nil && stepAt.IsZero() {
				stepAt = time.Unix(0, int64(f*1e9))
			}
		}
		if stepAt.IsZero() {
			return 0, "", fmt.Errorf("%s: no time stamp from the first step", logPath)
		}
		if d := stepAt.Sub(start); i > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	return best, detail, nil
}

// hostZstd builds zstd on the host like the recipe does in the sandbox:
// extract, copy into a build directory, make, make install DESTDIR.
func hostZstd(work, archive, name string) error {
	dir, err := os.MkdirTemp(work, "host-zstd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	if err := source.Extract(archive, name, src); err != nil {
		return err
	}
	prefix := "/ro/zstd-amd64-1.5.4-1/out"
	jobs := strconv.Itoa(runtime.NumCPU())
	script := fmt.Sprintf("cp -a %s/. %s/build/ && cd %s/build && make -j%s PREFIX=%s && make install PREFIX=%s DESTDIR=%s/dest",
		src, dir, dir, jobs, prefix, prefix, dir)
	if err := os.MkdirAll(filepath.Join(dir, "build"), 0o755); err != nil {
		return err
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8", "CC=gcc-12", "SOURCE_DATE_EPOCH=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("host zstd build: %v\n%s", err, tailString(string(out), 2000))
	}
	return nil
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
