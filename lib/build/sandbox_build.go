package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/loopdev"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/sandbox"
)

// CBuilderDeps are the packages every cbuilder recipe builds with, in
// addition to its own dep entries: the bootstrap toolchain (Debian
// imports, see pkgs/). Their runtime closures come along.
var CBuilderDeps = []string{
	"bash", "binutils", "bzip2", "coreutils", "diffutils", "findutils",
	"gawk", "gcc-12", "grep", "gzip", "libc6-dev", "m4", "make", "patch",
	"pkgconf", "sed", "tar", "xz-utils",
}

// exchangeDirs maps an exchange directory under /ro to the directory of a
// package it is assembled from.
var exchangeDirs = []struct{ ro, pkg string }{
	{"bin", "bin"},
	{"lib", "out/lib"},
	{"lib64", "out/lib64"},
	{"include", "out/include"},
	{"share", "out/share"},
	{"libexec", "out/libexec"},
}

// binAliases are programs no package of the toolchain provides under
// that name (Debian makes them with dash or alternatives), mapped to the
// program that serves: the /ro/bin farm adds them, and #! lines naming
// them resolve to the package of the program.
var binAliases = map[string]string{"sh": "bash", "cc": "gcc-12", "gcc": "gcc-12", "awk": "gawk"}

// sandboxLinks make the sandbox root look like an installed distri
// system. Debian's toolchain looks for /usr/lib/gcc/x86_64-linux-gnu/12,
// /usr/include/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu/crt1.o;
// with /usr → / and /lib → /ro/lib those resolve through the exchange
// farms, which merge each package's out/lib (including its
// x86_64-linux-gnu subdirectory). The loader named in PT_INTERP,
// /lib64/ld-linux-x86-64.so.2, resolves through /ro/lib64 to libc6's
// out/lib64 symlink into its out/lib/x86_64-linux-gnu.
var sandboxLinks = map[string]string{
	"/bin":     "/ro/bin",
	"/sbin":    "/ro/bin",
	"/usr":     "/",
	"/lib":     "/ro/lib",
	"/lib64":   "/ro/lib64",
	"/include": "/ro/include",
	"/share":   "/ro/share",
	"/libexec": "/ro/libexec",
}

// depSet returns the recipes of the build dependencies of r (its dep
// entries plus the builder's implicit deps) and their runtime closures,
// sorted by name.
func depSet(r *Recipe) ([]*Recipe, error) {
	names := append(slices.Clone(r.GetDep()), BuilderDeps(r.Build)...)
	seen := map[string]*Recipe{}
	for _, n := range names {
		dr, err := lookup(r, n)
		if err != nil {
			return nil, err
		}
		if seen[dr.Name] != nil {
			continue
		}
		seen[dr.Name] = dr
		// The runtime closure, as recipes.
		queue := []*Recipe{dr}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, d := range cur.GetRuntimeDep() {
				if seen[depName(d)] != nil {
					continue
				}
				rr, err := lookup(cur, d)
				if err != nil {
					return nil, err
				}
				seen[rr.Name] = rr
				queue = append(queue, rr)
			}
		}
	}
	var out []*Recipe
	for _, dr := range seen {
		out = append(out, dr)
	}
	sortRecipes(out)
	return out, nil
}

// sortRecipes sorts by package name, the order in which the exchange
// farms are assembled (the first package providing a path wins).
func sortRecipes(rs []*Recipe) {
	slices.SortFunc(rs, func(a, b *Recipe) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.FullName(), b.FullName()) // two versions: deterministic
	})
}

// imagePath returns where the image of r lives in the repository.
func (b *Builder) imagePath(r *Recipe) string {
	return filepath.Join(b.opts.RepoDir, "pkg", r.FullName()+".squashfs")
}

