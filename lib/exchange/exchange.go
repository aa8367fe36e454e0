// Package exchange knows the exchange directories: the symlink farms
// /ro/bin, /ro/lib, /ro/include, /ro/share, … that merge every installed
// package, and which paths of a package image feed them.
//
// A package's bin/ feeds /ro/bin; its out/lib feeds /ro/lib, and so on
// for the other out/ directories, with out/ stripped. The directories are
// recursive: out/lib/pkgconfig/zlib.pc becomes /ro/lib/pkgconfig/zlib.pc.
//
// # Provides
//
// What a package contributes is its provides, a list of /ro-relative
// paths: every file and symlink (bin/bash, lib/pkgconfig/zlib.pc), and
// every empty directory, written with a trailing slash (share/aclocal/).
// A directory that a package ships is thus provided even when it holds
// nothing: automake's share/aclocal is empty, and aclocal refuses to run
// without it. A non-empty directory needs no entry of its own, since the
// paths below it imply it; listing only the empty ones keeps the
// provides of existing packages as they were. Directories never
// conflict: /ro shows the union of every package's entries in them
// ([IsDir], [Shadows]).
package exchange

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"distri.dev/distri/lib/pkgname"
)

// Dir is one exchange directory.
type Dir struct {
	Image string // directory in the package image, e.g. out/lib
	Ro    string // its name under /ro, e.g. lib
}

// Dirs are the exchange directories: the original distri's (bin, lib,
// lib64, include, share, gopath, debug) plus sbin and libexec, which
// imported Debian packages need.
var Dirs = []Dir{
	{Image: "bin", Ro: "bin"},
	{Image: "out/sbin", Ro: "sbin"},
	{Image: "out/lib", Ro: "lib"},
	{Image: "out/lib64", Ro: "lib64"},
	{Image: "out/libexec", Ro: "libexec"},
	{Image: "out/include", Ro: "include"},
	{Image: "out/share", Ro: "share"},
	{Image: "out/gopath", Ro: "gopath"},
	{Image: "debug", Ro: "debug"},
}

// ImagePath maps a path relative to /ro (lib/libz.so.1) to the path in a
// package image that provides it (out/lib/libz.so.1). ok is false when p
// is not inside an exchange directory.
func ImagePath(p string) (imagePath string, ok bool) {
	for _, d := range Dirs {
		if p == d.Ro || strings.HasPrefix(p, d.Ro+"/") {
			return d.Image + p[len(d.Ro):], true
		}
	}
	return "", false
}

// Paths walks a package image (or its tree on disk, via os.DirFS) and
// returns, sorted, its provides: the /ro-relative path of every
// non-directory entry (files and symlinks) under its exchange
// directories, and of every empty directory there with a trailing slash
// (see the package doc). A name that [CheckPath] refuses (a control
// character) is an error.
func Paths(fsys fs.FS) ([]string, error) {
	var paths []string
	for _, d := range Dirs {
		got, err := PathsBelow(fsys, d.Image, d.Ro)
		if err != nil {
			return nil, err
		}
		paths = append(paths, got...)
	}
	slices.Sort(paths)
	return paths, nil
}

