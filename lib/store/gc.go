package store

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"distri.dev/distri/lib/pkgname"
)

// Needed returns the packages the explicitly installed set needs: each
// pinned entry (a full name), the newest installed revision of each
// unqualified entry (e.g. bash-amd64), and the runtime_dep closure of
// those, read from the store's metas. A meta that cannot be read is
// reported in problems and its package kept, but not followed.
func (s *Store) Needed() (keep map[string]bool, problems []error, err error) {
	installed, err := s.Installed()
	if err != nil {
		return nil, nil, fmt.Errorf("needed: %w", err)
	}
	return s.NeededFor(installed)
}

// NeededFor is [Store.Needed] for the explicitly installed set installed
// instead of the one on disk: what a remove would keep, computed without
// writing the set (dry runs).
func (s *Store) NeededFor(installed []string) (keep map[string]bool, problems []error, err error) {
	pkgs, err := s.List()
	if err != nil {
		return nil, nil, err
	}
	newest := map[string]pkgname.Name{}
	for _, n := range pkgs {
		if o, ok := newest[n.Unqualified()]; !ok || pkgname.Compare(o, n) < 0 {
			newest[n.Unqualified()] = n
		}
	}
	keep = map[string]bool{}
	var queue []string
	for _, name := range installed {
		if pkgname.IsFull(name) {
			queue = append(queue, name)
		} else if n, ok := newest[name]; ok {
			queue = append(queue, n.String())
		}
	}
	for len(queue) > 0 {
		full := queue[0]
		queue = queue[1:]
		if keep[full] || !s.Has(full) {
			continue
		}
		keep[full] = true
		m, err := s.Meta(full)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, d := range m.GetRuntimeDep() {
			if !pkgname.IsFull(d) { // e.g. a path or a newline: not a store file
				problems = append(problems, fmt.Errorf("%s: runtime_dep %q is not a full package name", full, d))
				continue
			}
			queue = append(queue, d)
		}
	}
	return keep, problems, nil
}

// GC deletes every package that keep does not name, and every image
// without its meta (a commit interrupted half way). It returns the names
// of the packages and files it deleted. Other files are left alone. l
// must be the held lock.
func (s *Store) GC(l *Lock, keep map[string]bool) ([]string, error) {
	if l == nil || l.f == nil {
		return nil, errors.New("gc: store not locked")
	}
	pkgs, err := s.List()
	if err != nil {
		return nil, err
	}
	var drop, removed []string
	for _, n := range pkgs {
		if !keep[n.String()] {
			drop = append(drop, n.String())
		}
	}
	if err := s.Remove(l, drop...); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	removed = append(removed, drop...)
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return removed, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		full, ok := strings.CutSuffix(e.Name(), imageSuffix)
		if !ok || !pkgname.IsFull(full) {
			continue
		}
		if _, err := os.Stat(s.MetaPath(full)); errors.Is(err, os.ErrNotExist) {
			if err := os.Remove(s.ImagePath(full)); err != nil {
				return removed, fmt.Errorf("gc: %w", err)
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}