// ensureBuilt builds r unless its image and meta are in the repository
// already, with the input digest r has now.
func (b *Builder) ensureBuilt(ctx context.Context, r *Recipe) (string, error) {
	img := b.imagePath(r)
	if r.repoMeta != nil {
		return img, nil // a package from the repository, no recipe
	}
	if _, err := os.Stat(img); err == nil {
		meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
		if err == nil {
			// A split package's digest is that of its recipe.
			src, err := ReadRecipe(r.Dir)
			if err != nil {
				return "", err
			}
			src.Repo = r.Repo
			digest, err := inputDigest(src, nil)
			if err != nil {
				return "", err
			}
			if meta.GetInputDigest() == digest {
				return img, nil
			}
		}
	}
	b.logf("%s: building dependency %s", r.Name, r.Dir)
	if _, err := b.Build(ctx, r.Dir); err != nil {
		return "", err
	}
	return img, nil // for a split package, not the image Build returns
}

// roTree is a /ro directory for the sandbox: each dependency's image
// loop-mounted read-only by the kernel at <dir>/<full>/, and the exchange
// directories (<dir>/bin, <dir>/lib, …) as symlink farms into them.
type roTree struct {
	dir     string
	mounts  []string
	fulls   []string
	recipes []*Recipe
	// mountTook and farmTook are how long mounting the images and making
	// the exchange farms took.
	mountTook, farmTook time.Duration
}

// close unmounts everything mounted, in reverse order.
func (t *roTree) close() error {
	var errs []error
	for i := len(t.mounts) - 1; i >= 0; i-- {
		err := unix.Unmount(t.mounts[i], 0)
		if errors.Is(err, unix.EBUSY) {
			// Something still has a file open in it (a process of a
			// failed build that has not died yet): detach the mount
			// now, the kernel drops it and its loop device when the
			// last file closes, and nothing is left mounted under the
			// build directory that is about to be removed.
			err = unix.Unmount(t.mounts[i], unix.MNT_DETACH)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %w", t.mounts[i], err))
		}
	}
	t.mounts = nil
	return errors.Join(errs...)
}

