package build

import (
	"context"
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

	"distri.dev/distri/lib/elfdeps"
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
	names := slices.Clone(r.GetDep())
	if r.GetCbuilder() != nil {
		names = append(names, CBuilderDeps...)
	}
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
	slices.SortFunc(rs, func(a, b *Recipe) int { return strings.Compare(a.Name, b.Name) })
}

// imagePath returns where the image of r lives in the repository.
func (b *Builder) imagePath(r *Recipe) string {
	return filepath.Join(b.opts.RepoDir, "pkg", r.FullName()+".squashfs")
}

// ensureBuilt builds r unless its image and meta are in the repository
// already, with the input digest r has now.
func (b *Builder) ensureBuilt(ctx context.Context, r *Recipe) (string, error) {
	img := b.imagePath(r)
	if _, err := os.Stat(img); err == nil {
		meta, err := pb.ReadMetaFile(strings.TrimSuffix(img, ".squashfs") + ".meta.textproto")
		if err == nil {
			digest, err := inputDigest(r, nil)
			if err != nil {
				return "", err
			}
			if meta.GetInputDigest() == digest {
				return img, nil
			}
		}
	}
	b.logf("%s: building dependency %s", r.Name, r.Dir)
	return b.Build(ctx, r.Dir)
}

// roTree is a /ro directory for the sandbox: each dependency's image
// loop-mounted read-only by the kernel at <dir>/<full>/, and the exchange
// directories (<dir>/bin, <dir>/lib, …) as symlink farms into them.
type roTree struct {
	dir     string
	mounts  []string
	fulls   []string
	recipes []*Recipe
}

// close unmounts everything mounted, in reverse order.
func (t *roTree) close() error {
	var errs []error
	for i := len(t.mounts) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", t.mounts[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %v: %s", t.mounts[i], err, strings.TrimSpace(string(out))))
		}
	}
	t.mounts = nil
	return errors.Join(errs...)
}

// assembleRO mounts images (full name → image path) under dir and builds
// the exchange farms. On error, what was mounted is unmounted.
func assembleRO(ctx context.Context, dir string, deps []*Recipe, images map[string]string) (_ *roTree, err error) {
	t := &roTree{dir: dir, recipes: deps}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	for _, r := range deps {
		full := r.FullName()
		mp := filepath.Join(dir, full)
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return nil, err
		}
		out, err := exec.CommandContext(ctx, "mount", "-t", "squashfs", "-o", "loop,ro", images[full], mp).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("mount %s: %v: %s", images[full], err, strings.TrimSpace(string(out)))
		}
		t.mounts = append(t.mounts, mp)
		t.fulls = append(t.fulls, full)
	}
	// Conflicts: deps hold one package per name, sorted by name, so the
	// first package providing a path (the lexicographically smallest
	// package name) wins.
	for _, x := range exchangeDirs {
		for _, full := range t.fulls {
			src := filepath.Join(dir, full, x.pkg)
			if fi, err := os.Lstat(src); err != nil || !fi.IsDir() {
				continue
			}
			err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(src, p)
				at := filepath.Join(dir, x.ro, rel)
				if d.IsDir() {
					if fi, err := os.Lstat(at); err == nil && !fi.IsDir() {
						return fs.SkipDir // a symlink of another package wins
					}
					return os.MkdirAll(at, 0o755)
				}
				if _, err := os.Lstat(at); err == nil {
					return nil
				}
				if _, err := os.Stat(p); err != nil {
					// A dangling link into another package, e.g.
					// binutils' bin/as → x86_64-linux-gnu-as of
					// binutils-x86-64-linux-gnu: link to the sibling
					// in the farm instead.
					if sib, ok := siblingTarget(p); ok {
						return os.Symlink(sib, at)
					}
				}
				target, err := filepath.Rel(filepath.Dir(at), p)
				if err != nil {
					return err
				}
				return os.Symlink(target, at)
			})
			if err != nil {
				return nil, err
			}
		}
	}
	// No package of the toolchain provides /bin/sh (Debian's comes from
	// dash or an alternative); bash serves, and cc/gcc name gcc-12.
	for name, target := range map[string]string{"sh": "bash", "cc": "gcc-12", "gcc": "gcc-12", "awk": "gawk"} {
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
	return t, nil
}

