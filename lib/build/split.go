package build

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/recipe"
)

// output is one package a build writes: the recipe's own or one of its
// split_package entries.
type output struct {
	name string // package name, e.g. libgreet-dev
	full string // full name, e.g. libgreet-dev-amd64-1.0-1
	dir  string // its tree on the host (the image root)
	// runtimeDep are the declared runtime deps (the recipe's for the
	// main package, the split_package's own for a split).
	runtimeDep []string
	// links are the other outputs its symlinks point into.
	links map[string]bool
}

// splitPackages moves the files each split_package claims out of the
// package tree mainDir into a tree of its own under splitRoot and returns
// the outputs: the main package first, then the splits in recipe order.
//
// A claim's glob is relative to the package root (out/include,
// out/lib/*.so, out/lib/pkgconfig); bin/ and lib/ are generated later
// for each output, so claims name paths under out/ and etc/. With dir
// set, the matches go into that directory of the split instead of their
// own. Unlike the original, nothing is left behind in the main package
// and a split is not made a runtime dep of the main package: each output
// depends on what its own files need (ELF, #!, pkg-config, symlinks).
// Relative symlinks that cross from one output into another are
// rewritten to point at the other's /ro/<full>/ path, which makes that
// output a runtime dep.
func splitPackages(r *Recipe, mainDir, splitRoot string) ([]*output, error) {
	main := &output{name: r.Name, full: r.FullName(), dir: mainDir, runtimeDep: r.GetRuntimeDep(), links: map[string]bool{}}
	outputs := []*output{main}
	// moved maps an original path (relative to the main tree) to where it
	// went: an output and the path there.
	type place struct {
		o   *output
		rel string
	}
	moved := map[string]place{}
	names := map[string]bool{r.Name: true}
	for _, sp := range r.GetSplitPackage() {
		name := sp.GetName()
		if name == "" || strings.ContainsAny(name, "/ ") || names[name] {
			return nil, fmt.Errorf("%s: split_package: bad or duplicate name %q", r.File, name)
		}
		names[name] = true
		o := &output{
			name:       name,
			full:       name + "-" + Arch + "-" + r.GetVersion(),
			runtimeDep: sp.GetRuntimeDep(),
			links:      map[string]bool{},
		}
		o.dir = filepath.Join(splitRoot, o.full)
		if err := mkdir755(o.dir); err != nil {
			return nil, err
		}
		for _, c := range sp.GetClaim() {
			g := c.GetGlob()
			if g == "" || !filepath.IsLocal(g) {
				return nil, fmt.Errorf("%s: split_package %s: claim glob %q must be a relative path inside the package", r.File, name, g)
			}
			matches, err := filepath.Glob(filepath.Join(mainDir, g))
			if err != nil {
				return nil, fmt.Errorf("%s: split_package %s: claim %q: %w", r.File, name, g, err)
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("%s: split_package %s: claim %q matches nothing", r.File, name, g)
			}
			for _, m := range matches {
				rel, err := filepath.Rel(mainDir, m)
				if err != nil {
					return nil, err
				}
				dst := rel
				if d := c.GetDir(); d != "" {
					if !filepath.IsLocal(d) {
						return nil, fmt.Errorf("%s: split_package %s: claim dir %q must be a relative path", r.File, name, d)
					}
					dst = filepath.Join(d, filepath.Base(rel))
				}
				if err := mkdirLike(o.dir, filepath.Dir(dst), mainDir); err != nil {
					return nil, err
				}
				if err := os.Rename(m, filepath.Join(o.dir, dst)); err != nil {
					return nil, fmt.Errorf("%s: split_package %s: %w", r.File, name, err)
				}
				moved[rel] = place{o, dst}
			}
		}
		outputs = append(outputs, o)
	}
	if len(moved) == 0 {
		return outputs, nil
	}
	// where returns the output and path holding the original path rel.
	where := func(rel string) place {
		for p := rel; p != "."; p = filepath.Dir(p) {
			if pl, ok := moved[p]; ok {
				suffix, _ := filepath.Rel(p, rel)
				return place{pl.o, filepath.Join(pl.rel, suffix)}
			}
		}
		return place{main, rel}
	}
	// origin maps a path in an output back to the original path.
	origin := map[place]string{}
	for orig, pl := range moved {
		origin[pl] = orig
	}
	original := func(o *output, rel string) string {
		if o == main {
			return rel
		}
		for p := rel; p != "."; p = filepath.Dir(p) {
			if orig, ok := origin[place{o, p}]; ok {
				suffix, _ := filepath.Rel(p, rel)
				return filepath.Join(orig, suffix)
			}
		}
		return rel
	}
	for _, o := range outputs {
		err := filepath.WalkDir(o.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			t, err := os.Readlink(p)
			if err != nil || filepath.IsAbs(t) {
				return err
			}
			rel, _ := filepath.Rel(o.dir, p)
			orig := original(o, rel)
			targetOrig := filepath.Join(filepath.Dir(orig), t)
			if !filepath.IsLocal(targetOrig) {
				return nil // points outside the package: unchanged
			}
			pl := where(targetOrig)
			if pl.o == o && filepath.Join(filepath.Dir(rel), t) == pl.rel {
				return nil // still right
			}
			// Inside, the link is /ro/<o.full>/<rel>; its target is
			// /ro/<pl.o.full>/<pl.rel>.
			nt, err := filepath.Rel(filepath.Join("/ro", o.full, filepath.Dir(rel)), filepath.Join("/ro", pl.o.full, pl.rel))
			if err != nil {
				return err
			}
			if pl.o != o {
				o.links[pl.o.full] = true
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink(nt, p)
		})
		if err != nil {
			return nil, err
		}
	}
	return outputs, nil
}

// splitRecipe returns the recipe in root that builds the split package
// named by dep (a name or a full name), as a Recipe named after the
// split: its full name, image and meta are the split's, everything else
// (directory, builder, deps, input digest) the recipe's. It returns nil
// if no recipe has such a split_package.
func splitRecipe(root, dep string) (*Recipe, error) {
	name := depName(dep)
	refs, err := recipe.All(root)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		r, err := ReadRecipe(ref.Dir)
		if err != nil {
			continue // a broken recipe is reported where it is used
		}
		for _, sp := range r.GetSplitPackage() {
			if sp.GetName() != name {
				continue
			}
			r.Name = name
			if n, err := pkgname.Parse(dep); err == nil && n.String() != r.FullName() {
				continue // another version
			}
			return r, nil
		}
	}
	return nil, nil
}

// mkdirLike makes the directory rel under dir, each new component with
// the mode of the same directory under like (0755 if like has none), so
// that modes do not depend on the umask.
func mkdirLike(dir, rel, like string) error {
	if rel == "." {
		return nil
	}
	if err := mkdirLike(dir, filepath.Dir(rel), like); err != nil {
		return err
	}
	at := filepath.Join(dir, rel)
	if _, err := os.Lstat(at); err == nil {
		return nil
	}
	mode := fs.FileMode(0o755)
	if fi, err := os.Stat(filepath.Join(like, rel)); err == nil && fi.IsDir() {
		mode = fi.Mode().Perm()
	}
	if err := os.Mkdir(at, mode); err != nil {
		return err
	}
	return os.Chmod(at, mode)
}
