package batch

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	recipeidx "distri.dev/distri/lib/recipe"
)

// recipe is one recipe of the tree (pkgs/<name>/build.textproto or
// pkgs/<name>/<upstream>/build.textproto) and its edges to other recipes
// of the tree. Recipes are named by their [recipe.Ref.ID]: the package
// name, or <name>/<upstream> for one of several versions (lua/5.3.6).
type recipe struct {
	name    string   // e.g. hello, lua/5.3.6
	dir     string   // e.g. pkgs/hello
	full    string   // e.g. hello-amd64-2.10-1
	deps    []string // build deps within PKGSDIR (dep and the builder's), sorted
	runtime []string // runtime deps within PKGSDIR, sorted
}

// readRecipes reads every recipe of the tree at pkgsDir, sorted by ID.
func readRecipes(pkgsDir string) (map[string]*pb.Build, map[string]*recipe, []string, recipeidx.Index, error) {
	refs, err := recipeidx.All(pkgsDir)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	builds := make(map[string]*pb.Build)
	recipes := make(map[string]*recipe)
	var names []string
	for _, ref := range refs {
		b, err := pb.ReadBuildFile(ref.File())
		if err != nil {
			return nil, nil, nil, nil, err
		}
		id := ref.ID(pkgsDir)
		builds[id] = b
		recipes[id] = &recipe{name: id, dir: ref.Dir, full: ref.FullName(build.Arch)}
		names = append(names, id)
	}
	slices.Sort(names)
	return builds, recipes, names, recipeidx.NewIndex(refs), nil
}

// buildDeps returns a recipe's build deps as written: dep plus the
// builder's implicit deps.
func buildDeps(b *pb.Build) []string {
	return append(slices.Clone(b.GetDep()), build.BuilderDeps(b)...)
}

// graph reads the recipes in pkgsDir and links them. A dep that is not a
// recipe must have a package in the repository (inRepo).
func graph(pkgsDir string, inRepo func(string) bool) (map[string]*recipe, []string, error) {
	builds, recipes, names, idx, err := readRecipes(pkgsDir)
	if err != nil {
		return nil, nil, err
	}
	// Split packages are built by the recipe that splits them off.
	splits := map[string]string{}
	for _, name := range names {
		for _, sp := range builds[name].GetSplitPackage() {
			splits[sp.GetName()] = name
		}
	}
	link := func(r *recipe, entries []string) ([]string, error) {
		var out []string
		for _, d := range entries {
			ref, ok, err := idx.Resolve(d)
			if err != nil {
				return nil, fmt.Errorf("%s: dependency %q: %w", filepath.Join(r.dir, "build.textproto"), d, err)
			}
			if !ok {
				pkg, _ := pkgname.SplitArch(d)
				if n, err := pkgname.Parse(d); err == nil {
					pkg = n.Pkg
				}
				if src, ok := splits[pkg]; ok {
					if src != r.name {
						out = append(out, src)
					}
					continue
				}
				if inRepo(pkg) {
					continue
				}
				return nil, fmt.Errorf("%s: dependency %q is neither in %s nor in the repository",
					filepath.Join(r.dir, "build.textproto"), d, pkgsDir)
			}
			n := ref.ID(pkgsDir)
			if n == r.name {
				continue // self edges say nothing about the order
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	}
	for _, name := range names {
		b, r := builds[name], recipes[name]
		if r.deps, err = link(r, buildDeps(b)); err != nil {
			return nil, nil, err
		}
		if r.runtime, err = link(r, b.GetRuntimeDep()); err != nil {
			return nil, nil, err
		}
	}
	if err := buildCycle(recipes, names); err != nil {
		return nil, nil, err
	}
	return recipes, names, nil
}

// buildCycle returns an error naming the first cycle of build deps, in
// name order, e.g. "dependency cycle: a → b → c → a".
func buildCycle(recipes map[string]*recipe, names []string) error {
	const (
		unvisited = iota
		active
		finished
	)
	state := make(map[string]int, len(names))
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = active
		stack = append(stack, n)
		for _, d := range recipes[n].deps {
			switch state[d] {
			case active:
				i := slices.Index(stack, d)
				return append(slices.Clone(stack[i:]), d)
			case unvisited:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = finished
		return nil
	}
	for _, n := range names {
		if state[n] == unvisited {
			if c := visit(n); c != nil {
				return fmt.Errorf("dependency cycle: %s", strings.Join(c, " → "))
			}
		}
	}
	return nil
}

// order returns the names in build order and, for each, the names it
// waits for. Dependencies (build and runtime) come first. Runtime deps may
// form cycles (libc6 ↔ libgcc-s1): within a strongly connected component
// the build deps decide the order (they are acyclic), then the name; the
// runtime edges pointing backwards in that order are dropped.
func order(recipes map[string]*recipe, names []string) ([]string, map[string][]string) {
	edges := func(n string) []string {
		r := recipes[n]
		e := append(slices.Clone(r.deps), r.runtime...)
		slices.Sort(e)
		return slices.Compact(e)
	}
	// Tarjan's algorithm emits a component only after every component it
	// reaches, i.e. dependencies first.
	index := make(map[string]int)
	low := make(map[string]int)
	onStack := make(map[string]bool)
	var stack []string
	var out []string
	var strong func(n string)
	strong = func(n string) {
		index[n] = len(index)
		low[n] = index[n]
		stack = append(stack, n)
		onStack[n] = true
		for _, d := range edges(n) {
			if _, ok := index[d]; !ok {
				strong(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] != index[n] {
			return
		}
		var comp []string
		for {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[top] = false
			comp = append(comp, top)
			if top == n {
				break
			}
		}
		out = append(out, sortComponent(recipes, comp)...)
	}
	for _, n := range names {
		if _, ok := index[n]; !ok {
			strong(n)
		}
	}
	pos := make(map[string]int, len(out))
	for i, n := range out {
		pos[n] = i
	}
	waits := make(map[string][]string, len(out))
	for _, n := range out {
		for _, d := range edges(n) {
			if pos[d] < pos[n] {
				waits[n] = append(waits[n], d)
			}
		}
	}
	return out, waits
}

// sortComponent orders one strongly connected component by its build
// deps (acyclic, see buildCycle), breaking ties by name.
func sortComponent(recipes map[string]*recipe, comp []string) []string {
	slices.Sort(comp)
	in := make(map[string]bool, len(comp))
	for _, n := range comp {
		in[n] = true
	}
	done := make(map[string]bool, len(comp))
	var out []string
	for len(out) < len(comp) {
		for _, n := range comp {
			if done[n] {
				continue
			}
			ready := true
			for _, d := range recipes[n].deps {
				if in[d] && !done[d] {
					ready = false
					break
				}
			}
			if ready {
				done[n] = true
				out = append(out, n)
				break
			}
		}
	}
	return out
}
