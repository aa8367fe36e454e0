package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/elfdeps"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

// The lib/ farm and the pinned loader (as in the original distri): every
// program and library a build links gets
//
//   - DT_RPATH /ro/<full>/lib (with --disable-new-dtags: an executable's
//     DT_RPATH applies to the libraries its libraries load too, unless
//     they have a DT_RUNPATH of their own, and LD_LIBRARY_PATH does not
//     override it), and
//   - PT_INTERP /ro/<libc6-full>/out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2,
//     the loader of the exact glibc (Debian's libc6) it was built against,
//
// through LDFLAGS in the build environment. After the build, the
// package's lib/ directory receives one absolute symlink per shared
// library its ELF files need, transitively, named as in DT_NEEDED
// (libc.so.6 → /ro/libc6-amd64-2.36-…/out/lib/x86_64-linux-gnu/libc.so.6),
// resolved to the exact dependency (and version) the build used. So a
// program keeps loading the libraries it was built against when other
// versions of them are installed and win /ro/lib.

// libDirs are where packages keep shared libraries, relative to the
// package root; the order is the loader's for Debian's multiarch layout.
var libDirs = []string{"out/lib", "out/lib/x86_64-linux-gnu", "out/lib64"}

// loaderName is the x86-64 glibc loader's file name (and soname).
const loaderName = "ld-linux-x86-64.so.2"

// glibcPackage is the package providing glibc and its loader: the
// Debian-imported libc6.
const glibcPackage = "libc6"

// pinFlags returns the linker flags that pin the rpath (the lib/ farm
// of full) and the loader of the glibc among deps: "" without glibc among
// them, an error if it lacks the loader.
func pinFlags(full string, ro *roTree) (string, error) {
	for _, r := range ro.recipes {
		if r.Name != glibcPackage {
			continue
		}
		loader := "out/lib/x86_64-linux-gnu/" + loaderName
		if _, err := os.Stat(filepath.Join(ro.dir, r.FullName(), loader)); err != nil {
			return "", fmt.Errorf("%s does not provide the loader: %w", r.FullName(), err)
		}
		return "-Wl,-rpath=/ro/" + full + "/lib -Wl,--disable-new-dtags -Wl,--dynamic-linker=/ro/" + r.FullName() + "/" + loader, nil
	}
	return "", nil // no toolchain (build_steps without a builder): nothing to pin
}

// provider is a package that can satisfy a runtime need: an output of
// the build or one of its dependencies.
type provider struct {
	full string // e.g. libc6-amd64-2.36-9+deb12u14-1
	dir  string // its tree on the host: the image root
	own  bool   // an output of this build (the package or a split)
	// metaFile is a dependency's meta, holding its runtime closure.
	metaFile string
}

// resolver finds which package provides a library, a program or a
// pkg-config module: the build's outputs first, then the dependencies in
// the order of the /ro farms (by name; the first provider wins there too).
type resolver struct {
	providers []*provider
	byFull    map[string]*provider
	closures  map[string][]string
	// repoDir is the repository: a #!/ro/<full>/… interpreter that is
	// not a build dependency may be a package there.
	repoDir string
}

func newResolver(outputs []*output, ro *roTree, metaFile func(*Recipe) string, repoDir string) *resolver {
	res := &resolver{byFull: map[string]*provider{}, closures: map[string][]string{}, repoDir: repoDir}
	for _, o := range outputs {
		res.add(&provider{full: o.full, dir: o.dir, own: true})
	}
	for i, full := range ro.fulls {
		res.add(&provider{full: full, dir: filepath.Join(ro.dir, full), metaFile: metaFile(ro.recipes[i])})
	}
	return res
}

func (res *resolver) add(p *provider) {
	res.providers = append(res.providers, p)
	res.byFull[p.full] = p
}

// closure returns the runtime closure of a dependency from its meta.
func (res *resolver) closure(p *provider) ([]string, error) {
	if p.own {
		return nil, nil
	}
	if c, ok := res.closures[p.full]; ok {
		return c, nil
	}
	m, err := pb.ReadMetaFile(p.metaFile)
	if err != nil {
		return nil, err
	}
	res.closures[p.full] = m.GetRuntimeDep()
	return m.GetRuntimeDep(), nil
}

// findFile returns the first provider with one of rels (paths relative
// to the package root) and which one matched.
func (res *resolver) findFile(rels ...string) (*provider, string) {
	for _, p := range res.providers {
		for _, rel := range rels {
			if _, err := os.Lstat(filepath.Join(p.dir, rel)); err == nil {
				return p, rel
			}
		}
	}
	return nil, ""
}

