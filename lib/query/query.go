// Package query answers the questions people ask of a distri system
// without changing it: which packages match a word (search), what a
// package is (info), which files it has (files) and which package a path
// belongs to (owner).
//
// # Decisions
//
//   - Everything here only reads: the store's metas and images, the
//     repositories' indexes as lib/install fetched them, and the root's
//     symlinks. Nothing is created or locked, so a query never waits for
//     an install and works on a read-only root or as a user.
//   - The index carries names, sizes and dependencies but no
//     descriptions, so search matches substrings of full names and, for
//     installed packages, of the paths they provide (/ro/bin/…). The
//     catalog is a list of [Package], not the index protobuf, so that
//     installed and available packages are one kind of thing here.
//   - Owner without a running distri-fuse resolves the path through the
//     root's symlinks itself (never leaving the root), then applies
//     distri-fuse's rule for exchange directories (lib/exchange.Shadows):
//     of each <name>-<arch> only the newest revision takes part, and of
//     two providers the one whose <name>-<arch> sorts first wins; a
//     directory (also an empty one a package provides, share/aclocal/)
//     beats a file of the same path and is owned by every package that
//     provides it or a file shown below it. With a mount,
//     lib/fusefs.Owner asks /ro itself.
package query

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"distri.dev/distri/lib/exchange"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/squashfs"
	"distri.dev/distri/lib/store"
)

// Package is one package, installed or offered by a repository.
type Package struct {
	Name      string   // full name, e.g. hello-amd64-2.12-1
	Size      uint64   // bytes of its image
	Deps      []string // runtime dependencies, full names
	Repo      string   // the repository offering it; empty if none does
	Installed bool     // in the store
	Provides  []string // /ro-relative paths it provides (installed packages), e.g. bin/hello
}

// Installed returns the packages of st, sorted, with their metas'
// dependencies and provides. A missing store has no packages.
func Installed(st *store.Store) ([]Package, error) {
	names, err := st.List()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Package
	for _, n := range names {
		full := n.String()
		p := Package{Name: full, Installed: true}
		if fi, err := os.Stat(st.ImagePath(full)); err == nil {
			p.Size = uint64(fi.Size())
		}
		m, err := st.Meta(full)
		if err != nil {
			return nil, err
		}
		p.Deps = m.GetRuntimeDep()
		p.Provides = m.GetProvides()
		out = append(out, p)
	}
	return out, nil
}

// Catalog is the installed and the available packages, merged by name.
type Catalog struct {
	arch string
	pkgs map[string]*Package
}

// NewCatalog merges installed (from [Installed]) and available packages
// (from the repositories); arch qualifies names without an architecture.
func NewCatalog(arch string, installed, available []Package) *Catalog {
	c := &Catalog{arch: arch, pkgs: map[string]*Package{}}
	for _, p := range available {
		c.pkgs[p.Name] = &p
	}
	for _, p := range installed {
		if a, ok := c.pkgs[p.Name]; ok {
			p.Repo = a.Repo
			if len(p.Deps) == 0 {
				p.Deps = a.Deps
			}
		}
		c.pkgs[p.Name] = &p
	}
	return c
}

// Names returns every full name, sorted.
func (c *Catalog) Names() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for n := range c.pkgs {
			if !yield(n) {
				return
			}
		}
	})
}

// Search returns, sorted, the full names that contain term (ignoring
// case), or whose package provides a path containing it.
func (c *Catalog) Search(term string) []string {
	term = strings.ToLower(term)
	var out []string
	for _, full := range c.Names() {
		p := c.pkgs[full]
		if strings.Contains(strings.ToLower(full), term) ||
			slices.ContainsFunc(p.Provides, func(s string) bool { return strings.Contains(strings.ToLower(s), term) }) {
			out = append(out, full)
		}
	}
	return out
}

