// Package build turns recipes (pkgs/<name>/build.textproto) into distri
// packages in a repository's pkg/ directory.
//
// What works today: fetching and verifying sources (package
// [distri.dev/distri/lib/build/source]), the input digest over every
// transitive input, importing Debian binary packages (a recipe with a .deb
// source and no builder or build steps), which are repackaged into the
// distri layout without compiling anything, meta-packages (source
// empty://, no builder: an image without files, only runtime deps), and
// the cbuilder (autotools), cmakebuilder, mesonbuilder and custom
// build_steps, which compile in the build sandbox
// ([distri.dev/distri/lib/sandbox]) against the Debian-imported bootstrap
// toolchain in pkgs/ (see builders.go, sandbox_build.go and
// docs/build.md). Other builders return an error wrapping
// [ErrNeedsSandbox].
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/recipe"
	"distri.dev/distri/lib/sandbox"
	"distri.dev/distri/lib/squashfs"
)

// ErrNeedsSandbox is returned for recipes whose builder is not
// implemented in the build sandbox yet (perlbuilder, pythonbuilder,
// gomodbuilder, gobuilder).
var ErrNeedsSandbox = errors.New("needs the build sandbox (not yet supported)")

// Arch is the architecture packages are built for.
const Arch = "amd64"

// Options configures a [Builder].
type Options struct {
	// RepoDir is the repository; packages go to RepoDir/pkg.
	RepoDir string
	// Fetcher downloads sources.
	Fetcher *source.Fetcher
	// TempDir is where sources are extracted; "" means os.TempDir().
	TempDir string
	// Check runs "make check" (cbuilder) after building, before
	// installing; a failing check fails the build.
	Check bool
	// Jobs is the parallelism inside one build (DISTRI_JOBS: make -j,
	// ninja -j); 0 means the number of CPUs. It is no input of the
	// package: the same recipe gives the same bytes with any Jobs.
	Jobs int
	// Limits bounds each sandboxed build step: processes, memory, CPU
	// weight, wall-clock time, tmpfs sizes. Zero fields mean the
	// sandbox's defaults (sandbox.Limits).
	Limits sandbox.Limits
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
	// StepOutput, if set, receives what sandboxed build steps write, as
	// the build's log does. Steps never get a terminal: the sandbox
	// passes their output through a pipe (docs/sandbox.md).
	StepOutput io.Writer
}

// Builder builds recipes.
type Builder struct {
	opts Options
}

// New returns a Builder.
func New(opts Options) (*Builder, error) {
	if opts.RepoDir == "" {
		return nil, errors.New("build: no repository directory")
	}
	if opts.Fetcher == nil {
		return nil, errors.New("build: no fetcher")
	}
	return &Builder{opts: opts}, nil
}

func (b *Builder) logf(format string, args ...any) {
	if b.opts.Log != nil {
		b.opts.Log(format, args...)
	}
}

// Recipe is a parsed recipe and where it lives.
type Recipe struct {
	Name string // the package name (see [recipe.Identify])
	Dir  string // pkgs/<name> or pkgs/<name>/<upstream version>
	File string // Dir/build.textproto
	Root string // the recipe tree, pkgs
	// Repo, if set, is a repository whose packages serve the deps the
	// recipe tree has no recipe for (see repoRecipe in farm.go).
	Repo string
	// repoMeta is set for a package taken from Repo instead of a recipe.
	repoMeta *pb.Meta
	*pb.Build
}

// ReadRecipe reads pkgDir/build.textproto.
func ReadRecipe(pkgDir string) (*Recipe, error) {
	dir := filepath.Clean(pkgDir)
	f := filepath.Join(dir, "build.textproto")
	b, err := pb.ReadBuildFile(f)
	if errors.Is(err, os.ErrNotExist) {
		// pkgs/lua with pkgs/lua/5.3.6/ and pkgs/lua/5.4.4/: say so.
		if refs, verr := recipe.Versions(filepath.Dir(dir), filepath.Base(dir)); verr == nil && refs[0].Dir != dir {
			var dirs []string
			for _, r := range refs {
				dirs = append(dirs, r.Dir)
			}
			return nil, fmt.Errorf("%s holds several versions of %s, build one of %s: %w", dir, filepath.Base(dir), strings.Join(dirs, ", "), err)
		}
	}
	if err != nil {
		return nil, err
	}
	name, root := recipe.Identify(dir, b.GetVersion())
	return &Recipe{Name: name, Dir: dir, File: f, Root: root, Build: b}, nil
}

