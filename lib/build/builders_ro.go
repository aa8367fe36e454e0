package build

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// mergeDirs makes at the merge of the directories srcs, which are in
// precedence order: for each name, the first directory having it wins. A
// name that is a directory in the winner merges the directories of that
// name in all of srcs (a file or symlink of the same name elsewhere is
// shadowed); a file or symlink becomes a relative symlink to it. Below
// the top (top false), a directory that only one of srcs has becomes one
// symlink to it instead of a tree of links: most of a toolchain's files
// (cmake's modules, Python's and Perl's libraries) are in directories of
// one package, so /ro takes a few hundred links instead of tens of
// thousands. The top stays a real directory (links are added to /ro/bin).
//
// A dangling symlink whose target is a plain file name, e.g. binutils'
// bin/as → x86_64-linux-gnu-as (in binutils-x86-64-linux-gnu), is linked
// to that name in the merged directory instead, where the sibling is.
func mergeDirs(at string, srcs []string, top bool) error {
	if len(srcs) == 1 && !top {
		return relSymlink(srcs[0], at)
	}
	if err := os.MkdirAll(at, 0o755); err != nil {
		return err
	}
	type provider struct {
		path         string
		dir, symlink bool // a real directory (not a symlink to one); a symlink
	}
	providers := map[string][]provider{}
	var names []string
	for _, src := range srcs {
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if providers[e.Name()] == nil {
				names = append(names, e.Name())
			}
			providers[e.Name()] = append(providers[e.Name()], provider{filepath.Join(src, e.Name()), e.IsDir(), e.Type()&os.ModeSymlink != 0})
		}
	}
	slices.Sort(names)
	for _, name := range names {
		ps := providers[name]
		dst := filepath.Join(at, name)
		if ps[0].dir {
			var dirs []string
			for _, p := range ps {
				if p.dir {
					dirs = append(dirs, p.path)
				}
			}
			if err := mergeDirs(dst, dirs, false); err != nil {
				return err
			}
			continue
		}
		if ps[0].symlink {
			if _, err := os.Stat(ps[0].path); err != nil {
				if sib, ok := siblingTarget(ps[0].path); ok {
					if err := os.Symlink(sib, dst); err != nil {
						return err
					}
					continue
				}
			}
		}
		if err := relSymlink(ps[0].path, dst); err != nil {
			return err
		}
	}
	return nil
}

// relSymlink makes at a relative symlink to target.
func relSymlink(target, at string) error {
	rel, err := filepath.Rel(filepath.Dir(at), target)
	if err != nil {
		return fmt.Errorf("link %s to %s: %w", at, target, err)
	}
	return os.Symlink(rel, at)
}