// Resolve returns the full name that name means: a full name is itself;
// bash-amd64 is its newest revision; bash is the newest revision of
// bash-<arch>. Installed and available revisions count alike.
func (c *Catalog) Resolve(name string) (string, error) {
	if err := pkgname.CheckName(name); err != nil {
		return "", err
	}
	if _, ok := c.pkgs[name]; ok {
		return name, nil
	}
	var best *pkgname.Name
	for _, u := range []string{name, name + "-" + c.arch} {
		for full := range c.pkgs {
			n, err := pkgname.Parse(full)
			if err != nil || n.Unqualified() != u {
				continue
			}
			if best == nil || pkgname.Compare(*best, n) < 0 {
				best = &n
			}
		}
		if best != nil {
			return best.String(), nil
		}
	}
	var near []string
	for full := range c.pkgs {
		if strings.Contains(full, name) {
			near = append(near, full)
		}
	}
	slices.Sort(near)
	if len(near) > 0 {
		return "", fmt.Errorf("unknown package %q (did you mean %s?)", name, strings.Join(near, ", "))
	}
	return "", fmt.Errorf("unknown package %q", name)
}

// Info is what [Catalog.Info] says about a package.
type Info struct {
	Package
	Version     string   // upstream version and revision, e.g. 2.12-1
	ReverseDeps []string // packages of the catalog that depend on it, sorted
}

// Info describes the package name means (see [Catalog.Resolve]).
func (c *Catalog) Info(name string) (*Info, error) {
	full, err := c.Resolve(name)
	if err != nil {
		return nil, err
	}
	p := c.pkgs[full]
	info := &Info{Package: *p}
	if n, err := pkgname.Parse(full); err == nil {
		info.Version = n.Upstream
		if n.Rev != 0 {
			info.Version += "-" + strconv.FormatInt(n.Rev, 10)
		}
	}
	for _, o := range c.Names() {
		if slices.Contains(c.pkgs[o].Deps, full) {
			info.ReverseDeps = append(info.ReverseDeps, o)
		}
	}
	return info, nil
}

// Lines formats info as "key: value" lines, lists joined by spaces.
func (i *Info) Lines() []string {
	repo := i.Repo
	if repo == "" {
		repo = "(none)"
	}
	return []string{
		"name: " + i.Name,
		"version: " + i.Version,
		"size: " + strconv.FormatUint(i.Size, 10),
		"installed: " + strconv.FormatBool(i.Installed),
		"repository: " + repo,
		"depends: " + strings.Join(i.Deps, " "),
		"required-by: " + strings.Join(i.ReverseDeps, " "),
	}
}

// Files returns the paths of every file and symlink in the installed
// package full as /ro serves them (/ro/<full>/…), sorted. Directories are
// left out, so that the list can be fed to commands that take files.
func Files(st *store.Store, full string) ([]string, error) {
	if !pkgname.IsFull(full) || !st.Has(full) {
		return nil, fmt.Errorf("files: %s is not installed in %s", full, st.Dir())
	}
	r, err := squashfs.Open(st.ImagePath(full))
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	defer r.Close()
	var out []string
	err = fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, "/ro/"+full+"/"+p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("files: %s: %w", st.ImagePath(full), err)
	}
	slices.Sort(out)
	return out, nil
}

// ErrNoOwner is returned by [Owner] for paths no package provides.
var ErrNoOwner = errors.New("no package provides it")

