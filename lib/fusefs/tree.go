package fusefs

import (
	"cmp"
	"path"
	"slices"
	"strings"
	"time"

	"distri.dev/distri/lib/exchange"
	"distri.dev/distri/lib/pkgname"
)

// A tree is one immutable snapshot of what /ro shows: the packages in the
// store, the exchange directories computed from their provides, and the
// runtime unions. A rescan builds a new tree without any lock and swaps
// it in atomically; FUSE operations load the current one and never wait.
type tree struct {
	pkgs  map[string]*image // full name → image, every package in the store
	names []string          // sorted keys of pkgs
	dirs  map[string]*xdir  // exchange directory by /ro-relative path, e.g. "lib/pkgconfig"
	// unions maps a host package and a directory of its image (e.g.
	// "out/lib/irssi/modules") to the plugin packages whose same
	// directory is merged into it, in priority order.
	unions   map[string]map[string][]*image
	root     xdir  // /ro itself: top-level exchange dirs plus packages (names only)
	bytes    int64 // sum of image sizes, for statfs
	nvirtual int   // exchange directories and symlinks, for statfs
}

// xdir is an exchange directory: /ro/bin, /ro/lib/pkgconfig, …
type xdir struct {
	path    string // e.g. "lib/pkgconfig"
	ino     uint64
	mtime   time.Time // when its listing last changed
	names   []string  // sorted
	entries map[string]xent
	owners  []string // packages contributing anything below or the directory itself, sorted
	nsubdir int
}

// xent is one entry of an exchange directory: a subdirectory or a
// symlink into the package that owns the path.
type xent struct {
	dir    bool
	ino    uint64
	target string // symlink target, e.g. ../bash-amd64-5.2.15-3/bin/bash
	owner  string // full name of the owning package; "" for directories
}

// pkgInput is what building a tree needs to know about one package.
type pkgInput struct {
	name     pkgname.Name
	img      *image
	provides []string      // /ro-relative, e.g. bin/bash
	unions   []unionTarget // from the meta's runtime_union
}

type unionTarget struct {
	dir  string // in the image, e.g. out/lib/irssi/modules
	host string // full name of the host package
}

// inoAlloc hands out the inode numbers of virtual nodes. A node keeps its
// number across rescans as long as it is unchanged (same exchange
// directory path; same symlink path and target), so the kernel's caches
// of unchanged entries survive a rescan.
type inoAlloc struct {
	next func() uint64
	old  map[string]uint64 // key → ino from the previous tree
	now  map[string]uint64
}

func (a *inoAlloc) get(key string) uint64 {
	if ino, ok := a.now[key]; ok {
		return ino
	}
	ino, ok := a.old[key]
	if !ok {
		ino = a.next()
	}
	a.now[key] = ino
	return ino
}

// participants returns the packages whose provides feed the exchange
// directories, in priority order: per package name and architecture only
// the highest revision, ordered by <name>-<arch> (byte order). Earlier
// wins a conflict.
func participants(pkgs []pkgInput) []pkgInput {
	newest := map[string]pkgInput{}
	for _, p := range pkgs {
		u := p.name.Unqualified()
		if cur, ok := newest[u]; !ok || pkgname.Compare(cur.name, p.name) < 0 {
			newest[u] = p
		}
	}
	out := make([]pkgInput, 0, len(newest))
	for _, p := range newest {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b pkgInput) int { return cmp.Compare(a.name.Unqualified(), b.name.Unqualified()) })
	return out
}

