package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/fusectl"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/query"
	"distri.dev/distri/lib/store"
)

// Remove takes names (e.g. bash, bash-amd64 or a full name) out of the
// explicitly installed set and deletes their installed revisions that the
// rest of the set does not need. It returns the full names deleted.
func (in *Installer) Remove(ctx context.Context, names []string) ([]string, error) {
	for _, name := range names {
		if err := pkgname.CheckName(name); err != nil {
			return nil, fmt.Errorf("remove: %w", err)
		}
	}
	if err := in.storeExists(); err != nil {
		return nil, fmt.Errorf("remove: %w", err)
	}
	var lock *store.Lock
	if !in.opts.DryRun {
		l, err := in.lock(ctx)
		if err != nil {
			return nil, err
		}
		defer l.Unlock()
		lock = l
	}
	pkgs, err := in.store.List()
	if err != nil {
		return nil, err
	}
	installed, err := in.store.Installed()
	haveSet := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// matches reports whether the store package n is what name means.
	var targets []func(pkgname.Name) bool
	for _, name := range names {
		var match func(pkgname.Name) bool
		switch {
		case pkgname.IsFull(name) && slices.ContainsFunc(pkgs, func(n pkgname.Name) bool { return n.String() == name }):
			match = func(n pkgname.Name) bool { return n.String() == name }
		case slices.ContainsFunc(pkgs, func(n pkgname.Name) bool { return n.Unqualified() == name+"-"+in.opts.Arch }):
			u := name + "-" + in.opts.Arch
			match = func(n pkgname.Name) bool { return n.Unqualified() == u }
		case slices.ContainsFunc(pkgs, func(n pkgname.Name) bool { return n.Unqualified() == name }):
			match = func(n pkgname.Name) bool { return n.Unqualified() == name }
		default:
			var near []string
			for _, n := range pkgs {
				if distance(name, n.Pkg) <= max(2, len(name)/3) || strings.Contains(n.Pkg, name) {
					near = append(near, n.Pkg)
				}
			}
			slices.Sort(near)
			return nil, &UnknownError{Name: name, NearMisses: slices.Compact(near)}
		}
		targets = append(targets, match)
	}
	matchesAny := func(n pkgname.Name) bool {
		return slices.ContainsFunc(targets, func(m func(pkgname.Name) bool) bool { return m(n) })
	}

	// The set without the names: an entry goes if it means a removed package.
	var rest []string
	for _, e := range installed {
		n, err := pkgname.Parse(e)
		if err != nil || n.String() != e { // unqualified: bash-amd64
			pkg, arch := pkgname.SplitArch(e)
			n = pkgname.Name{Pkg: pkg, Arch: arch}
		}
		if matchesAny(n) {
			continue
		}
		rest = append(rest, e)
	}
	var keep map[string]bool
	if haveSet {
		if !in.opts.DryRun {
			if err := in.store.SetInstalled(lock, rest); err != nil {
				return nil, err
			}
		}
		// What the set on disk (or, in a dry run, the set it would be)
		// needs.
		var problems []error
		if keep, problems, err = in.store.NeededFor(rest); err != nil {
			return nil, err
		}
		for _, p := range problems {
			in.logf("%v", p)
		}
	} else {
		// No installed set: keep what any other package needs.
		keep = map[string]bool{}
		for _, n := range pkgs {
			if matchesAny(n) {
				continue
			}
			m, err := in.store.Meta(n.String())
			if err != nil {
				in.logf("%v", err)
				continue
			}
			for _, d := range m.GetRuntimeDep() {
				keep[d] = true
			}
		}
	}
	var drop []string
	for _, n := range pkgs {
		if !matchesAny(n) {
			continue
		}
		if keep[n.String()] {
			in.logf("%s: kept, other installed packages need it", n)
			continue
		}
		drop = append(drop, n.String())
	}
	if in.opts.DryRun {
		return drop, nil
	}
	if err := in.store.Remove(lock, drop...); err != nil {
		return nil, err
	}
	if err := in.release(ctx, lock, len(drop) > 0, "removed, but distri-fuse did not rescan"); err != nil {
		return nil, err
	}
	return drop, nil
}

// GC deletes every package that the explicitly installed set does not
// need (its entries' newest installed revisions and their closures) and
// every half-installed image. Other files are left alone. It returns
// what it deleted.
func (in *Installer) GC(ctx context.Context) ([]string, error) {
	// Refuse before the lock, which would create a missing store.
	if _, err := in.store.Installed(); errors.Is(err, os.ErrNotExist) {
		return nil, errNoInstalledSet(in.store.Dir())
	}
	if in.opts.DryRun {
		keep, problems, err := in.store.Needed()
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNoInstalledSet(in.store.Dir())
		}
		if err != nil {
			return nil, err
		}
		for _, p := range problems {
			in.logf("gc: %v", p)
		}
		return in.gcPlan(keep)
	}
	lock, err := in.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	keep, problems, err := in.store.Needed()
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoInstalledSet(in.store.Dir())
	}
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		in.logf("gc: %v", p)
	}
	removed, err := in.store.GC(lock, keep)
	if err != nil {
		return removed, err
	}
	if err := in.release(ctx, lock, len(removed) > 0, "gc: distri-fuse did not rescan"); err != nil {
		return removed, err
	}
	return removed, nil
}

// ListOptions selects what [Installer.List] lists.
type ListOptions struct {
	// Available lists the packages of the repositories instead of the
	// installed ones.
	Available bool
	// Prefix keeps only full names starting with it, e.g. bash.
	Prefix string
}

