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
)

// OpenIndex returns the index of the release directory dir: depmod's
// files if dir has a modules.dep, else what [Scan] finds there.
//
// Scanning reads every module's .modinfo (about 1100 files for a Debian
// kernel), so with cacheDir set (e.g. /run/distri/kmod, on a tmpfs) the
// scanned index is kept there in depmod's format, in a directory named
// after the release and the identity (device, inode, change times) of
// dir, and later calls read that. Processes that race for it (the
// kernel runs many modprobes at once) take turns through a lock file
// there, so one scans and the others read. A cache that cannot be
// written is no error: the index is returned regardless.
func OpenIndex(dir, cacheDir string) (*Index, error) {
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
		return ReadIndex(dir)
	}
	if cacheDir == "" {
		return scanIndex(dir)
	}
	key, err := cacheKey(dir)
	if err != nil {
		return nil, err
	}
	cached := filepath.Join(cacheDir, key)
	if x, err := readIndex(cached, dir); err == nil {
		return x, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return scanIndex(dir)
	}
	if lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644); err == nil {
		defer lock.Close() // releases the lock
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX) == nil {
			// Another process may have written it while we waited.
			if x, err := readIndex(cached, dir); err == nil {
				return x, nil
			}
		}
	}
	x, err := scanIndex(dir)
	if err != nil {
		return nil, err
	}
	WriteIndex(x, cached) // best effort: a read-only /run only costs time
	return x, nil
}

func scanIndex(dir string) (*Index, error) {
	t, err := Scan(dir)
	if err != nil {
		return nil, err
	}
	return t.Index(), nil
}

// cacheKey names dir's cached index: its release (base name) and a hash
// of its path and identity, so a changed tree gets a new entry.
func cacheKey(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return "", &fs.PathError{Op: "stat", Path: abs, Err: err}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d.%d\x00%d.%d", abs, st.Dev, st.Ino,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	return fmt.Sprintf("%s-%x", filepath.Base(abs), h.Sum(nil)[:8]), nil
}

// WriteIndex writes x in depmod's format (modules.dep, modules.alias,
// modules.softdep, modules.builtin, modules.builtin.alias) into the new
// directory out, atomically: the files are written into a temporary
// directory next to it, which is then renamed. If out exists already it
// is left alone.
func WriteIndex(x *Index, out string) error {
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
			for _, n := range names {
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
