package install

import (
	"fmt"
	"slices"
	"strings"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/repo"
)

// catalog is what the repositories offer, merged.
type catalog struct {
	arch   string
	byFull map[string]source       // full name → first repository that has it
	newest map[string]pkgname.Name // <pkg>-<arch> → newest revision in any repository
}

// source is one package in one repository.
type source struct {
	repo *repo.Repo
	pkg  *pb.PackageSummary
}

func newCatalog(arch string, repos []*repo.Repo, indexes []*pb.IndexSummary) *catalog {
	c := &catalog{arch: arch, byFull: map[string]source{}, newest: map[string]pkgname.Name{}}
	for i, idx := range indexes {
		for _, p := range idx.GetPackage() {
			n, err := pkgname.Parse(p.GetName())
			if err != nil || n.String() != p.GetName() {
				continue
			}
			if _, ok := c.byFull[p.GetName()]; !ok {
				c.byFull[p.GetName()] = source{repo: repos[i], pkg: p}
			}
			if o, ok := c.newest[n.Unqualified()]; !ok || pkgname.Compare(o, n) < 0 {
				c.newest[n.Unqualified()] = n
			}
		}
	}
	return c
}

// UnknownError says no repository has a package of that name.
type UnknownError struct {
	Name       string   // as asked for, e.g. helo
	NearMisses []string // similar names that exist, best first, e.g. hello
}

func (e *UnknownError) Error() string {
	if len(e.NearMisses) == 0 {
		return fmt.Sprintf("unknown package %q", e.Name)
	}
	return fmt.Sprintf("unknown package %q (did you mean %s?)", e.Name, strings.Join(e.NearMisses, ", "))
}

// resolve returns the full name that name means and the name to record
// in the installed set: a full name stays as it is (pinned); bash means
// bash-<arch>, and bash-i686 means itself unless a package is called
// bash-i686.
func (c *catalog) resolve(name string) (full, record string, err error) {
	if _, ok := c.byFull[name]; ok {
		return name, name, nil
	}
	if n, ok := c.newest[name+"-"+c.arch]; ok {
		return n.String(), name + "-" + c.arch, nil
	}
	if _, arch := pkgname.SplitArch(name); arch != "" {
		if n, ok := c.newest[name]; ok {
			return n.String(), name, nil
		}
	}
	return "", "", &UnknownError{Name: name, NearMisses: c.nearMisses(name)}
}

// closure returns fulls and their runtime dependencies, transitively
// (an index lists each package's closure, but a dependency from another
// repository may need more), sorted.
func (c *catalog) closure(fulls []string) ([]string, error) {
	seen := map[string]bool{}
	queue := slices.Clone(fulls)
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if seen[f] {
			continue
		}
		seen[f] = true
		for _, d := range c.byFull[f].pkg.GetRuntimeDep() {
			if _, ok := c.byFull[d]; !ok {
				return nil, fmt.Errorf("%s needs %q, which no repository has", f, d)
			}
			queue = append(queue, d)
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	slices.Sort(out)
	return out, nil
}

// nearMisses lists up to 5 package names close to name: by edit
// distance, or containing it.
func (c *catalog) nearMisses(name string) []string {
	type cand struct {
		name string
		dist int
	}
	seen := map[string]bool{}
	var cands []cand
	want := strings.TrimSuffix(name, "-"+c.arch)
	for u := range c.newest {
		pkg, _ := pkgname.SplitArch(u)
		if seen[pkg] {
			continue
		}
		seen[pkg] = true
		d := distance(want, pkg)
		limit := max(2, len(want)/3)
		switch {
		case d <= limit:
		case len(want) >= 3 && (strings.Contains(pkg, want) || strings.Contains(want, pkg) && len(pkg) >= 3):
			d = limit + 1
		default:
			continue
		}
		cands = append(cands, cand{pkg, d})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, c := range cands[:min(5, len(cands))] {
		out = append(out, c.name)
	}
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
