package kmod

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/pkgname"
)

// SystemCacheDirs are where the booted system's modprobe keeps scanned
// indexes, in the order [OpenIndex] tries them: /var/cache/distri/kmod
// survives reboots (distri-mkimage and distri-install write a kernel
// package's index there, see lib/install), /run/distri/kmod (a tmpfs) is
// for a system whose /var is read-only.
var SystemCacheDirs = []string{"/var/cache/distri/kmod", "/run/distri/kmod"}

// OpenIndex returns the index of the release directory dir: depmod's
// files if dir has a modules.dep, else what [Scan] finds there.
//
// Scanning reads every module's .modinfo (about 1100 files for a Debian
// kernel), so with cacheDirs given (e.g. [SystemCacheDirs]) the scanned
// index is kept in depmod's format in a directory named by [CacheKey],
// and later calls read that. The index is read from the first cache
// directory that has it; a scan is written to the first one that can be
// written (created if missing; a read-only or not writable one is
// skipped). Processes that race for it (the kernel runs many modprobes at
// once) take turns through a lock file there, so one scans and the
// others read. A cache that cannot be written is no error: the index is
// returned regardless.
func OpenIndex(dir string, cacheDirs ...string) (*Index, error) {
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
		return ReadIndex(dir)
	}
	if len(cacheDirs) == 0 {
		return scanIndex(dir)
	}
	key, err := CacheKey(dir)
	if err != nil {
		return nil, err
	}
	for _, c := range cacheDirs {
		if x, err := readIndex(filepath.Join(c, key), dir); err == nil {
			return x, nil
		}
	}
	var writable []string // the locked cache directory and those after it
	for i, c := range cacheDirs {
		lock, err := lockCache(c)
		if err != nil {
			continue // read-only or not ours: the next one
		}
		defer lock.Close() // releases the lock
		// Another process may have written it while we waited.
		if x, err := readIndex(filepath.Join(c, key), dir); err == nil {
			return x, nil
		}
		writable = cacheDirs[i:]
		break
	}
	x, err := scanIndex(dir)
	if err != nil {
		return nil, err
	}
	for _, c := range writable { // best effort: a full disk only costs time
		if WriteCache(x, c, key) == nil {
			break
		}
	}
	return x, nil
}

// lockCache creates cacheDir if missing and returns its lock file,
// locked; an error means cacheDir cannot be written. A lock that cannot
// be taken is no error (the file is returned unlocked).
func lockCache(cacheDir string) (*os.File, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	return lock, nil
}

// WriteCache writes x into cacheDir (created if missing) under key, as
// [OpenIndex] finds it: [writeIndex] into cacheDir/key.
func WriteCache(x *Index, cacheDir, key string) error {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return err
	}
	return writeIndex(x, filepath.Join(cacheDir, key))
}

func scanIndex(dir string) (*Index, error) {
	t, err := Scan(dir)
	if err != nil {
		return nil, err
	}
	return t.Index(), nil
}

