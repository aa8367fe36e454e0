package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	// Aliases in modules.alias order: exact ones are also in exact.
	Aliases []Alias
	exact   map[string][]string
}

// Alias is one line of modules.alias: "alias <Pattern> <Module>".
type Alias struct{ Pattern, Module string }

// ReadIndex reads modules.dep, modules.alias, and if they exist
// modules.softdep and modules.builtin in dir.
func ReadIndex(dir string) (*Index, error) {
	x := &Index{
		Dir: dir, Path: map[string]string{}, Deps: map[string][]string{},
		Softdeps: map[string][]string{}, Builtin: map[string]bool{}, exact: map[string][]string{},
	}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(l string) error {
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
	err = eachLine(filepath.Join(dir, "modules.alias"), func(l string) error {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "alias" {
			return nil
		}
		x.Aliases = append(x.Aliases, Alias{Pattern: f[1], Module: f[2]})
		if !isPattern(f[1]) {
			x.exact[f[1]] = append(x.exact[f[1]], f[2])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.softdep"), func(l string) error {
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
	err = eachLine(filepath.Join(dir, "modules.builtin"), func(l string) error {
		x.Builtin[Normalize(l)] = true
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return x, nil
}

// Resolve returns the modules that provide name, as modprobe does: the
// module of that name, else the modules of every alias pattern that
// matches name. builtin is true for a module built into the kernel.
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
	return x.Match(name), false
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