// PathsBelow returns the provides that the directory image of fsys
// (e.g. out/lib) contributes to the exchange directory ro (e.g. lib), in
// walk order, as [Paths] does for every exchange directory. An image
// without that directory, or with a symlink there (out/lib64 → lib),
// contributes nothing.
func PathsBelow(fsys fs.FS, image, ro string) ([]string, error) {
	fi, err := fs.Lstat(fsys, image)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // the package has no such directory
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, nil // e.g. a symlink out/lib64 → lib: not a tree to merge
	}
	var paths []string
	add := func(p, suffix string) error {
		rel := path.Join(ro, p[len(image)+1:]) + suffix
		if err := CheckPath(rel); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		paths = append(paths, rel)
		return nil
	}
	// WalkDir visits a directory's entries right after it: a directory
	// is empty when the next path visited is not below it.
	pending := ""
	err = fs.WalkDir(fsys, image, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == image {
			return nil
		}
		if pending != "" && !strings.HasPrefix(p, pending+"/") {
			if err := add(pending, "/"); err != nil {
				return err
			}
		}
		pending = ""
		if e.IsDir() {
			pending = p
			return nil
		}
		return add(p, "")
	})
	if err != nil {
		return nil, err
	}
	if pending != "" {
		if err := add(pending, "/"); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// IsDir reports whether the provides entry p names a directory
// (share/aclocal/) and returns its path without the slash.
func IsDir(p string) (dir string, ok bool) {
	return strings.CutSuffix(p, "/")
}

// CheckPath returns an error unless p, an entry of a package's provides
// (e.g. bin/bash), is a clean relative path inside an exchange directory
// ([ImagePath]) whose components are file names: not empty, not . or ..,
// without control characters (a newline in a name corrupts the line-based
// files that list paths). One trailing slash marks a directory
// (share/aclocal/); the exchange directory itself (share/) is refused
// like any other entry naming it. fusefs makes /ro/<p> a symlink
// ../<pkg>/<image path>: a ".." in p would point it out of the package,
// and out of /ro.
func CheckPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") {
		return fmt.Errorf("provides %q: not a relative path", p)
	}
	rel, _ := IsDir(p)
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("provides %q: bad component %q", p, c)
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("provides %q: control character %q", p, r)
			}
		}
	}
	if _, ok := ImagePath(rel); !ok || slices.ContainsFunc(Dirs, func(d Dir) bool { return d.Ro == rel }) {
		return fmt.Errorf("provides %q: not below an exchange directory", p)
	}
	return nil
}

// Provider is a package with the paths it provides, for [Shadows].
type Provider struct {
	Full     string   // full name, e.g. hello-amd64-2.12-1
	Provides []string // e.g. bin/hello
}

// Shadow is a path that two packages provide: /ro shows Winner's.
type Shadow struct {
	Path          string // e.g. bin/hello
	Winner, Loser string // full names
}

// Shadows returns the paths that more than one package of pkgs provides,
// by the rule distri-fuse serves /ro with: per <name>-<arch> only the
// highest revision takes part (pkgs should hold only those), and of two
// packages providing a path, the one whose <name>-<arch> sorts first
// (byte order) wins. Only shadows involving a package for which isNew
// returns true are returned, sorted by path. Directories (share/aclocal/)
// are merged, never shadowed, so two packages providing one are none.
func Shadows(pkgs []Provider, isNew func(full string) bool) []Shadow {
	byPath := map[string][]string{}
	for _, p := range pkgs {
		for _, rel := range slices.Compact(slices.Sorted(slices.Values(p.Provides))) {
			if _, dir := IsDir(rel); dir {
				continue
			}
			byPath[rel] = append(byPath[rel], p.Full)
		}
	}
	var out []Shadow
	for rel, fulls := range byPath {
		if len(fulls) < 2 || !slices.ContainsFunc(fulls, isNew) {
			continue
		}
		slices.SortFunc(fulls, func(a, b string) int { return strings.Compare(unqualified(a), unqualified(b)) })
		for _, l := range fulls[1:] {
			if isNew(fulls[0]) || isNew(l) {
				out = append(out, Shadow{Path: rel, Winner: fulls[0], Loser: l})
			}
		}
	}
	slices.SortFunc(out, func(a, b Shadow) int { return strings.Compare(a.Path+"\x00"+a.Loser, b.Path+"\x00"+b.Loser) })
	return out
}

// unqualified strips the version from a full name for ordering; a name
// that does not parse sorts as itself.
func unqualified(full string) string {
	if n, err := pkgname.Parse(full); err == nil {
		return n.Unqualified()
	}
	return full
}
