package install

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

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
	st   *store.Store
	sums map[string]string
}

func loadEtcState(st *store.Store) (*etcState, error) {
	s := &etcState{st: st, sums: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(st.Dir(), etcSumsFile))
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

// save writes the sums through a temporary file in the store's staging
// folder, which the next lock holder empties: a kill leaves no
// ..etc-sums* file behind.
func (s *etcState) save(l *store.Lock) error {
	var keys []string
	for k := range s.sums {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(s.sums[k] + "  " + k + "\n")
	}
	return s.st.WriteFile(l, etcSumsFile, []byte(b.String()), 0o644)
}

// EtcSymlinkError says that a package's etc/ needs a folder where the
// root has a symlink (or another non-folder). The installer never writes
// through a symlink in the root's /etc: a package that ships etc/x as a
// symlink to a host folder must not let another package (or itself)
// write below it.
type EtcSymlinkError struct {
	Path   string // below the root, e.g. etc/ssh
	Target string // the symlink's target, e.g. /root/.ssh; empty if not a symlink
}

func (e *EtcSymlinkError) Error() string {
	if e.Target == "" {
		return fmt.Sprintf("/%s is not a folder; not written below", e.Path)
	}
	return fmt.Sprintf("/%s is a symlink to %s, not a folder; not followed, nothing written below it", e.Path, e.Target)
}

// etcWriter copies packages' etc/ trees into a root. Every file system
// call is relative to a folder descriptor opened one path component at
// a time with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) (O_NOFOLLOW
// where openat2 is missing): no symlink in the root's etc/, whoever put
// it there, is followed. Symlinks a package ships are created as they
// are (their targets may point anywhere; they are never followed while
// installing). It records what it changed, so that a failed install can
// be rolled back ([etcWriter.rollback]).
type etcWriter struct {
	root   int // O_DIRECTORY descriptor of the root
	state  *etcState
	notice func(string)
	undo   []etcUndo
}

// etcUndo is one change to roll back: a folder created, or a file placed
// where old was (nil: nothing).
type etcUndo struct {
	dir, name string
	mkdir     bool
	old       *etcEntry
}

// etcEntry is a file or symlink as read from the root.
type etcEntry struct {
	content []byte // file content or symlink target
	mode    fs.FileMode
}

func newEtcWriter(root string, state *etcState, notice func(string)) (*etcWriter, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	return &etcWriter{root: fd, state: state, notice: notice}, nil
}

func (w *etcWriter) close() { unix.Close(w.root) }

// copy copies the etc/ tree of the image into root/etc. A file that is
// missing, or that is as distri last installed it, gets the package's
// version; a file the user changed (or that was there before distri) is
// kept, and the package's version goes beside it as <file>.distri-new.
// notice is told about each such file.
func (w *etcWriter) copy(image string) error {
	r, err := squashfs.Open(image)
	if err != nil {
		return fmt.Errorf("etc of %s: %w", filepath.Base(image), err)
	}
	defer r.Close()
	pkg := strings.TrimSuffix(filepath.Base(image), ".squashfs")
	fsys := r.FS()
	err = fs.WalkDir(fsys, "etc", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "etc" && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			fd, err := w.openDir(p, uint32(info.Mode().Perm()|0o700), true)
			if err != nil {
				return err
			}
			unix.Close(fd)
			return nil
		}
		var content []byte
		var digest string
		switch {
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
		dir, name := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		dfd, err := w.openDir(dir, 0o755, true)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		cur, err := readEntry(dfd, name)
		if err != nil {
			return fmt.Errorf("/%s: %w", p, err)
		}
		switch curDigest := cur.digest(); {
		case cur == nil, curDigest == digest, curDigest == w.state.sums[p]:
			if curDigest != digest {
				if err := w.place(dfd, dir, name, cur, content, info.Mode()); err != nil {
					return fmt.Errorf("/%s: %w", p, err)
				}
			}
			w.state.sums[p] = digest
		default:
			old, err := readEntry(dfd, name+".distri-new")
			if err != nil {
				return fmt.Errorf("/%s.distri-new: %w", p, err)
			}
			if err := w.place(dfd, dir, name+".distri-new", old, content, info.Mode()); err != nil {
				return fmt.Errorf("/%s.distri-new: %w", p, err)
			}
			w.notice(fmt.Sprintf("/%s was changed locally and is kept; the version of %s is in /%s.distri-new", p, pkg, p))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("etc of %s: %w", pkg, err)
	}
	return nil
}

// openDir opens the folder rel (a clean slash path below the root, e.g.
// etc/ssh) one component at a time, creating missing ones with perm if
// create is set. Each component must be a folder, not a symlink to one.
func (w *etcWriter) openDir(rel string, perm uint32, create bool) (int, error) {
	fd, err := unix.Dup(w.root)
	if err != nil {
		return -1, err
	}
	done := ""
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." || c == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("path %q: bad component %q", rel, c)
		}
		next, err := openBeneath(fd, c)
		if errors.Is(err, unix.ENOENT) && create {
			if err := unix.Mkdirat(fd, c, perm); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, fmt.Errorf("mkdir /%s: %w", path.Join(done, c), err)
			} else if err == nil {
				w.undo = append(w.undo, etcUndo{dir: done, name: c, mkdir: true})
			}
			next, err = openBeneath(fd, c)
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			e := &EtcSymlinkError{Path: path.Join(done, c)}
			if t, rerr := readlinkat(fd, c); rerr == nil {
				e.Target = t
			}
			unix.Close(fd)
			return -1, e
		}
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("open /%s: %w", path.Join(done, c), err)
		}
		fd, done = next, path.Join(done, c)
	}
	return fd, nil
}

