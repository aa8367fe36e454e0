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
	"io/fs"
	"path"
	"slices"
	"strings"
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
// package contributes to /ro/bin, /ro/lib and so on.
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
				paths = append(paths, path.Join(d.Ro, p[len(d.Image)+1:]))
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