// FullName is the recipe's package name, e.g. hello-amd64-2.10-3-1.
func (r *Recipe) FullName() string {
	return r.Name + "-" + Arch + "-" + r.GetVersion()
}

// EmptySource is the source of a recipe without one: with neither
// builder nor build steps, a meta-package ("empty").
const EmptySource = "empty://"

// BuilderName names what builds the recipe: "debian-import" for a .deb
// source without builder or build steps, "empty" for a meta-package
// (source empty://, no builder, no build steps), the builder's field
// name (cbuilder, …), "build_step" for custom steps, or "none".
func (r *Recipe) BuilderName() string {
	switch {
	case r.GetCbuilder() != nil:
		return "cbuilder"
	case r.GetCmakebuilder() != nil:
		return "cmakebuilder"
	case r.GetMesonbuilder() != nil:
		return "mesonbuilder"
	case r.GetPerlbuilder() != nil:
		return "perlbuilder"
	case r.GetPythonbuilder() != nil:
		return "pythonbuilder"
	case r.GetGomodbuilder() != nil:
		return "gomodbuilder"
	case r.GetGobuilder() != nil:
		return "gobuilder"
	case len(r.GetBuildStep()) > 0:
		return "build_step"
	case strings.HasSuffix(r.GetSource(), ".deb"):
		return "debian-import"
	case r.GetSource() == EmptySource:
		return "empty"
	}
	return "none"
}

// depName returns the package a dep or runtime_dep entry names: pkg,
// pkg-arch or a full name.
func depName(d string) string {
	if n, err := pkgname.Parse(d); err == nil {
		return n.Pkg
	}
	pkg, _ := pkgname.SplitArch(d)
	return pkg
}

// lookup reads the recipe of the package named by dep in r's recipe
// tree ([recipe.Resolve]); a split package resolves to the recipe that
// splits it off; a package the tree lacks comes from r's repository, if
// it has one and the package is there.
func lookup(r *Recipe, dep string) (*Recipe, error) {
	dr, err := lookupIn(r, dep)
	if dr != nil {
		dr.Repo = r.Repo
	}
	return dr, err
}

func lookupIn(r *Recipe, dep string) (*Recipe, error) {
	ref, err := recipe.Resolve(r.Root, dep)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if sr, serr := splitRecipe(r.Root, dep); serr != nil || sr != nil {
				return sr, serr
			}
			if r.Repo != "" {
				if rr, rerr := repoRecipe(r.Repo, dep); rerr != nil || rr != nil {
					if rr != nil {
						rr.Root = r.Root
					}
					return rr, rerr
				}
			}
			return nil, fmt.Errorf("%s: unknown dependency %q (%v)", r.File, dep, err)
		}
		return nil, fmt.Errorf("%s: dependency %q: %w", r.File, dep, err)
	}
	return ReadRecipe(ref.Dir)
}

// InputDigest returns the lowercase hex sha256 over every input of the
// recipe in pkgDir: the recipe file's bytes, the source's sha256, the
// bytes of each patch and extra file, the builder's name, the input
// digests of the build dependencies (dep) recursively, and the full names
// of the runtime dependency closure (runtime dependencies may form
// cycles, e.g. libc6 and libgcc-s1, so they enter by name and version).
// Each item is length-prefixed and labelled, so the digest is stable and
// unambiguous.
func InputDigest(pkgDir string) (string, error) {
	return InputDigestWithRepo(pkgDir, "")
}

// InputDigestWithRepo is [InputDigest] for a recipe whose deps may come
// from the repository repoDir (those its tree has no recipe for), as in
// [Builder.Build]: such a dep enters by its meta's input digest.
func InputDigestWithRepo(pkgDir, repoDir string) (string, error) {
	r, err := ReadRecipe(pkgDir)
	if err != nil {
		return "", err
	}
	r.Repo = repoDir
	return inputDigest(r, nil)
}