// Owner returns the installed package that provides p, a path as seen
// inside root (/ro/bin/bash, /bin/bash through the root's symlinks,
// /ro/zlib-amd64-1.3-4/out/lib), read from the store st rather than a
// mounted /ro. For an exchange directory it returns every package whose
// entries /ro shows below it (not those whose every entry is shadowed),
// sorted.
func Owner(root string, st *store.Store, p string) ([]string, error) {
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("owner of %s: not an absolute path", p)
	}
	resolved, err := resolve(root, path.Clean(p))
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", p, err)
	}
	rel, ok := strings.CutPrefix(resolved, "/ro/")
	if !ok {
		return nil, fmt.Errorf("owner of %s: %s is not below /ro: %w", p, resolved, ErrNoOwner)
	}
	first, _, _ := strings.Cut(rel, "/")
	if pkgname.IsFull(first) {
		if !st.Has(first) {
			return nil, fmt.Errorf("owner of %s: %s is not installed in %s", p, first, st.Dir())
		}
		return []string{first}, nil
	}
	if _, ok := exchange.ImagePath(rel); !ok {
		return nil, fmt.Errorf("owner of %s: %w", p, ErrNoOwner)
	}
	pkgs, err := Installed(st)
	if err != nil {
		return nil, err
	}
	// Per <name>-<arch> only the newest revision takes part.
	newest := map[string]pkgname.Name{}
	byFull := map[string]Package{}
	for _, pk := range pkgs {
		n, err := pkgname.Parse(pk.Name)
		if err != nil {
			continue
		}
		if o, ok := newest[n.Unqualified()]; !ok || pkgname.Compare(o, n) < 0 {
			newest[n.Unqualified()] = n
		}
		byFull[pk.Name] = pk
	}
	// The winner of each file at or below rel: of its providers, the
	// one whose <name>-<arch> sorts first. Directories are never won:
	// every package that provides one (share/aclocal/, even empty) or a
	// file /ro shows below it owns it, and a directory beats a file of
	// the same path, as distri-fuse serves them.
	winners := map[string]pkgname.Name{}
	dirs := map[string]bool{}      // directories at or below rel
	dirOwners := map[string]bool{} // packages providing a directory there
	below := func(s string) bool { return s == rel || strings.HasPrefix(s, rel+"/") }
	for _, n := range newest {
		provides := byFull[n.String()].Provides
		if len(provides) == 0 { // a meta without provides: read the image
			if provides, err = imageProvides(st, n.String()); err != nil {
				return nil, err
			}
		}
		for _, s := range provides {
			d, isDir := exchange.IsDir(s)
			if !below(d) {
				continue
			}
			if isDir {
				dirOwners[n.String()] = true
			} else {
				if w, ok := winners[s]; !ok || cmp.Compare(n.Unqualified(), w.Unqualified()) < 0 {
					winners[s] = n
				}
				d = path.Dir(d)
			}
			for ; below(d) && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
			}
		}
	}
	if w, ok := winners[rel]; ok && !dirs[rel] {
		return []string{w.String()}, nil
	}
	// A directory: every package that /ro shows an entry of below it
	// (a package whose every entry there is shadowed is not one).
	var out []string
	for s, w := range winners {
		if !dirs[s] {
			out = append(out, w.String())
		}
	}
	for full := range dirOwners {
		out = append(out, full)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("owner of %s: %w", p, ErrNoOwner)
	}
	return out, nil
}

func imageProvides(st *store.Store, full string) ([]string, error) {
	r, err := squashfs.Open(st.ImagePath(full))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return exchange.Paths(r.FS())
}

// maxLinks bounds the symlinks resolve follows, as the kernel's 40.
const maxLinks = 40

// resolve follows the symlinks of p's directories inside root, the way
// the kernel would with root as /, and stops once the path is below /ro
// (which only a mount would serve). Absolute targets are taken relative
// to root; ".." never climbs above it. The last element is not followed:
// /bin/bash must end at /ro/bin/bash, the exchange entry.
func resolve(root, p string) (string, error) {
	links := 0
	elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i := 0; i < len(elems); i++ {
		if cur == "/ro" || strings.HasPrefix(cur, "/ro/") {
			return path.Join(append([]string{cur}, elems[i:]...)...), nil
		}
		next := path.Join(cur, elems[i])
		if i == len(elems)-1 {
			return next, nil
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && (next == "/ro") {
				cur = next
				continue
			}
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("too many symlinks at %s", next)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		rest := append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), elems[i+1:]...)
		elems, i, cur = rest, -1, "/"
		if path.Clean(target) == "/" {
			elems = elems[1:]
		}
	}
	return cur, nil
}