// CacheKey names the cached index of the release directory dir.
//
// In a booted distri system /lib/modules/<release> is the exchange
// directory /ro/lib/modules/<release>, whose files are symlinks into the
// kernel package, e.g. modules.order ->
// ../../../linux-image-6.1.0-56-cloud-amd64-amd64-6.1.192-2-1/out/lib/modules/6.1.0-56-cloud-amd64/modules.order.
// A package is immutable and its full name says which one it is, while
// the exchange directory's inode and times are distri-fuse's (its mtime
// is the time of distri-fuse's first scan, new at every boot). So when
// dir's modules.order and modules.builtin (those that exist; at least
// one) are symlinks that resolve to
// <somewhere>/<full>/out/lib/modules/<release>/<the same name>, with
// <full> a full package name and the same for both, the key is
// [PackageKey](release, full). Modules that another package adds to the
// same release's exchange directory do not change that key (no distri
// package does so).
//
// Otherwise (depmod-less trees copied or extracted somewhere) the key is
// the release and a hash of dir's absolute path, device, inode and
// change times, so that a changed tree gets a new entry.
func CacheKey(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	release := filepath.Base(abs)
	if full := kernelPackage(abs, release); full != "" {
		return PackageKey(release, full), nil
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return "", &fs.PathError{Op: "stat", Path: abs, Err: err}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d.%d\x00%d.%d", abs, st.Dev, st.Ino,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	return fmt.Sprintf("%s-%x", release, h.Sum(nil)[:8]), nil
}

// PackageKey is the cache key of the modules of release that the kernel
// package full provides: <release>@<full>, e.g.
// 6.1.0-56-cloud-amd64@linux-image-6.1.0-56-cloud-amd64-amd64-6.1.192-2-1.
func PackageKey(release, full string) string {
	return release + "@" + full
}

// kernelPackage returns the full name of the package that the release
// directory dir's files are symlinks into, or "" (see [CacheKey]).
func kernelPackage(dir, release string) string {
	var full string
	for _, name := range []string{"modules.order", "modules.builtin"} {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || fi.Mode().Type() != fs.ModeSymlink {
			return ""
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return ""
		}
		pkgDir, ok := strings.CutSuffix(target, "/out/lib/modules/"+release+"/"+name)
		if !ok {
			return ""
		}
		f := filepath.Base(pkgDir)
		if !pkgname.IsFull(f) || (full != "" && f != full) {
			return ""
		}
		full = f
	}
	return full
}

// writeIndex writes x in depmod's format (modules.dep, modules.alias,
// modules.softdep, modules.builtin, modules.builtin.alias) into the new
// directory out, atomically: the files are written into a temporary
// directory next to it, which is then renamed. If out exists already it
// is left alone.
func writeIndex(x *Index, out string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".tmp-"+filepath.Base(out)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // nothing left after the rename
	names := slices.Sorted(maps.Keys(x.Path))
	files := map[string]func(w *bufio.Writer){
		"modules.dep": func(w *bufio.Writer) {
			for _, n := range names {
				deps := make([]string, 0, len(x.Deps[n]))
				for _, d := range x.Deps[n] {
					if p, ok := x.Path[d]; ok {
						d = p
					}
					deps = append(deps, d)
				}
				fmt.Fprintf(w, "%s: %s\n", x.Path[n], strings.Join(deps, " "))
			}
		},
		"modules.alias": func(w *bufio.Writer) {
			for _, a := range x.Aliases {
				fmt.Fprintf(w, "alias %s %s\n", a.Pattern, a.Module)
			}
		},
		"modules.softdep": func(w *bufio.Writer) {
			// Every module's, not only those in Path: a depmod index
			// may give softdeps to built-in modules, which Needs follows.
			for _, n := range slices.Sorted(maps.Keys(x.Softdeps)) {
				if sd := x.Softdeps[n]; len(sd) > 0 {
					fmt.Fprintf(w, "softdep %s pre: %s\n", n, strings.Join(sd, " "))
				}
			}
		},
		"modules.builtin": func(w *bufio.Writer) {
			for _, n := range slices.Sorted(maps.Keys(x.Builtin)) {
				fmt.Fprintf(w, "%s.ko\n", n)
			}
		},
		"modules.builtin.alias": func(w *bufio.Writer) {
			for _, a := range slices.Sorted(maps.Keys(x.BuiltinAliases)) {
				for _, m := range x.BuiltinAliases[a] {
					fmt.Fprintf(w, "alias %s %s\n", a, m)
				}
			}
		},
	}
	for name, write := range files {
		f, err := os.Create(filepath.Join(tmp, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		write(w)
		err = errors.Join(w.Flush(), f.Close())
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		if _, serr := os.Stat(filepath.Join(out, "modules.dep")); serr == nil {
			return nil // written by someone else meanwhile
		}
		return err
	}
	return nil
}
