package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Index is what depmod wrote about one release directory: where each
// module is, what it depends on, and its aliases.
type Index struct {
	Dir      string              // e.g. /lib/modules/6.1.0-56-cloud-amd64
	Path     map[string]string   // module name → path relative to Dir
	Deps     map[string][]string // module name → names of its dependencies, as modules.dep lists them
	Softdeps map[string][]string // module name → softdep names or aliases
	Builtin  map[string]bool
	// BuiltinAliases are the aliases of built-in modules
	// (modules.builtin.alias), e.g. "fs-ext4" → ["ext4"].
	BuiltinAliases map[string][]string
	// Aliases in modules.alias order: exact ones are also in exact.
	Aliases []Alias
	exact   map[string][]string
}

// Alias is one line of modules.alias: "alias <Pattern> <Module>".
type Alias struct{ Pattern, Module string }

// ReadIndex reads modules.dep, modules.alias, and if they exist
// modules.softdep, modules.builtin and modules.builtin.alias in dir.
func ReadIndex(dir string) (*Index, error) {
	return readIndex(dir, dir)
}

func newIndex(dir string) *Index {
	return &Index{
		Dir: dir, Path: map[string]string{}, Deps: map[string][]string{},
		Softdeps: map[string][]string{}, Builtin: map[string]bool{},
		BuiltinAliases: map[string][]string{}, exact: map[string][]string{},
	}
}

// readIndex reads the depmod files in files for the modules in dir.
func readIndex(files, dir string) (*Index, error) {
	x := newIndex(dir)
	err := eachLine(filepath.Join(files, "modules.dep"), func(l string) error {
		mod, deps, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("bad line %q", l)
		}
		n := Normalize(mod)
		x.Path[n] = mod
		for _, d := range strings.Fields(deps) {
			x.Deps[n] = append(x.Deps[n], Normalize(d))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(files, "modules.alias"), func(l string) error {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "alias" {
			return nil
		}
		x.addAlias(f[1], f[2])
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(files, "modules.builtin.alias"), func(l string) error {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "alias" {
			x.BuiltinAliases[f[1]] = append(x.BuiltinAliases[f[1]], Normalize(f[2]))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	err = eachLine(filepath.Join(files, "modules.softdep"), func(l string) error {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "softdep" {
			return nil
		}
		for _, s := range f[2:] {
			if s != "pre:" && s != "post:" {
				x.Softdeps[Normalize(f[1])] = append(x.Softdeps[Normalize(f[1])], s)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	err = eachLine(filepath.Join(files, "modules.builtin"), func(l string) error {
		x.Builtin[Normalize(l)] = true
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return x, nil
}

func (x *Index) addAlias(pattern, module string) {
	x.Aliases = append(x.Aliases, Alias{Pattern: pattern, Module: module})
	if !isPattern(pattern) {
		x.exact[pattern] = append(x.exact[pattern], module)
	}
}

// Index returns what depmod would write about t: an Index to load its
// modules from, for a tree without modules.dep.
func (t *Tree) Index() *Index {
	x := newIndex(t.Dir)
	names := slices.Sorted(maps.Keys(t.Modules))
	for _, n := range names {
		m := t.Modules[n]
		x.Path[n] = m.Path
		if len(m.Depends) > 0 {
			x.Deps[n] = slices.Clone(m.Depends)
		}
		if len(m.Softdeps) > 0 {
			x.Softdeps[n] = slices.Clone(m.Softdeps)
		}
		for _, a := range m.Aliases {
			x.addAlias(a, n)
		}
	}
	maps.Copy(x.Builtin, t.Builtin)
	for a, mods := range t.BuiltinAliases {
		x.BuiltinAliases[a] = slices.Clone(mods)
	}
	return x
}

// Resolve returns the modules that provide name, as modprobe does: the
// module of that name, else the modules of every alias pattern that
// matches name. builtin is true for a module, or an alias of a module,
// built into the kernel.
func (x *Index) Resolve(name string) (mods []string, builtin bool) {
	n := Normalize(name)
	if _, ok := x.Path[n]; ok {
		return []string{n}, false
	}
	if x.Builtin[n] {
		return nil, true
	}
	if m, ok := x.exact[name]; ok {
		return m, false
	}
	if m := x.Match(name); len(m) > 0 {
		return m, false
	}
	return nil, len(x.BuiltinAliases[name]) > 0
}

// Match returns the modules whose alias patterns match modalias (e.g.
// "virtio:d00000002v00001AF4"), without duplicates.
func (x *Index) Match(modalias string) []string {
	var out []string
	for _, a := range x.Aliases {
		if match(a.Pattern, modalias) && !contains(out, a.Module) {
			out = append(out, a.Module)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

func eachLine(path string, f func(string) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	s := bufio.NewScanner(file)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if err := f(l); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return s.Err()
}