// assembleRO mounts images (full name → image path) under dir and builds
// the exchange farms. On error, what was mounted is unmounted.
func assembleRO(ctx context.Context, dir string, deps []*Recipe, images map[string]string) (_ *roTree, err error) {
	t := &roTree{dir: dir, recipes: deps}
	start := time.Now()
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	// The kernel mounts them (lib/loopdev: a few system calls each, no
	// mount(8)), several at once.
	mounted := make([]bool, len(deps))
	errs := make([]error, len(deps))
	var g errgroup.Group // every error is kept (errs), not only the first
	g.SetLimit(8)
	for i, r := range deps {
		full := r.FullName()
		mp := filepath.Join(dir, full)
		t.fulls = append(t.fulls, full)
		g.Go(func() error {
			if err := os.MkdirAll(mp, 0o755); err != nil {
				errs[i] = err
				return nil
			}
			if err := loopdev.Attach(images[full], mp, "distri-build:"+full); err != nil {
				errs[i] = fmt.Errorf("mount %s: %w", images[full], err)
				return nil
			}
			mounted[i] = true
			return nil
		})
	}
	g.Wait()
	t.mountTook = time.Since(start)
	for i, r := range deps {
		if mounted[i] {
			t.mounts = append(t.mounts, filepath.Join(dir, r.FullName()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Conflicts: deps hold one package per name, sorted by name, so the
	// first package providing a path (the lexicographically smallest
	// package name) wins.
	start = time.Now()
	// The farms are independent of each other: made at the same time.
	farmErrs := make([]error, len(exchangeDirs))
	var wg sync.WaitGroup
	for i, x := range exchangeDirs {
		wg.Go(func() {
			var srcs []string
			for _, full := range t.fulls {
				src := filepath.Join(dir, full, x.pkg)
				if fi, err := os.Lstat(src); err == nil && fi.IsDir() {
					srcs = append(srcs, src)
				}
			}
			farmErrs[i] = mergeDirs(filepath.Join(dir, x.ro), srcs, true)
		})
	}
	wg.Wait()
	if err := errors.Join(farmErrs...); err != nil {
		return nil, err
	}
	// No package of the toolchain provides /bin/sh (Debian's comes from
	// dash or an alternative); bash serves, and cc/gcc name gcc-12.
	for name, target := range binAliases {
		at := filepath.Join(dir, "bin", name)
		if _, err := os.Lstat(at); err == nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, "bin", target)); err != nil {
			continue
		}
		if err := os.Symlink(target, at); err != nil {
			return nil, err
		}
	}
	t.farmTook = time.Since(start)
	return t, nil
}

// buildSandboxed builds a recipe with a builder or build_steps in the
// sandbox (see builders.go for the steps).
func (b *Builder) buildSandboxed(ctx context.Context, r *Recipe) (_ string, err error) {
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s: building in the sandbox needs root", r.File)
	}
	full := r.FullName()
	// The log first: every failure from here on is in it, and the error
	// names the recipe, the step and the log.
	logDir := filepath.Join(b.opts.RepoDir, "log")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", err
	}
	logPath := filepath.Join(logDir, full+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	fail := func(step string, err error) error {
		fmt.Fprintf(logFile, "### %s failed: %v\n", step, err)
		return &StepError{Recipe: r.File, Step: step, Log: logPath, Err: err}
	}
	// The source before the dependencies, so that a wrong sha256 or a
	// missing file fails before anything is built.
	start := time.Now()
	tmp, src, err := b.prepareSource(ctx, r)
	if err != nil {
		return "", fail("source", err)
	}
	defer os.RemoveAll(tmp)
	srcTook := time.Since(start)
	deps, err := depSet(r)
	if err != nil {
		return "", fail("dependencies", err)
	}
	digest, err := inputDigest(r, nil)
	if err != nil {
		return "", fail("dependencies", err)
	}
	images := map[string]string{}
	for _, dr := range deps {
		img, err := b.ensureBuilt(ctx, dr)
		if err != nil {
			return "", fail("dependency "+dr.Name, err)
		}
		images[dr.FullName()] = img
	}
	if deps, err = b.metaClosure(ctx, r, deps, images); err != nil {
		return "", fail("dependencies", err)
	}
	start = time.Now()
	ro, err := assembleRO(ctx, filepath.Join(tmp, "ro"), deps, images)
	if err != nil {
		return "", fail("/ro", err)
	}
	roTook := time.Since(start)
	defer func() {
		if cerr := ro.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	buildDir := filepath.Join(tmp, "build")
	destDir := filepath.Join(tmp, "dest")
	for _, d := range []string{buildDir, destDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}

	paths := stepPaths{
		full:      full,
		prefix:    "/ro/" + full + "/out",
		sourceDir: "/usr/src/" + full,
		buildDir:  "/build",
		destDir:   "/dest/tmp",
		jobs:      cmp.Or(b.opts.Jobs, runtime.NumCPU()),
	}
	prefix := paths.prefix
	steps, err := buildSteps(r, paths, deps, b.opts.Check)
	if err != nil {
		return "", fail("steps", err)
	}
	env := append([]string{
		"PATH=/ro/bin:/bin",
		"HOME=/build",
		"TMPDIR=/tmp",
		"LANG=C.UTF-8",
		"SOURCE_DATE_EPOCH=1",
		"CC=gcc-12",
		// gcc finds itself at /ro/gcc-12-…/out/bin and would look for cc1
		// and its libraries relative to that package; the farm under
		// /usr/lib/gcc merges cpp-12, gcc-12 and libgcc-12-dev.
		"GCC_EXEC_PREFIX=/usr/lib/gcc/",
	}, paths.env(b.opts.Check)...)
	// The lib/ farm as rpath and the exact glibc's loader (farm.go).
	pin, err := pinFlags(full, ro)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.File, err)
	}
	if pin != "" {
		env = append(env, "LDFLAGS="+pin)
	}
	fmt.Fprintf(logFile, "### set-up: source %v, /ro %v (%d packages: mount %v, farms %v)\n",
		srcTook.Round(time.Millisecond), roTook.Round(time.Millisecond), len(deps),
		ro.mountTook.Round(time.Millisecond), ro.farmTook.Round(time.Millisecond))
	base := sandbox.Options{
		RO:       ro.dir,
		Source:   src,
		SourceAt: paths.sourceDir,
		BuildDir: buildDir,
		Dest:     destDir,
		Links:    sandboxLinks,
		Env:      env,
		Dir:      paths.buildDir,
		Hostname: "distri-build",
		Limits:   b.opts.Limits,
	}
	if _, err := b.runSteps(ctx, r, steps, base, logFile, logPath); err != nil {
		return "", err
	}

	// Lay out the package: <dest>/tmp/ro/<full>/out → pkg/out, etc kept apart.
	pkgDir := filepath.Join(tmp, "pkg")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		return "", err
	}
	installed := filepath.Join(destDir, "tmp", "ro", full, "out")
	if _, err := os.Stat(installed); err != nil {
		return "", fmt.Errorf("%s: make install left nothing under %s (log: %s)", r.File, prefix, logPath)
	}
	if err := os.Rename(installed, filepath.Join(pkgDir, "out")); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(destDir, "tmp", "etc")); err == nil {
		if err := os.Rename(filepath.Join(destDir, "tmp", "etc"), filepath.Join(pkgDir, "etc")); err != nil {
			return "", err
		}
	}
	epoch, err := source.NewestMtime(src)
	if err != nil {
		return "", err
	}
	return b.packageOutputs(ctx, r, pkgDir, filepath.Join(tmp, "split"), ro, base, logFile, digest, epoch)
}