// findLib returns the provider of the shared library name and its path
// in the package, symlinks resolved as far as they stay in the package.
func (res *resolver) findLib(name string) (*provider, string) {
	var rels []string
	for _, d := range libDirs {
		rels = append(rels, d+"/"+name)
	}
	p, rel := res.findFile(rels...)
	if p == nil {
		return nil, ""
	}
	return p, resolveIn(p.dir, rel)
}

// resolveIn follows the relative symlink chain at rel inside the tree at
// root for as long as it stays inside and the target exists.
func resolveIn(root, rel string) string {
	for range 32 {
		t, err := os.Readlink(filepath.Join(root, rel))
		if err != nil || filepath.IsAbs(t) {
			return rel
		}
		next := filepath.Join(filepath.Dir(rel), t)
		if !filepath.IsLocal(next) {
			return rel
		}
		if _, err := os.Lstat(filepath.Join(root, next)); err != nil {
			return rel
		}
		rel = next
	}
	return rel
}

// needs is what the files of one output need at run time.
type needs struct {
	providers map[string]bool // full names
	dynamic   bool            // it has dynamically linked ELF files (using the main package's lib/ farm)
}

func (n *needs) add(full string) { n.providers[full] = true }

// elfFiles calls fn for every regular ELF file under dir/out.
func elfFiles(dir string, fn func(path string) error) error {
	return walkRegular(filepath.Join(dir, "out"), func(p string, magic []byte) error {
		if string(magic) != "\x7fELF" {
			return nil
		}
		return fn(p)
	})
}

// walkRegular calls fn for every regular file under dir with its first
// four bytes. A missing dir is no error.
func walkRegular(dir string, fn func(path string, magic []byte) error) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		magic := make([]byte, 4)
		n, _ := f.ReadAt(magic, 0)
		f.Close()
		return fn(p, magic[:n])
	})
}

