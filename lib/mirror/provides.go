package mirror

import (
	"fmt"
	"io/fs"
	"slices"

	"distri.dev/distri/lib/exchange"
	"distri.dev/distri/lib/squashfs"
)

// exchangeDirs maps a directory of a package image to the exchange
// directory under /ro that merges it with the other packages' (DESIGN.md
// §1): the wrappers in bin/ and the programs of out/bin and out/sbin all
// appear in /ro/bin (/sbin is a link to /ro/bin); out/X appears as /ro/X.
var exchangeDirs = []struct{ image, ro string }{
	{"bin", "bin"},
	{"out/bin", "bin"},
	{"out/sbin", "bin"},
	{"out/lib", "lib"},
	{"out/lib64", "lib64"},
	{"out/libexec", "libexec"},
	{"out/include", "include"},
	{"out/share", "share"},
	{"out/gopath", "gopath"},
}

// Provides lists the paths, relative to /ro, that the package image fsys
// contributes to the exchange directories, e.g. bin/bash or
// lib/libz.so.1: every file and symlink below bin/, out/bin, out/sbin,
// out/lib, out/lib64, out/libexec, out/include, out/share and
// out/gopath, with out/ (and sbin) mapped away, and every empty
// directory there with a trailing slash (share/aclocal/), as
// exchange.PathsBelow walks them. The result is sorted and has no
// duplicates. A file name that makes a bad entry (a control character
// such as a newline: see exchange.CheckPath) is an error.
func Provides(fsys fs.FS) ([]string, error) {
	var out []string
	for _, d := range exchangeDirs {
		got, err := exchange.PathsBelow(fsys, d.image, d.ro)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// imageProvides opens the SquashFS image at p and returns [Provides].
func imageProvides(p string) ([]string, error) {
	r, err := squashfs.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	defer r.Close()
	prov, err := Provides(r.FS())
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", p, err)
	}
	return prov, nil
}