// packageOutputs turns the installed tree pkgDir into the package and its
// split packages (split.go): for each, bin/ wrappers (wrap.go), the
// runtime deps its files need (ELF DT_NEEDED and PT_INTERP, #!
// interpreters, pkg-config Requires) plus the declared ones, with their
// closures; the main package gets the lib/ farm (farm.go) its and its
// splits' ELF files use as rpath. The splits are packed first, the main
// package last, and its image path is returned.
func (b *Builder) packageOutputs(ctx context.Context, r *Recipe, pkgDir, splitRoot string, ro *roTree, base sandbox.Options, log io.Writer, digest string, epoch time.Time) (string, error) {
	start := time.Now()
	outputs, err := splitPackages(r, pkgDir, splitRoot)
	if err != nil {
		return "", err
	}
	main := outputs[0]
	res := newResolver(outputs, ro, func(dr *Recipe) string {
		return strings.TrimSuffix(b.imagePath(dr), ".squashfs") + ".meta.textproto"
	}, b.opts.RepoDir)
	farm, per, err := res.libFarm(outputs)
	if err != nil {
		return "", fmt.Errorf("%s: runtime deps: %w", r.File, err)
	}
	if err := writeFarm(main.dir, farm); err != nil {
		return "", fmt.Errorf("%s: lib/ farm: %w", r.File, err)
	}
	for _, o := range outputs {
		n := per[o.full]
		if err := res.scriptNeeds(o, n); err != nil {
			return "", fmt.Errorf("%s: runtime deps: %w", r.File, err)
		}
		if err := res.pkgConfigNeeds(o, n); err != nil {
			return "", fmt.Errorf("%s: runtime deps: %w", r.File, err)
		}
		for full := range o.links {
			n.add(full)
		}
		if n.dynamic && o != main {
			n.add(main.full) // its rpath is the main package's lib/ farm
		}
	}
	closures, err := outputClosures(r, outputs, per, res)
	if err != nil {
		return "", fmt.Errorf("%s: runtime deps: %w", r.File, err)
	}
	var stub []byte
	for _, o := range outputs {
		if !hasPrograms(o.dir) {
			continue
		}
		if _, err := os.Stat(filepath.Join(ro.dir, "bin", "gcc")); stub == nil && err == nil {
			if stub, err = compileWrapperStub(ctx, base, log); err != nil {
				return "", fmt.Errorf("%s: %w", r.File, err)
			}
		}
		env, err := wrapperEnv(o, closures[o.full], res)
		if err != nil {
			return "", err
		}
		if err := writeWrappers(o.dir, o.full, r, stub, env); err != nil {
			return "", fmt.Errorf("%s: bin/ wrappers: %w", r.File, err)
		}
	}
	for _, o := range outputs {
		if err := ownedByRoot(o.dir); err != nil {
			return "", fmt.Errorf("%s: %w", r.File, err)
		}
	}
	fmt.Fprintf(log, "### packaging: %d packages, %d libraries in lib/, took %v before packing\n",
		len(outputs), len(farm), time.Since(start).Round(time.Millisecond))
	for _, o := range append(outputs[1:], main) {
		img, err := b.packPackage(r, o.full, o.dir, closures[o.full], digest, epoch)
		if err != nil {
			return "", err
		}
		if o != main {
			b.logf("%s: split package %s", r.Name, img)
		}
	}
	return b.imagePath(r), nil
}

