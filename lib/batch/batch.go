// Package batch builds every stale recipe of a pkgs/ directory, in
// dependency order, independent ones in parallel.
//
// # Graph
//
// Every <pkgs>/<name>/build.textproto is a node. Its dep entries (and its
// builder's implicit deps, see [build.BuilderDeps]) and runtime_dep
// entries are edges to the recipes they name. A name that is not a recipe
// must already have a package in the repository. A cycle of build deps is
// an error naming it ("dependency cycle: a → b → a"); cycles that need a
// runtime dep (Debian's libc6 ↔ libgcc-s1) are ordered by their build deps,
// then by name, so the order is deterministic.
//
// # Staleness
//
// A recipe is built when its input digest ([build.InputDigest], which
// covers the build deps transitively) differs from the input_digest of the
// meta file of its full name in <repo>/pkg, or when there is none.
//
// # Several versions of one package
//
// A package may have several recipes, pkgs/<name>/<upstream>/ (see
// [distri.dev/distri/lib/recipe.Identify]); each is a node of its own,
// named <name>/<upstream> (lua/5.3.6). A dep entry naming the package
// resolves to its newest revision, a full name to that version.
//
// # Decisions
//
//   - Unlike the original's batch, which returned nil when builds failed,
//     [Run] returns a [*BuildError] naming every failed build and its log.
//   - Recipes that are up to date count as built: a stale recipe whose
//     dependency is up to date does not wait for anything behind it, as in
//     the original.
package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

// Builder builds one recipe.
type Builder interface {
	// Build builds the recipe in recipeDir (e.g. pkgs/hello) and returns
	// the package paths it wrote and its log file.
	Build(ctx context.Context, recipeDir string) (paths []string, logPath string, err error)
}

// Options configures [Run].
type Options struct {
	// PkgsDir holds the recipes, e.g. pkgs (pkgs/hello/build.textproto).
	PkgsDir string
	// RepoDir is the repository; its pkg/ holds the built packages.
	RepoDir string
	// Jobs is how many builds run at once; 0 means 1.
	Jobs int
	// KeepGoing builds everything that does not depend on a failed build.
	// Without it, no build starts after the first failure (running ones
	// finish).
	KeepGoing bool
	// DryRun only decides what is stale and its order: Builder is not used.
	DryRun bool
	// Builder builds recipes; required unless DryRun.
	Builder Builder
	// Digest returns a recipe directory's input digest; nil means
	// [build.InputDigestWithRepo] with RepoDir.
	Digest func(recipeDir string) (string, error)
	// Progress receives lines such as "[3/17] building hello …"; nil
	// discards them.
	Progress io.Writer
}

// Result is what [Run] did.
type Result struct {
	// Stale lists the recipes to build, in build order, e.g. [libc6 hello].
	Stale []string
	// Paths are the package paths the builds wrote, in completion order.
	Paths []string
}

// Failure is one failed build.
type Failure struct {
	Name string // e.g. hello
	Log  string // e.g. /tmp/distri-batch-123/hello.log; "" if none
	Err  error
}

// BuildError says some builds failed.
type BuildError struct {
	Total      int       // number of stale recipes
	Failed     []Failure // in build order
	Skipped    []string  // stale recipes depending on a failed one
	NotStarted []string  // not started after a failure (without KeepGoing) or cancellation
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d builds failed", len(e.Failed), e.Total)
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\n  %s: %v", f.Name, f.Err)
		if f.Log != "" {
			fmt.Fprintf(&b, " (log: %s)", f.Log)
		}
	}
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, "\nskipped (a dependency failed): %s", strings.Join(e.Skipped, ", "))
	}
	if len(e.NotStarted) > 0 {
		fmt.Fprintf(&b, "\nnot started: %s", strings.Join(e.NotStarted, ", "))
	}
	return b.String()
}

// Run builds the stale recipes of opts.PkgsDir. When builds fail it
// returns the result so far and a [*BuildError].
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.PkgsDir == "" || opts.RepoDir == "" {
		return nil, errors.New("batch: no pkgs or repository directory")
	}
	if opts.Builder == nil && !opts.DryRun {
		return nil, errors.New("batch: no builder")
	}
	digestOf := opts.Digest
	if digestOf == nil {
		// As the build computes it: deps without a recipe come from the
		// repository.
		digestOf = func(dir string) (string, error) { return build.InputDigestWithRepo(dir, opts.RepoDir) }
	}
	newest, err := newestMetas(filepath.Join(opts.RepoDir, "pkg"))
	if err != nil {
		return nil, err
	}
	recipes, names, err := graph(opts.PkgsDir, func(n string) bool { _, ok := newest[n]; return ok })
	if err != nil {
		return nil, err
	}
	all, waits := order(recipes, names)
	stale := make(map[string]bool)
	res := &Result{}
	for _, n := range all {
		d, err := digestOf(recipes[n].dir)
		if err != nil {
			return nil, fmt.Errorf("%s: input digest: %w", recipes[n].dir, err)
		}
		if m := (meta{file: filepath.Join(opts.RepoDir, "pkg", recipes[n].full+".meta.textproto")}); m.digest() == d {
			continue
		}
		stale[n] = true
		res.Stale = append(res.Stale, n)
	}
	if opts.DryRun || len(res.Stale) == 0 {
		return res, nil
	}
	s := &scheduler{opts: opts, recipes: recipes, waits: waits, res: res}
	return res, s.run(ctx, stale)
}

// meta is the newest package of one name in the repository.
type meta struct {
	name pkgname.Name
	file string // e.g. repo/pkg/hello-amd64-2.10-3-1.meta.textproto
}

// digest returns the meta's input_digest, "" if it cannot be read (which
// makes the recipe stale).
func (m meta) digest() string {
	pm, err := pb.ReadMetaFile(m.file)
	if err != nil {
		return ""
	}
	return pm.GetInputDigest()
}

// newestMetas maps package names to their newest meta file in pkgDir.
func newestMetas(pkgDir string) (map[string]meta, error) {
	out := make(map[string]meta)
	ents, err := os.ReadDir(pkgDir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".meta.textproto")
		if !ok {
			continue
		}
		n, err := pkgname.Parse(base)
		if err != nil || n.Arch != build.Arch {
			continue // e.g. the unversioned hello-amd64.meta.textproto
		}
		if old, ok := out[n.Pkg]; ok && pkgname.Compare(n, old.name) <= 0 {
			continue
		}
		out[n.Pkg] = meta{name: n, file: filepath.Join(pkgDir, e.Name())}
	}
	return out, nil
}
