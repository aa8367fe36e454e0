package build

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ImportDebian lays out the extracted contents of a Debian binary package
// (src, holding usr/, etc/, lib/, …) in the distri layout under dest,
// which must not exist:
//
//   - usr/X and X go to out/X (so usr/bin/hello and bin/sh both end up in
//     out/bin); the same path from both is an error;
//   - etc/ goes to etc/;
//   - symlinks are kept. An absolute target is rewritten to a relative
//     one when the (mapped) target is part of this package, e.g.
//     lib64/ld-linux-x86-64.so.2 → /lib/x86_64-linux-gnu/ld-… becomes
//     out/lib64/ld-… → ../lib/x86_64-linux-gnu/ld-…, so the package works
//     wherever it is mounted (/ro/<full>/). Absolute targets outside the
//     package (e.g. /etc/alternatives/…) stay as they are and resolve in
//     the installed system;
//   - every program in out/bin and out/sbin gets an entry bin/X, for now a
//     symlink ../out/bin/X (../out/sbin/X); the wrappers that pin the
//     loader and library farm come with the sandbox builders. A program
//     that links to a bare name another package provides (gcc → gcc-12,
//     as → x86_64-linux-gnu-as) gets bin/X → /bin/<name> instead, which
//     the /ro/bin exchange directory resolves.
func ImportDebian(src, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("import: %s already exists", dest)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	mapPath := func(rel string) string {
		switch {
		case rel == "etc" || strings.HasPrefix(rel, "etc/"):
			return rel
		case rel == "usr":
			return "out"
		case strings.HasPrefix(rel, "usr/"):
			return "out/" + strings.TrimPrefix(rel, "usr/")
		}
		return "out/" + rel
	}
	type link struct{ at, target string }
	var links []link
	present := make(map[string]bool) // mapped paths of everything in the package
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		dst := filepath.Join(dest, mapPath(rel))
		present[mapPath(rel)] = true
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, fi.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			links = append(links, link{mapPath(rel), t})
			return nil
		case d.Type().IsRegular():
			if _, err := os.Lstat(dst); err == nil {
				return fmt.Errorf("import: %s: both /%s and /usr/%s exist", rel, strings.TrimPrefix(rel, "usr/"), strings.TrimPrefix(rel, "usr/"))
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.Rename(p, dst)
		}
		return nil // device nodes, fifos, sockets: not part of a package
	})
	if err != nil {
		return err
	}
	for _, l := range links {
		t := l.target
		if path.IsAbs(t) {
			mapped := mapPath(strings.TrimPrefix(path.Clean(t), "/"))
			if present[mapped] {
				var err error
				if t, err = filepath.Rel(path.Dir(l.at), mapped); err != nil {
					return err
				}
			}
		}
		dst := filepath.Join(dest, l.at)
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("import: %s exists twice (with and without usr/)", l.at)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	}
	return eachProgram(dest, func(rel, at string) error {
		target := "../" + rel
		// A link to a bare name another package provides (binutils'
		// as → x86_64-linux-gnu-as, gcc → gcc-12) dangles inside this
		// package: its entry goes through the exchange directory.
		if t, err := os.Readlink(filepath.Join(dest, rel)); err == nil && !strings.Contains(t, "/") {
			if _, err := os.Lstat(filepath.Join(dest, path.Dir(rel), t)); os.IsNotExist(err) {
				target = "/bin/" + t
			}
		}
		return os.Symlink(target, at)
	})
}
