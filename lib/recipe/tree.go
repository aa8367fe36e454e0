package recipe

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

// A pkgs/ directory (a recipe tree) holds each package in one of two
// layouts:
//
//	pkgs/<name>/build.textproto            one version of <name>
//	pkgs/<name>/<upstream>/build.textproto several versions of <name>
//
// In the second layout <upstream> is the recipe's upstream version: its
// version field is "<upstream>-<revision>", e.g. pkgs/lua/5.3.6 holds
// version "5.3.6-1". That is how [Identify] tells the two apart: a
// recipe directory whose base name is its own upstream version belongs
// to the package named by the directory above it. A package directory
// holds either a build.textproto or version subdirectories, not both.
//
// A dep entry resolves ([Resolve]) as follows: a full name
// (lua-amd64-5.3.6-1) names exactly that version; an unqualified name
// (lua, lua-amd64) names the newest revision, and two recipes with the
// same newest revision make it ambiguous (an error: the upstream version
// is a label, never compared).

// Identify returns the package name and the recipe tree (the pkgs/
// directory) of the recipe in dir whose version field is version.
func Identify(dir, version string) (name, root string) {
	dir = filepath.Clean(dir)
	base := filepath.Base(dir)
	if up, _ := pkgname.SplitVersion(version); up == base && filepath.Dir(dir) != dir {
		parent := filepath.Dir(dir)
		return filepath.Base(parent), filepath.Dir(parent)
	}
	return base, filepath.Dir(dir)
}

// Ref is one recipe of a tree.
type Ref struct {
	Name    string // package name, e.g. lua
	Version string // e.g. 5.3.6-1
	Dir     string // e.g. pkgs/lua/5.3.6
}

// File returns the recipe file.
func (r Ref) File() string { return filepath.Join(r.Dir, FileName) }

// FullName returns <name>-<arch>-<version>.
func (r Ref) FullName(arch string) string { return r.Name + "-" + arch + "-" + r.Version }

// Versions returns the recipes of package name in root, oldest revision
// first. A package that is not there gives an error wrapping
// os.ErrNotExist.
func Versions(root, name string) ([]Ref, error) {
	dir := filepath.Join(root, name)
	b, err := pb.ReadBuildFile(filepath.Join(dir, FileName))
	if err == nil {
		return []Ref{{Name: name, Version: b.GetVersion(), Dir: dir}}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return nil, err // no package directory: the missing build.textproto
	}
	var refs []Ref
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		sb, serr := pb.ReadBuildFile(filepath.Join(sub, FileName))
		if errors.Is(serr, os.ErrNotExist) {
			continue
		}
		if serr != nil {
			return nil, serr
		}
		if up, _ := pkgname.SplitVersion(sb.GetVersion()); up != e.Name() {
			return nil, fmt.Errorf("%s: version %q does not start with its directory's name %q (pkgs/<name>/<upstream version>/)",
				filepath.Join(sub, FileName), sb.GetVersion(), e.Name()+"-")
		}
		refs = append(refs, Ref{Name: name, Version: sb.GetVersion(), Dir: sub})
	}
	if len(refs) == 0 {
		return nil, err
	}
	slices.SortFunc(refs, func(a, b Ref) int {
		_, ra := pkgname.SplitVersion(a.Version)
		_, rb := pkgname.SplitVersion(b.Version)
		return cmp.Or(cmp.Compare(ra, rb), strings.Compare(a.Version, b.Version))
	})
	return refs, nil
}

// Resolve returns the recipe a dep or runtime_dep entry names in root: a
// package name (lua), a name with architecture (lua-amd64) or a full name
// (lua-amd64-5.3.6-1). A name that is not in root gives an error wrapping
// os.ErrNotExist.
func Resolve(root, dep string) (Ref, error) {
	name, version := splitDep(dep, func(n string) bool {
		_, err := os.Stat(filepath.Join(root, n))
		return err == nil
	})
	refs, err := Versions(root, name)
	if err != nil {
		return Ref{}, err
	}
	return pick(dep, version, refs)
}

// splitDep returns the package and, for a full name, the version a dep
// entry names. A trailing architecture is ambiguous (gcc-i686): a package
// of that exact name (exists) wins.
func splitDep(dep string, exists func(string) bool) (name, version string) {
	if n, err := pkgname.Parse(dep); err == nil {
		return n.Pkg, n.Version()
	}
	if exists(dep) {
		return dep, ""
	}
	name, _ = pkgname.SplitArch(dep)
	return name, ""
}

// pick chooses from refs (one package, oldest revision first) the recipe
// of version, or the newest revision when version is "".
func pick(dep, version string, refs []Ref) (Ref, error) {
	if version != "" {
		var have []string
		for _, r := range refs {
			if r.Version == version {
				return r, nil
			}
			have = append(have, r.Version)
		}
		return Ref{}, fmt.Errorf("no recipe of %s has version %s (have %s): %w",
			refs[0].Name, version, strings.Join(have, ", "), os.ErrNotExist)
	}
	newest := refs[len(refs)-1]
	if len(refs) > 1 {
		_, r1 := pkgname.SplitVersion(newest.Version)
		_, r2 := pkgname.SplitVersion(refs[len(refs)-2].Version)
		if r1 == r2 {
			return Ref{}, fmt.Errorf("%q is ambiguous: %s and %s have the same revision %d; name a full version, e.g. %s",
				dep, refs[len(refs)-2].Dir, newest.Dir, r1, newest.FullName("amd64"))
		}
	}
	return newest, nil
}

// Index resolves dep entries against a tree read once ([All]).
type Index map[string][]Ref // package name → its recipes, oldest revision first

// NewIndex indexes refs (as [All] returns them).
func NewIndex(refs []Ref) Index {
	idx := make(Index)
	for _, r := range refs {
		idx[r.Name] = append(idx[r.Name], r)
	}
	return idx
}

// Resolve is [Resolve] within the index: ok is false when the package
// has no recipe.
func (idx Index) Resolve(dep string) (ref Ref, ok bool, err error) {
	name, version := splitDep(dep, func(n string) bool { return idx[n] != nil })
	refs := idx[name]
	if refs == nil {
		return Ref{}, false, nil
	}
	ref, err = pick(dep, version, refs)
	return ref, true, err
}

// ID names a recipe within its tree: the package name, or
// <name>/<upstream version> for one of several versions.
func (r Ref) ID(root string) string {
	rel, err := filepath.Rel(root, r.Dir)
	if err != nil {
		return r.Name
	}
	return filepath.ToSlash(rel)
}

// All returns every recipe of the tree at root, sorted by name, then
// oldest revision first.
func All(root string) ([]Ref, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []Ref
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") || e.Name() == "testdata" {
			continue
		}
		refs, err := Versions(root, e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}