// List returns full names, sorted: installed packages, or those the
// repositories offer.
func (in *Installer) List(ctx context.Context, opts ListOptions) ([]string, error) {
	var all []string
	if opts.Available {
		cat, err := in.catalog(ctx)
		if err != nil {
			return nil, err
		}
		for f := range cat.byFull {
			all = append(all, f)
		}
	} else {
		pkgs, err := in.store.List()
		if err != nil {
			return nil, err
		}
		for _, n := range pkgs {
			all = append(all, n.String())
		}
	}
	var out []string
	for _, f := range all {
		if strings.HasPrefix(f, opts.Prefix) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out, nil
}

// storeExists returns an error unless the store folder exists: commands
// that only change an existing store (remove, gc) do not create one.
func (in *Installer) storeExists() error {
	fi, err := os.Stat(in.store.Dir())
	if err != nil {
		return fmt.Errorf("no package store: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("no package store: %s is not a folder", in.store.Dir())
	}
	return nil
}

func errNoInstalledSet(dir string) error {
	return fmt.Errorf("gc: %s has no explicitly installed set (%s); refusing to delete every package", dir, "installed")
}

// gcPlan returns what store.GC would delete with keep, in the order it
// reports it: the packages keep does not name, then half-installed
// images.
func (in *Installer) gcPlan(keep map[string]bool) ([]string, error) {
	pkgs, err := in.store.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range pkgs {
		if !keep[n.String()] {
			out = append(out, n.String())
		}
	}
	ents, err := os.ReadDir(in.store.Dir())
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		full, ok := strings.CutSuffix(e.Name(), ".squashfs")
		if !ok || !pkgname.IsFull(full) {
			continue
		}
		if _, err := os.Stat(in.store.MetaPath(full)); errors.Is(err, os.ErrNotExist) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Available returns every package the repositories offer, for
// lib/query: full name, image size, runtime dependencies and the
// repository that has it (the first one listed, as Install fetches it).
func (in *Installer) Available(ctx context.Context) ([]query.Package, error) {
	cat, err := in.catalog(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]query.Package, 0, len(cat.byFull))
	for full, src := range cat.byFull {
		out = append(out, query.Package{
			Name: full,
			Size: src.pkg.GetImageSize(),
			Deps: src.pkg.GetRuntimeDep(),
			Repo: src.repo.String(),
		})
	}
	slices.SortFunc(out, func(a, b query.Package) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Reset makes the store hold only the packages keep names (full names,
// as a `distri list` saved earlier prints them): every other package and
// every half-installed image is deleted, and entries of the explicitly
// installed set that no longer name a package in the store are dropped.
// Listed packages the store lacks are reported, not fetched. An empty
// keep is refused: an empty list is more likely a failed pipeline than
// a wish to delete everything. It returns what it deleted.
func (in *Installer) Reset(ctx context.Context, keep []string) ([]string, error) {
	if len(keep) == 0 {
		return nil, errors.New("reset: no packages listed; refusing to delete every package (gc deletes what the installed set does not need)")
	}
	want := map[string]bool{}
	for _, k := range keep {
		if !pkgname.IsFull(k) {
			return nil, fmt.Errorf("reset: %q is not a full package name (want e.g. bash-amd64-5.2.15-3, as distri list prints)", k)
		}
		want[k] = true
	}
	if err := in.storeExists(); err != nil {
		return nil, fmt.Errorf("reset: %w", err)
	}
	for _, k := range keep {
		if !in.store.Has(k) {
			in.logf("reset: %s is not in the store; install it to have it back", k)
		}
	}
	if in.opts.DryRun {
		return in.gcPlan(want)
	}
	lock, err := in.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	removed, err := in.store.GC(lock, want)
	if err != nil {
		return removed, fmt.Errorf("reset: %w", err)
	}
	installed, err := in.store.Installed()
	if err == nil {
		pkgs, err := in.store.List()
		if err != nil {
			return removed, err
		}
		var rest []string
		for _, e := range installed {
			if slices.ContainsFunc(pkgs, func(n pkgname.Name) bool { return n.String() == e || n.Unqualified() == e }) {
				rest = append(rest, e)
			}
		}
		if len(rest) != len(installed) {
			if err := in.store.SetInstalled(lock, rest); err != nil {
				return removed, err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return removed, err
	}
	if err := in.release(ctx, lock, len(removed) > 0, "reset: distri-fuse did not rescan"); err != nil {
		return removed, err
	}
	return removed, nil
}

// Env returns the places and settings the installer uses, as NAME,
// value pairs: the root, its store, where repositories, trusted keys
// and index time stamps are, and the architecture of unqualified names.
func (in *Installer) Env() [][2]string {
	r := in.opts.Root
	return [][2]string{
		{"DISTRI_ROOT", r},
		{"DISTRI_STORE", in.store.Dir()},
		{"DISTRI_REPOS", filepath.Join(r, "etc/distri/repos.d")},
		{"DISTRI_KEYS", filepath.Join(r, "etc/distri/keys")},
		{"DISTRI_STATE", filepath.Join(r, stateDir)},
		{"DISTRI_ARCH", in.opts.Arch},
	}
}

// release unlocks the store after a change and, if changed, tells a
// running distri-fuse to rescan; a daemon that does not answer is logged
// with msg, not an error (the store is already right).
func (in *Installer) release(ctx context.Context, lock *store.Lock, changed bool, msg string) error {
	if err := lock.Unlock(); err != nil {
		return err
	}
	if changed {
		if err := fusectl.Rescan(ctx, in.opts.Root); err != nil {
			in.logf("%s: %v", msg, err)
		}
	}
	return nil
}

// lock takes the store's lock, saying so when it has to wait.
func (in *Installer) lock(ctx context.Context) (*store.Lock, error) {
	return in.store.Lock(ctx, func() { in.logf("waiting for the lock on %s", in.store.Dir()) })
}