func inputDigest(r *Recipe, stack []string) (string, error) {
	if r.repoMeta != nil {
		return r.repoMeta.GetInputDigest(), nil // a package from the repository
	}
	if i := slices.Index(stack, r.Name); i >= 0 {
		return "", fmt.Errorf("dependency cycle: %s", strings.Join(append(stack[i:], r.Name), " -> "))
	}
	stack = append(stack, r.Name)
	h := sha256.New()
	item := func(label string, b []byte) {
		fmt.Fprintf(h, "%s %d\n", label, len(b))
		h.Write(b)
		h.Write([]byte("\n"))
	}
	rb, err := os.ReadFile(r.File)
	if err != nil {
		return "", err
	}
	item("recipe", rb)
	item("source-sha256", []byte(r.GetHash()))
	item("builder", []byte(r.BuilderName()+importRevision(r))) // debian_effects.go
	for _, p := range r.GetCherryPick() {
		b, err := os.ReadFile(filepath.Join(r.Dir, p))
		if err != nil {
			return "", fmt.Errorf("%s: cherry_pick: %w", r.File, err)
		}
		item("cherry_pick "+p, b)
	}
	for _, e := range r.GetExtraFile() {
		b, err := os.ReadFile(filepath.Join(r.Dir, e))
		if err != nil {
			return "", fmt.Errorf("%s: extra_file: %w", r.File, err)
		}
		item("extra_file "+e, b)
	}
	deps := append(slices.Clone(r.GetDep()), BuilderDeps(r.Build)...) // the builder's implicit deps too
	slices.Sort(deps)
	for _, d := range slices.Compact(deps) {
		dr, err := lookup(r, d)
		if err != nil {
			return "", err
		}
		dd, err := inputDigest(dr, stack)
		if err != nil {
			return "", err
		}
		item("dep "+dr.FullName(), []byte(dd))
	}
	closure, err := RuntimeClosure(r)
	if err != nil {
		return "", err
	}
	for _, c := range closure {
		item("runtime_dep", []byte(c))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RuntimeClosure returns the sorted full names of the recipe's runtime
// dependencies and theirs, transitively, read from the recipes next to
// r's directory (not including r itself).
func RuntimeClosure(r *Recipe) ([]string, error) {
	seen := map[string]bool{r.Name: true}
	var out []string
	queue := []*Recipe{r}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range cur.GetRuntimeDep() {
			if seen[depName(d)] {
				continue
			}
			seen[depName(d)] = true
			dr, err := lookup(cur, d)
			if err != nil {
				return nil, err
			}
			out = append(out, dr.FullName())
			queue = append(queue, dr)
		}
	}
	slices.Sort(out)
	return out, nil
}

// BuildAll builds the recipe in pkgDir like [Builder.Build] and returns
// the paths of every package it wrote: the main package first, then its
// split packages in the recipe's order.
func (b *Builder) BuildAll(ctx context.Context, pkgDir string) ([]string, error) {
	img, err := b.Build(ctx, pkgDir)
	if err != nil {
		return nil, err
	}
	paths := []string{img}
	r, err := ReadRecipe(pkgDir)
	if err != nil {
		return nil, err
	}
	for _, sp := range r.GetSplitPackage() {
		full := sp.GetName() + "-" + Arch + "-" + r.GetVersion()
		paths = append(paths, filepath.Join(filepath.Dir(img), full+".squashfs"))
	}
	return paths, nil
}

// Build builds the recipe in pkgDir into RepoDir/pkg and returns the
// image's path. Debian imports, meta-packages (empty://) and cbuilder
// recipes are supported (the latter need root: they loop-mount their dependencies and use the
// sandbox); other recipes return an error wrapping [ErrNeedsSandbox].
func (b *Builder) Build(ctx context.Context, pkgDir string) (string, error) {
	r, err := ReadRecipe(pkgDir)
	if err != nil {
		return "", err
	}
	r.Repo = b.opts.RepoDir
	bn := r.BuilderName()
	if bn != "debian-import" && bn != "empty" && !slices.Contains(sandboxedBuilders, bn) {
		return "", fmt.Errorf("%w: %s (builder %s)", ErrNeedsSandbox, r.File, bn)
	}
	if _, err := pkgname.Parse(r.FullName()); err != nil {
		return "", fmt.Errorf("%s: %w", r.File, err)
	}
	if bn != "debian-import" && bn != "empty" {
		return b.buildSandboxed(ctx, r)
	}
	digest, err := inputDigest(r, nil)
	if err != nil {
		return "", err
	}
	closure, err := RuntimeClosure(r)
	if err != nil {
		return "", err
	}
	if bn == "empty" {
		return b.buildEmpty(r, closure, digest)
	}
	tmp, src, err := b.prepareSource(ctx, r)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dest := filepath.Join(tmp, "dest")
	if err := ImportDebian(src, dest); err != nil {
		return "", fmt.Errorf("%s: %w", r.File, err)
	}
	alts, err := b.importMaintEffects(r, dest) // debian_effects.go
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.File, err)
	}
	epoch, err := source.NewestMtime(dest)
	if err != nil {
		return "", err
	}
	return b.packPackage(r, r.FullName(), dest, closure, digest, epoch, alts...)
}