// libFarm resolves the shared libraries the ELF files of every output
// need, transitively, and returns the farm (DT_NEEDED name → absolute
// target under /ro) and, per output, the packages providing them and its
// loader. A file's own DT_RPATH/DT_RUNPATH directories under /ro (with
// $ORIGIN expanded), e.g. a package's private out/lib/<pkg>/, are
// searched before the libDirs of every package.
func (res *resolver) libFarm(outputs []*output) (map[string]string, map[string]*needs, error) {
	farm := map[string]string{}
	per := map[string]*needs{}
	type want struct {
		lib  string
		dirs []string // inside paths, e.g. /ro/systemd-amd64-…/out/lib/systemd
	}
	for _, o := range outputs {
		n := &needs{providers: map[string]bool{}}
		per[o.full] = n
		var queue []want
		err := elfFiles(o.dir, func(path string) error {
			d, err := elfdeps.Read(path)
			if err != nil {
				return err
			}
			if d.Interp != "" {
				p, err := res.interpProvider(d.Interp)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				n.add(p.full)
			}
			if len(d.Needed) > 0 {
				n.dynamic = true
			}
			rel, _ := filepath.Rel(o.dir, path)
			dirs := searchDirs(d, "/ro/"+o.full+"/"+rel)
			for _, lib := range d.Needed {
				queue = append(queue, want{lib, dirs})
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		seen := map[string]bool{}
		for len(queue) > 0 {
			w := queue[0]
			queue = queue[1:]
			if seen[w.lib] {
				continue
			}
			seen[w.lib] = true
			p, rel := res.findLibIn(w.lib, w.dirs)
			if p == nil {
				p, rel = res.findLib(w.lib)
			}
			if p == nil {
				return nil, nil, fmt.Errorf("%s: no dependency provides %s (looked in %s of every dependency)", o.full, w.lib, strings.Join(append(w.dirs, libDirs...), ", "))
			}
			n.add(p.full)
			target := "/ro/" + p.full + "/" + rel
			if prev, ok := farm[w.lib]; ok && prev != target {
				return nil, nil, fmt.Errorf("lib/ farm: %s resolves to both %s and %s", w.lib, prev, target)
			}
			farm[w.lib] = target
			d, err := elfdeps.Read(filepath.Join(p.dir, rel))
			if err != nil {
				// A linker script or a dangling link: nothing more to follow.
				continue
			}
			dirs := searchDirs(d, target)
			for _, lib := range d.Needed {
				queue = append(queue, want{lib, dirs})
			}
		}
	}
	return farm, per, nil
}

// searchDirs returns the DT_RPATH and DT_RUNPATH directories of the ELF
// file at inside (its path under /ro) that lie in a package under /ro,
// with $ORIGIN expanded, except the lib/ farms (/ro/<full>/lib).
func searchDirs(d *elfdeps.Deps, inside string) []string {
	var dirs []string
	for _, e := range append(slices.Clone(d.RPath), d.RunPath...) {
		e = strings.NewReplacer("${ORIGIN}", filepath.Dir(inside), "$ORIGIN", filepath.Dir(inside)).Replace(e)
		e = filepath.Clean(e)
		rest, ok := strings.CutPrefix(e, "/ro/")
		if !ok {
			continue
		}
		if _, sub, _ := strings.Cut(rest, "/"); sub == "" || sub == "lib" {
			continue
		}
		dirs = append(dirs, e)
	}
	return dirs
}

// findLibIn looks for the library name in dirs (paths under /ro) of the
// packages the resolver knows.
func (res *resolver) findLibIn(name string, dirs []string) (*provider, string) {
	for _, dir := range dirs {
		full, sub, _ := strings.Cut(strings.TrimPrefix(dir, "/ro/"), "/")
		p := res.byFull[full]
		if p == nil {
			continue
		}
		rel := sub + "/" + name
		if _, err := os.Lstat(filepath.Join(p.dir, rel)); err == nil {
			return p, resolveIn(p.dir, rel)
		}
	}
	return nil, ""
}

// interpProvider returns the package of a PT_INTERP path: /ro/<full>/…
// for a pinned loader, else the provider of the loader's file name (a
// program linked elsewhere, naming /lib64/ld-linux-x86-64.so.2).
func (res *resolver) interpProvider(interp string) (*provider, error) {
	if rest, ok := strings.CutPrefix(interp, "/ro/"); ok {
		full, _, _ := strings.Cut(rest, "/")
		if p := res.byFull[full]; p != nil {
			return p, nil
		}
		// Not mounted in the build, but a package of the repository:
		// a runtime dep by its full name, with its closure.
		if res.repoDir != "" {
			meta := filepath.Join(res.repoDir, "pkg", full+".meta.textproto")
			if _, err := os.Stat(meta); err == nil {
				p := &provider{full: full, metaFile: meta}
				res.byFull[full] = p // not in providers: it has no tree to search
				return p, nil
			}
		}
		return nil, fmt.Errorf("interpreter %s: %s is neither a dependency nor in the repository", interp, full)
	}
	p, _ := res.findLib(filepath.Base(interp))
	if p == nil {
		return nil, fmt.Errorf("no dependency provides the interpreter %s", interp)
	}
	return p, nil
}

// writeFarm writes the lib/ farm into the package tree dir.
func writeFarm(dir string, farm map[string]string) error {
	if len(farm) == 0 {
		return nil
	}
	if err := mkdir755(filepath.Join(dir, "lib")); err != nil {
		return err
	}
	names := make([]string, 0, len(farm))
	for n := range farm {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.Contains(n, "/") {
			return fmt.Errorf("lib/ farm: DT_NEEDED %q is a path", n)
		}
		if err := os.Symlink(farm[n], filepath.Join(dir, "lib", n)); err != nil {
			return err
		}
	}
	return nil
}

// scriptNeeds adds to n the packages providing the #! interpreters of
// the executable scripts in the output (its out/bin, out/sbin,
// out/libexec and out/lib): #!/ro/<full>/… names the package, #!/usr/bin/env X
// and #!/bin/X (or /usr/bin/X) the package providing the program X.
func (res *resolver) scriptNeeds(o *output, n *needs) error {
	for _, d := range []string{"bin", "sbin", "libexec", "lib"} {
		err := walkRegular(filepath.Join(o.dir, "out", d), func(path string, magic []byte) error {
			if len(magic) < 2 || magic[0] != '#' || magic[1] != '!' {
				return nil
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
				return err // not executable: a template, a sourced snippet
			}
			dep, err := elfdeps.Read(path)
			if err != nil {
				return err
			}
			p, err := res.scriptProvider(dep)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			n.add(p.full)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (res *resolver) scriptProvider(d *elfdeps.Deps) (*provider, error) {
	if strings.HasPrefix(d.Interp, "/ro/") {
		return res.interpProvider(d.Interp)
	}
	prog := filepath.Base(d.Interp)
	if prog == "env" {
		prog = ""
		for _, f := range strings.Fields(d.InterpArg) {
			if !strings.HasPrefix(f, "-") && !strings.Contains(f, "=") {
				prog = f
				break
			}
		}
		if prog == "" {
			return nil, fmt.Errorf("#!%s %s: no program named", d.Interp, d.InterpArg)
		}
	}
	names := []string{prog}
	if alias, ok := binAliases[prog]; ok {
		names = append(names, alias)
	}
	for _, name := range names {
		if p, _ := res.findFile("bin/"+name, "out/bin/"+name); p != nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("#!%s: no dependency provides the program %s", strings.TrimSpace(d.Interp+" "+d.InterpArg), prog)
}

// pkgConfigDirs are where packages keep pkg-config files.
var pkgConfigDirs = []string{"out/lib/pkgconfig", "out/share/pkgconfig", "out/lib/x86_64-linux-gnu/pkgconfig"}

// pkgConfigNeeds adds to n the packages providing the modules the
// output's pkg-config files require (Requires, Requires.private).
func (res *resolver) pkgConfigNeeds(o *output, n *needs) error {
	for _, d := range pkgConfigDirs {
		matches, err := filepath.Glob(filepath.Join(o.dir, d, "*.pc"))
		if err != nil {
			return err
		}
		for _, pc := range matches {
			f, err := os.Open(pc)
			if err != nil {
				return err
			}
			mods, err := elfdeps.PkgConfigRequires(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", pc, err)
			}
			for _, m := range mods {
				var rels []string
				for _, d := range pkgConfigDirs {
					rels = append(rels, d+"/"+m+".pc")
				}
				p, _ := res.findFile(rels...)
				if p == nil {
					return fmt.Errorf("%s: no dependency provides the pkg-config module %s", pc, m)
				}
				n.add(p.full)
			}
		}
	}
	return nil
}

// metaClosure adds to deps (with images, full name → image) what their
// metas name as runtime deps beyond their recipes' runtime_dep: what the
// packaging found their files to need (a library a source-built
// dependency links). Those are built first if missing; a package that
// has no recipe but is in the repository (a split package, a package
// built elsewhere) is taken from there. It returns deps sorted by name.
func (b *Builder) metaClosure(ctx context.Context, r *Recipe, deps []*Recipe, images map[string]string) ([]*Recipe, error) {
	have := map[string]bool{}
	for _, d := range deps {
		have[d.FullName()] = true
	}
	for i := 0; i < len(deps); i++ {
		from := deps[i].FullName()
		m, err := pb.ReadMetaFile(strings.TrimSuffix(images[from], ".squashfs") + ".meta.textproto")
		if err != nil {
			return nil, err
		}
		for _, full := range m.GetRuntimeDep() {
			if have[full] {
				continue
			}
			have[full] = true
			dr, img, err := b.repoOrRecipe(ctx, r, full)
			if err != nil {
				return nil, fmt.Errorf("%s, a runtime dep of %s: %w", full, from, err)
			}
			images[full] = img
			deps = append(deps, dr)
		}
	}
	sortRecipes(deps)
	return deps, nil
}

// repoOrRecipe returns the package full (a full name) from the
// repository if it is there, else built from its recipe.
func (b *Builder) repoOrRecipe(ctx context.Context, r *Recipe, full string) (*Recipe, string, error) {
	rr, err := repoRecipe(b.opts.RepoDir, full)
	if err != nil {
		return nil, "", err
	}
	if rr != nil {
		rr.Root, rr.Repo = r.Root, r.Repo
		return rr, b.imagePath(rr), nil
	}
	dr, err := lookup(r, full)
	if err != nil {
		return nil, "", err
	}
	if dr.FullName() != full {
		return nil, "", fmt.Errorf("the recipe %s is version %s", dr.File, dr.GetVersion())
	}
	img, err := b.ensureBuilt(ctx, dr)
	return dr, img, err
}

// repoRecipe returns the package dep names (a name: its newest revision;
// a full name: that package) from the repository repo, as a Recipe
// without a recipe file: its runtime deps are its meta's closure and its
// input digest the meta's. It returns nil if the repository does not
// have the package (image and meta).
func repoRecipe(repo, dep string) (*Recipe, error) {
	var n pkgname.Name
	if full, err := pkgname.Parse(dep); err == nil {
		n = full
	} else {
		name := depName(dep)
		metas, err := filepath.Glob(filepath.Join(repo, "pkg", name+"-"+Arch+"-*.meta.textproto"))
		if err != nil {
			return nil, err
		}
		found := false
		for _, m := range metas {
			c, err := pkgname.Parse(strings.TrimSuffix(filepath.Base(m), ".meta.textproto"))
			if err != nil || c.Pkg != name {
				continue
			}
			if !found || n.Less(c) {
				n, found = c, true
			}
		}
		if !found {
			return nil, nil
		}
	}
	base := filepath.Join(repo, "pkg", n.String())
	if _, err := os.Stat(base + ".squashfs"); err != nil {
		return nil, nil
	}
	meta, err := pb.ReadMetaFile(base + ".meta.textproto")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Recipe{
		Name:     n.Pkg,
		File:     base + ".meta.textproto",
		repoMeta: meta,
		Build:    &pb.Build{Version: new(n.Version()), RuntimeDep: meta.GetRuntimeDep()},
	}, nil
}