// openBeneath opens the folder name (one component) in dirfd without
// following a symlink, with openat2 where the kernel has it (5.6+).
func openBeneath(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOSYS):
			// Older kernels: one component with O_NOFOLLOW resolves
			// no symlink either.
			return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		return fd, err
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// readEntry reads what is at name in dirfd without following it: nil if
// nothing.
func readEntry(dirfd int, name string) (*etcEntry, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	perm := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		t, err := readlinkat(dirfd, name)
		if err != nil {
			return nil, err
		}
		return &etcEntry{content: []byte(t), mode: fs.ModeSymlink | perm}, nil
	case unix.S_IFREG:
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return nil, err
		}
		if st.Mode&unix.S_ISUID != 0 {
			perm |= fs.ModeSetuid
		}
		if st.Mode&unix.S_ISGID != 0 {
			perm |= fs.ModeSetgid
		}
		return &etcEntry{content: b, mode: perm}, nil
	}
	return &etcEntry{mode: fs.ModeIrregular | fs.FileMode(st.Mode)}, nil
}

// digest returns the digest of e as etcState records it; "" for nothing.
func (e *etcEntry) digest() string {
	switch {
	case e == nil:
		return ""
	case e.mode&fs.ModeSymlink != 0:
		return "symlink:" + string(e.content)
	case e.mode&fs.ModeIrregular != 0:
		return "other:" + e.mode.String()
	}
	return sha(e.content)
}

// place atomically puts a file (or, for a symlink mode, a symlink to
// string(content)) at name in dirfd (the folder dir below the root),
// where old was, and records the change for rollback.
func (w *etcWriter) place(dirfd int, dir, name string, old *etcEntry, content []byte, mode fs.FileMode) error {
	if old != nil && old.mode&fs.ModeIrregular != 0 {
		return fmt.Errorf("a %v is in the way", old.mode.Type())
	}
	if err := placeAt(dirfd, name, content, mode); err != nil {
		return err
	}
	w.undo = append(w.undo, etcUndo{dir: dir, name: name, old: old})
	return nil
}

// placeAt is its own temp-file-and-rename rather than renameio's: it
// works relative to dirfd (opened without following symlinks), which
// renameio, taking paths, cannot; a symlink planted in etc/ cannot
// redirect the write.
func placeAt(dirfd int, name string, content []byte, mode fs.FileMode) error {
	tmp := "." + name + ".distri-tmp"
	unix.Unlinkat(dirfd, tmp, 0)
	if mode&fs.ModeSymlink != 0 {
		if err := unix.Symlinkat(string(content), dirfd, tmp); err != nil {
			return err
		}
	} else {
		fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), tmp)
		_, err = f.Write(content)
		if err == nil {
			// Exactly the package's mode, without umask, with the
			// special bits.
			err = f.Chmod(mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			unix.Unlinkat(dirfd, tmp, 0)
			return err
		}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return err
	}
	return nil
}

// rollback undoes, newest first, every change the writer made: files it
// placed get back what was there (or go), folders it created go if
// empty. It returns the first error but tries every step.
func (w *etcWriter) rollback() error {
	var first error
	for _, u := range slices.Backward(w.undo) {
		fd, err := w.openDir(u.dir, 0, false)
		if err == nil {
			switch {
			case u.mkdir:
				err = unix.Unlinkat(fd, u.name, unix.AT_REMOVEDIR)
				if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
					err = nil // something else is in it now
				}
			case u.old == nil:
				err = unix.Unlinkat(fd, u.name, 0)
			default:
				err = placeAt(fd, u.name, u.old.content, u.old.mode)
			}
			unix.Close(fd)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) && first == nil {
			first = fmt.Errorf("roll back /%s: %w", path.Join(u.dir, u.name), err)
		}
	}
	w.undo = nil
	return first
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