// buildEmpty packs the meta-package r: an image without files (its root
// directory only) whose meta lists r's runtime closure, so that
// installing it installs them. Nothing is downloaded or run; the input
// digest covers the recipe and the closure's full names, so a changed
// recipe or a new version of a runtime dep rebuilds it. The runtime deps
// are not built here (distri-build batch orders them first).
func (b *Builder) buildEmpty(r *Recipe, closure []string, digest string) (string, error) {
	for _, f := range []struct {
		what string
		n    int
	}{{"dep", len(r.GetDep())}, {"cherry_pick", len(r.GetCherryPick())},
		{"extra_file", len(r.GetExtraFile())}, {"split_package", len(r.GetSplitPackage())}} {
		if f.n > 0 {
			return "", fmt.Errorf("%s: source %s without builder or build steps is a meta-package: %s has no use (nothing is built)", r.File, EmptySource, f.what)
		}
	}
	dir, err := os.MkdirTemp(b.opts.TempDir, "distri-build-"+r.Name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the image's root, /ro/<full>
		return "", err
	}
	b.logf("%s: meta-package of %d runtime deps", r.Name, len(closure))
	return b.packPackage(r, r.FullName(), dir, closure, digest, time.Unix(1, 0))
}

// packPackage packs dir as the package full, built from r, into the
// repository. epoch is the newest time stamp of the build's inputs: the
// image's time, and that of directories and symlinks the build made, so
// that building the same recipe twice gives the same bytes.
func (b *Builder) packPackage(r *Recipe, full, dir string, runtimeDeps []string, digest string, epoch time.Time, alts ...*pb.Alternative) (string, error) {
	img, err := pack.Pack(pack.Options{
		Name: full,
		Dir:  dir,
		Meta: &pb.Meta{
			RuntimeDep:  runtimeDeps,
			SourcePkg:   new(r.Name),
			Version:     new(r.GetVersion()),
			InputDigest: new(digest),
			Alternative: alts,
		},
		OutDir: filepath.Join(b.opts.RepoDir, "pkg"),
		Image:  squashfs.WriterOptions{SourceDateEpoch: epoch},
	})
	if err != nil {
		return "", fmt.Errorf("%s: pack: %w", r.File, err)
	}
	return img, nil
}

// prepareSource fetches r's source (trying its mirrors in order), checks
// its sha256 and extracts it afresh, patched and with its extra files,
// into src inside tmp, a new temporary directory the caller removes.
func (b *Builder) prepareSource(ctx context.Context, r *Recipe) (tmp, src string, err error) {
	locs := append([]string{r.GetSource()}, r.GetMirror()...)
	archive, err := b.opts.Fetcher.Fetch(ctx, r.File, r.Dir, r.GetHash(), locs)
	if err != nil {
		return "", "", err
	}
	tmp, err = os.MkdirTemp(b.opts.TempDir, "distri-build-"+r.Name+"-")
	if err != nil {
		return "", "", err
	}
	src = filepath.Join(tmp, "src")
	b.logf("%s: extracting %s", r.Name, r.GetSource())
	if err := source.Prepare(archive, r.GetSource(), src, r.Dir, r.GetCherryPick(), r.GetExtraFile()); err != nil {
		os.RemoveAll(tmp)
		return "", "", fmt.Errorf("%s: %w", r.File, err)
	}
	return tmp, src, nil
}
