package install

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/squashfs"
	"distri.dev/distri/lib/store"
)

// etcSumsFile, in the store, records the sha256 of every /etc file as a
// package last installed it, to tell a file the user changed (never
// overwritten) from one distri put there (updated).
const etcSumsFile = ".etc-sums"

// etcState maps a path below the root (etc/…) to the digest of what
// distri installed there: the sha256 of a file, or "symlink:<target>".
type etcState struct {
	path string
	sums map[string]string
}

func loadEtcState(st *store.Store) (*etcState, error) {
	s := &etcState{path: filepath.Join(st.Dir(), etcSumsFile), sums: map[string]string{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		sum, p, ok := strings.Cut(l, "  ")
		if ok {
			s.sums[p] = sum
		}
	}
	return s, nil
}

func (s *etcState) save() error {
	var keys []string
	for k := range s.sums {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(s.sums[k] + "  " + k + "\n")
	}
	return store.WriteFileAtomic(s.path, []byte(b.String()), 0o644)
}

// copyEtc copies the etc/ tree of the image into root/etc. A file that
// is missing, or that is as distri last installed it, gets the package's
// version; a file the user changed (or that was there before distri) is
// kept, and the package's version goes beside it as <file>.distri-new.
// notice is told about each such file.
func copyEtc(image, root string, state *etcState, notice func(string)) error {
	r, err := squashfs.Open(image)
	if err != nil {
		return fmt.Errorf("etc of %s: %w", filepath.Base(image), err)
	}
	defer r.Close()
	fsys := r.FS()
	err = fs.WalkDir(fsys, "etc", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "etc" && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		dst := filepath.Join(root, filepath.FromSlash(p))
		info, err := d.Info()
		if err != nil {
			return err
		}
		var content []byte
		var digest string
		switch {
		case d.IsDir():
			if err := os.MkdirAll(dst, info.Mode().Perm()|0o700); err != nil {
				return err
			}
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(fsys, p)
			if err != nil {
				return err
			}
			content, digest = []byte(target), "symlink:"+target
		case d.Type().IsRegular():
			if content, err = fs.ReadFile(fsys, p); err != nil {
				return err
			}
			digest = sha(content)
		default:
			return nil // devices and the like do not belong in /etc
		}
		cur, err := currentDigest(dst)
		if err != nil {
			return err
		}
		switch {
		case cur == "", cur == digest, cur == state.sums[p]:
			if cur != digest {
				if err := place(dst, content, info.Mode()); err != nil {
					return err
				}
			}
			state.sums[p] = digest
		default:
			if err := place(dst+".distri-new", content, info.Mode()); err != nil {
				return err
			}
			notice(fmt.Sprintf("/%s was changed locally and is kept; the version of %s is in /%s.distri-new",
				p, strings.TrimSuffix(filepath.Base(image), ".squashfs"), p))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("etc of %s: %w", filepath.Base(image), err)
	}
	return nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// currentDigest returns the digest of what is at p now, or "" if nothing.
func currentDigest(p string) (string, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		return "symlink:" + t, nil
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		return sha(b), nil
	}
	return "other:" + fi.Mode().String(), nil
}

// place atomically puts a file (or, for a symlink mode, a symlink to
// string(content)) at p.
func place(p string, content []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := path.Join(filepath.Dir(p), "."+filepath.Base(p)+".distri-tmp")
	os.Remove(tmp)
	if mode&fs.ModeSymlink != 0 {
		if err := os.Symlink(string(content), tmp); err != nil {
			return err
		}
	} else {
		if err := os.WriteFile(tmp, content, mode.Perm()); err != nil {
			os.Remove(tmp)
			return err
		}
		// WriteFile's mode is subject to umask and drops special bits.
		if err := os.Chmod(tmp, mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
