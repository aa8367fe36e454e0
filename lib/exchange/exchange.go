// Package exchange knows the exchange directories: the symlink farms
// /ro/bin, /ro/lib, /ro/include, /ro/share, … that merge every installed
// package, and which paths of a package image feed them.
//
// A package's bin/ feeds /ro/bin; its out/lib feeds /ro/lib, and so on
// for the other out/ directories, with out/ stripped. The directories are
// recursive: out/lib/pkgconfig/zlib.pc becomes /ro/lib/pkgconfig/zlib.pc.
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
// returns, sorted, the /ro-relative path of every non-directory entry
// (files and symlinks) under its exchange directories: the entries the
// package contributes to /ro/bin, /ro/lib and so on. A name that
// [CheckPath] refuses (a control character) is an error.
func Paths(fsys fs.FS) ([]string, error) {
	var paths []string
	for _, d := range Dirs {
		fi, err := fs.Lstat(fsys, d.Image)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the package has no such directory
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			continue // e.g. a symlink out/lib64 → lib: not a tree to merge
		}
		err = fs.WalkDir(fsys, d.Image, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != d.Image && !e.IsDir() {
				rel := path.Join(d.Ro, p[len(d.Image)+1:])
				if err := CheckPath(rel); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				paths = append(paths, rel)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// CheckPath returns an error unless p, an entry of a package's provides
// (e.g. bin/bash), is a clean relative path inside an exchange directory
// ([ImagePath]) whose components are file names: not empty, not . or ..,
// without control characters (a newline in a name corrupts the line-based
// files that list paths). fusefs makes /ro/<p> a symlink ../<pkg>/<image
// path>: a ".." in p would point it out of the package, and out of /ro.
func CheckPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") {
		return fmt.Errorf("provides %q: not a relative path", p)
	}
	for c := range strings.SplitSeq(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("provides %q: bad component %q", p, c)
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("provides %q: control character %q", p, r)
			}
		}
	}
	if _, ok := ImagePath(p); !ok || slices.ContainsFunc(Dirs, func(d Dir) bool { return d.Ro == p }) {
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
// returns true are returned, sorted by path.
func Shadows(pkgs []Provider, isNew func(full string) bool) []Shadow {
	byPath := map[string][]string{}
	for _, p := range pkgs {
		for _, rel := range slices.Compact(slices.Sorted(slices.Values(p.Provides))) {
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