// buildSandboxed builds a cbuilder recipe in the sandbox.
func (b *Builder) buildSandboxed(ctx context.Context, r *Recipe, digest string) (_ string, err error) {
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s: building in the sandbox needs root", r.File)
	}
	full := r.FullName()
	deps, err := depSet(r)
	if err != nil {
		return "", err
	}
	images := map[string]string{}
	for _, dr := range deps {
		img, err := b.ensureBuilt(ctx, dr)
		if err != nil {
			return "", fmt.Errorf("%s: dependency %s: %w", r.File, dr.Name, err)
		}
		images[dr.FullName()] = img
	}
	tmp, src, err := b.prepareSource(ctx, r)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ro, err := assembleRO(ctx, filepath.Join(tmp, "ro"), deps, images)
	if err != nil {
		return "", fmt.Errorf("%s: assembling /ro: %w", r.File, err)
	}
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

	prefix := "/ro/" + full + "/out"
	srcAt := "/usr/src/" + full
	env := []string{
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
		"DISTRI_SOURCEDIR=" + srcAt,
		"DISTRI_BUILDDIR=/build",
		"DISTRI_DESTDIR=/dest",
		"DISTRI_PREFIX=" + prefix,
		"DISTRI_FULLNAME=" + full,
		"DISTRI_JOBS=" + strconv.Itoa(runtime.NumCPU()),
	}
	cb := r.GetCbuilder()
	if cb.GetAutoreconf() {
		return "", fmt.Errorf("%s: cbuilder: autoreconf is not supported yet", r.File)
	}
	configure := "./configure --prefix=${DISTRI_PREFIX} --sysconfdir=/etc --disable-dependency-tracking"
	for _, f := range cb.GetExtraConfigureFlag() {
		configure += " " + shellQuote(f)
	}
	if ld := cb.GetExtraLdflag(); len(ld) > 0 {
		configure += " LDFLAGS=" + shellQuote(strings.Join(ld, " "))
	}
	makeFlags := ""
	for _, f := range cb.GetExtraMakeFlag() {
		makeFlags += " " + shellQuote(f)
	}
	steps := []struct{ name, script string }{
		// Many autotools packages (hello 2.10 among them) do not build
		// out of tree: their Makefiles write into subdirectories that only
		// exist in the source tree. The source stays read-only; the build
		// works on a copy in the build directory.
		{"copy source", `cp -a ${DISTRI_SOURCEDIR}/. /build/`},
		{"configure", configure},
		{"make", "make -j${DISTRI_JOBS}" + makeFlags},
	}
	if b.opts.Check {
		steps = append(steps, struct{ name, script string }{"make check", "make -j${DISTRI_JOBS} check" + makeFlags})
	}
	steps = append(steps, struct{ name, script string }{"make install", "make install DESTDIR=/dest/tmp" + makeFlags})
	for _, s := range steps {
		b.logf("%s: %s", r.Name, s.name)
		fmt.Fprintf(logFile, "### %s: %s\n", s.name, s.script)
		err := sandbox.Run(ctx, sandbox.Options{
			RO:       ro.dir,
			Source:   src,
			SourceAt: srcAt,
			BuildDir: buildDir,
			Dest:     destDir,
			Links:    sandboxLinks,
			Env:      env,
			Dir:      "/build",
			Argv:     []string{"/bin/sh", "-c", s.script},
			Stdout:   logFile,
			Stderr:   logFile,
			Hostname: "distri-build",
		})
		if err != nil {
			if cl, rerr := os.ReadFile(filepath.Join(buildDir, "config.log")); rerr == nil {
				fmt.Fprintf(logFile, "### config.log\n%s", cl)
			}
			return "", fmt.Errorf("%s: step %q failed: %w (log: %s)", r.File, s.name, err, logPath)
		}
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
	if err := binEntries(pkgDir); err != nil {
		return "", err
	}
	rdeps, err := elfRuntimeDeps(pkgDir, ro, r)
	if err != nil {
		return "", fmt.Errorf("%s: runtime deps: %w", r.File, err)
	}
	closure, err := RuntimeClosure(r)
	if err != nil {
		return "", err
	}
	rdeps = append(rdeps, closure...)
	slices.Sort(rdeps)
	rdeps = slices.Compact(rdeps)

	epoch, err := newestFile(src)
	if err != nil {
		return "", err
	}
	return b.packPackage(r, full, pkgDir, rdeps, digest, epoch)
}

// binEntries makes bin/X → ../out/bin/X (and ../out/sbin/X) for every
// program in out/bin and out/sbin.
func binEntries(pkgDir string) error {
	for _, dir := range []string{"bin", "sbin"} {
		entries, err := os.ReadDir(filepath.Join(pkgDir, "out", dir))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(pkgDir, "bin"), 0o755); err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			l := filepath.Join(pkgDir, "bin", e.Name())
			if _, err := os.Lstat(l); err == nil {
				continue
			}
			if err := os.Symlink("../out/"+dir+"/"+e.Name(), l); err != nil {
				return err
			}
		}
	}
	return nil
}

// elfRuntimeDeps reads DT_NEEDED of every ELF file under pkgDir/out and
// returns the full names of the dependencies (from ro) that provide those
// libraries, plus their runtime closures.
func elfRuntimeDeps(pkgDir string, ro *roTree, r *Recipe) ([]string, error) {
	needed := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(pkgDir, "out"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		magic := make([]byte, 4)
		_, rerr := f.ReadAt(magic, 0)
		f.Close()
		if rerr != nil || string(magic) != "\x7fELF" {
			return nil
		}
		deps, err := elfdeps.Read(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, n := range deps.Needed {
			needed[n] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for lib := range needed {
		provider := ""
		for i, full := range ro.fulls {
			for _, d := range []string{"out/lib", "out/lib/x86_64-linux-gnu", "out/lib64"} {
				if _, err := os.Lstat(filepath.Join(ro.dir, full, d, lib)); err == nil {
					provider = ro.recipes[i].Name
					break
				}
			}
			if provider != "" {
				break
			}
		}
		if provider == "" {
			return nil, fmt.Errorf("no dependency provides %s", lib)
		}
		pr, err := lookup(r, provider)
		if err != nil {
			return nil, err
		}
		closure, err := RuntimeClosure(pr)
		if err != nil {
			return nil, err
		}
		out = append(out, pr.FullName())
		out = append(out, closure...)
	}
	return out, nil
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
