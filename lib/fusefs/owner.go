package fusefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/pkgname"
)

// ErrNoOwner is returned by Owner for paths that belong to no package,
// such as /ro itself.
var ErrNoOwner = errors.New("no owning package")

// Owner returns the package that provides p, a path in a mounted /ro or
// reached through symlinks into it (/bin/bash, /ro/lib/libz.so.1,
// /ro/zlib-amd64-1.3-4/out/lib). An exchange entry is a symlink into its
// owner's directory, so its owner is what /ro serves, conflicts resolved.
// For an exchange directory, Owner returns every package with entries
// below it, sorted.
func Owner(p string) ([]string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	// Resolve the directory, not the entry itself: /bin/bash must end
	// at the symlink /ro/bin/bash.
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", p, err)
	}
	full := filepath.Join(dir, filepath.Base(abs))
	if filepath.Base(abs) == "/" {
		full = dir
	}
	root := ""
	for a := full; ; a = filepath.Dir(a) {
		if _, err := unix.Lgetxattr(a, XattrStore, nil); err == nil {
			root = a
			break
		}
		if a == "/" {
			return nil, fmt.Errorf("owner of %s: %s is not in a distri /ro mount", p, full)
		}
	}
	rel, err := filepath.Rel(root, full)
	if err != nil || rel == "." {
		return nil, fmt.Errorf("owner of %s: %w", p, ErrNoOwner)
	}
	first, _, _ := strings.Cut(rel, "/")
	if pkgname.IsFull(first) {
		return []string{first}, nil
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", p, err)
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return nil, fmt.Errorf("owner of %s: %w", p, err)
		}
		for strings.HasPrefix(target, "../") {
			target = target[len("../"):]
		}
		pkg, _, _ := strings.Cut(target, "/")
		if !pkgname.IsFull(pkg) {
			return nil, fmt.Errorf("owner of %s: symlink to %q: %w", p, target, ErrNoOwner)
		}
		return []string{pkg}, nil
	case fi.IsDir():
		sz, err := unix.Lgetxattr(full, XattrOwner, nil)
		if err != nil {
			return nil, fmt.Errorf("owner of %s: %w", p, ErrNoOwner)
		}
		buf := make([]byte, sz)
		n, err := unix.Lgetxattr(full, XattrOwner, buf)
		if err != nil {
			return nil, fmt.Errorf("owner of %s: %w", p, ErrNoOwner)
		}
		return strings.Split(string(buf[:n]), "\n"), nil
	}
	return nil, fmt.Errorf("owner of %s: %w", p, ErrNoOwner)
}