// ownedByRoot makes root own everything in the tree, as in the
// original's images: what a build's install step chowned, or who ran the
// build, does not reach the package.
func ownedByRoot(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 0, 0)
	})
}

// outputClosures returns each output's runtime closure: what its files
// need and what it declares, with their closures, without itself.
func outputClosures(r *Recipe, outputs []*output, per map[string]*needs, res *resolver) (map[string][]string, error) {
	direct := map[string]map[string]bool{}
	for _, o := range outputs {
		set := map[string]bool{}
		for full := range per[o.full].providers {
			set[full] = true
			p := res.byFull[full]
			if p == nil {
				continue
			}
			c, err := res.closure(p)
			if err != nil {
				return nil, err
			}
			for _, d := range c {
				set[d] = true
			}
		}
		for _, d := range o.runtimeDep {
			if own := ownOutput(outputs, depName(d)); own != nil {
				set[own.full] = true
				continue
			}
			dr, err := lookup(r, d)
			if err != nil {
				return nil, err
			}
			c, err := RuntimeClosure(dr)
			if err != nil {
				return nil, err
			}
			set[dr.FullName()] = true
			for _, x := range c {
				set[x] = true
			}
		}
		direct[o.full] = set
	}
	// Outputs depending on each other take over each other's closure,
	// until nothing changes.
	for changed := true; changed; {
		changed = false
		for _, o := range outputs {
			for _, other := range outputs {
				if other == o || !direct[o.full][other.full] {
					continue
				}
				for d := range direct[other.full] {
					if !direct[o.full][d] {
						direct[o.full][d] = true
						changed = true
					}
				}
			}
		}
	}
	out := map[string][]string{}
	for _, o := range outputs {
		delete(direct[o.full], o.full)
		var l []string
		for d := range direct[o.full] {
			l = append(l, d)
		}
		slices.Sort(l)
		out[o.full] = l
	}
	return out, nil
}

func ownOutput(outputs []*output, name string) *output {
	for _, o := range outputs {
		if o.name == name {
			return o
		}
	}
	return nil
}

// hasPrograms reports whether the tree has entries in out/bin or out/sbin.
func hasPrograms(dir string) bool {
	for _, d := range []string{"out/bin", "out/sbin"} {
		if es, err := os.ReadDir(filepath.Join(dir, d)); err == nil && len(es) > 0 {
			return true
		}
	}
	return false
}

// siblingTarget follows the symlink chain at p within its package and
// returns the final, missing target if it is a plain file name (a
// sibling provided by another package).
func siblingTarget(p string) (string, bool) {
	for range 16 {
		t, err := os.Readlink(p)
		if err != nil {
			return "", false
		}
		next := t
		if !filepath.IsAbs(t) {
			next = filepath.Join(filepath.Dir(p), t)
		}
		if _, err := os.Lstat(next); err != nil {
			if !strings.Contains(t, "/") {
				return t, true
			}
			return "", false
		}
		p = next
	}
	return "", false
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