// buildTree computes the snapshot for pkgs. prev (may be nil) supplies
// inode numbers and mtimes of unchanged nodes; now is the time stamp of
// directories whose listing changed.
func buildTree(pkgs []pkgInput, prev *tree, alloc *inoAlloc, now time.Time) *tree {
	t := &tree{
		pkgs:   make(map[string]*image, len(pkgs)),
		dirs:   map[string]*xdir{},
		unions: map[string]map[string][]*image{},
	}
	for _, p := range pkgs {
		full := p.name.String()
		t.pkgs[full] = p.img
		t.names = append(t.names, full)
		t.bytes += p.img.size
	}
	slices.Sort(t.names)

	parts := participants(pkgs)

	// The directories: every top-level exchange directory, always, plus
	// every provided directory (share/aclocal/, even empty) and every
	// proper prefix of a provided path. A directory beats a file of the
	// same path, whoever provides either.
	isDir := map[string]bool{}
	for _, d := range exchange.Dirs {
		isDir[d.Ro] = true
	}
	for _, p := range parts {
		for _, rel := range p.provides {
			if _, ok := exchange.ImagePath(rel); !ok {
				continue
			}
			d := path.Dir(rel)
			if dir, ok := exchange.IsDir(rel); ok {
				d = dir
			}
			for ; d != "." && !isDir[d]; d = path.Dir(d) {
				isDir[d] = true
			}
		}
	}
	for d := range isDir {
		t.dirs[d] = &xdir{path: d, entries: map[string]xent{}, ino: alloc.get("d\x00" + d)}
	}
	for d := range isDir {
		if parent := path.Dir(d); parent != "." {
			pd := t.dirs[parent]
			pd.entries[path.Base(d)] = xent{dir: true, ino: t.dirs[d].ino}
			pd.nsubdir++
		}
	}
	for _, p := range parts {
		full := p.name.String()
		for _, rel := range p.provides {
			img, ok := exchange.ImagePath(rel)
			if _, dir := exchange.IsDir(rel); !ok || dir || isDir[rel] {
				continue
			}
			parent := t.dirs[path.Dir(rel)]
			base := path.Base(rel)
			if _, taken := parent.entries[base]; taken {
				continue // an earlier package in priority order owns it
			}
			target := strings.Repeat("../", strings.Count(rel, "/")) + full + "/" + img
			parent.entries[base] = xent{
				ino:    alloc.get("l\x00" + rel + "\x00" + target),
				target: target,
				owner:  full,
			}
		}
	}
	// Owners of directories: every package that has an entry below, or
	// provides the directory itself or one below it (empty there).
	for _, p := range parts {
		for _, rel := range p.provides {
			dir, ok := exchange.IsDir(rel)
			if _, in := exchange.ImagePath(dir); !ok || !in {
				continue
			}
			for a := dir; a != "."; a = path.Dir(a) {
				t.dirs[a].owners = append(t.dirs[a].owners, p.name.String())
			}
		}
	}
	for d, xd := range t.dirs {
		xd.names = make([]string, 0, len(xd.entries))
		for name := range xd.entries {
			xd.names = append(xd.names, name)
		}
		slices.Sort(xd.names)
		t.nvirtual++
		for _, name := range xd.names {
			if e := xd.entries[name]; !e.dir {
				t.nvirtual++
				for a := d; a != "."; a = path.Dir(a) {
					t.dirs[a].owners = append(t.dirs[a].owners, e.owner)
				}
			}
		}
	}
	for _, xd := range t.dirs {
		slices.Sort(xd.owners)
		xd.owners = slices.Compact(xd.owners)
		xd.mtime = now
		if prev != nil {
			if pd := prev.dirs[xd.path]; pd != nil && pd.ino == xd.ino && sameListing(pd, xd) {
				xd.mtime = pd.mtime
			}
		}
	}

	// The root: top-level exchange directories and packages.
	t.root = xdir{path: ".", ino: rootIno, entries: map[string]xent{}}
	for _, d := range exchange.Dirs {
		t.root.entries[d.Ro] = xent{dir: true, ino: t.dirs[d.Ro].ino}
		t.root.nsubdir++
	}
	for _, full := range t.names {
		t.root.entries[full] = xent{dir: true, ino: t.pkgs[full].rootIno()}
		t.root.nsubdir++
	}
	t.root.names = make([]string, 0, len(t.root.entries))
	for name := range t.root.entries {
		t.root.names = append(t.root.names, name)
	}
	slices.Sort(t.root.names)
	t.root.mtime = now
	if prev != nil && sameListing(&prev.root, &t.root) {
		t.root.mtime = prev.root.mtime
	}

	// Runtime unions: of each plugin package name, the newest revision
	// whose host is in the store, plugins ordered by <name>-<arch>.
	for _, p := range parts {
		for _, u := range p.unions {
			host, ok := t.pkgs[u.host]
			if !ok || host == p.img {
				continue
			}
			if t.unions[u.host] == nil {
				t.unions[u.host] = map[string][]*image{}
			}
			if !slices.Contains(t.unions[u.host][u.dir], p.img) {
				t.unions[u.host][u.dir] = append(t.unions[u.host][u.dir], p.img)
			}
		}
	}
	return t
}

func sameListing(a, b *xdir) bool {
	if !slices.Equal(a.names, b.names) {
		return false
	}
	for name, ea := range a.entries {
		if b.entries[name] != ea {
			return false
		}
	}
	return true
}

// lookupPath resolves a /ro-relative exchange path ("bin/bash") in t.
func (t *tree) lookupPath(p string) (xent, bool) {
	d, ok := t.dirs[path.Dir(p)]
	if !ok {
		return xent{}, false
	}
	e, ok := d.entries[path.Base(p)]
	return e, ok
}

// unionPlugins returns the plugins merged into dir of host, or nil.
func (t *tree) unionPlugins(host, dir string) []*image {
	if m := t.unions[host]; m != nil {
		return m[dir]
	}
	return nil
}

// unionSources returns the images whose directory p (a path in an image,
// e.g. out/lib/irssi/modules/foo) is merged into host's, in priority
// order: host first, then the plugins of every runtime union directory
// that is p or above it. nil: p is in no runtime union. The merge is
// recursive: subdirectories of the same path merge too.
func (t *tree) unionSources(host, p string) []*image {
	m := t.unions[host]
	if len(m) == 0 {
		return nil
	}
	var dirs []string
	for d := range m {
		if p == d || strings.HasPrefix(p, d+"/") {
			dirs = append(dirs, d)
		}
	}
	if dirs == nil {
		return nil
	}
	slices.Sort(dirs)
	srcs := []*image{t.pkgs[host]}
	for _, d := range dirs {
		for _, plug := range m[d] {
			if !slices.Contains(srcs, plug) {
				srcs = append(srcs, plug)
			}
		}
	}
	return srcs
}
