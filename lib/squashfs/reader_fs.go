package squashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
)

// FS returns the image as an fs.FS. It also implements fs.ReadDirFS,
// fs.StatFS and fs.ReadLinkFS. Open and Stat follow symlinks inside the
// image; a symlink with an absolute target, or one that climbs above the
// root, does not resolve (fs.ErrNotExist), because the image alone cannot
// say what it points at. Files that Open returns implement io.ReaderAt
// and io.Seeker too.
func (r *Reader) FS() fs.FS { return imageFS{r} }

type imageFS struct{ r *Reader }

var (
	_ fs.ReadDirFS  = imageFS{}
	_ fs.StatFS     = imageFS{}
	_ fs.ReadLinkFS = imageFS{}

	_ fs.ReadDirFile = (*fsDir)(nil)
	_ io.ReaderAt    = (*fsFile)(nil)
	_ io.Seeker      = (*fsFile)(nil)
)

// maxSymlinkHops is Linux's limit on symlinks followed in one lookup.
const maxSymlinkHops = 40

// resolve walks name from the root. It follows symlinks in every
// component but the last, and in the last too when followLast is set.
func (f imageFS) resolve(op, name string, followLast bool) (Inode, error) {
	if !fs.ValidPath(name) {
		return 0, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fail := func(err error) (Inode, error) {
		return 0, &fs.PathError{Op: op, Path: name, Err: err}
	}
	dirs := []Inode{f.r.Root()} // the directories walked; the last is the current one
	var comps []string
	if name != "." {
		comps = strings.Split(name, "/")
	}
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..": // only from symlink targets: ValidPath rejects it in name
			if len(dirs) == 1 {
				return fail(fmt.Errorf("symlink climbs above the image root: %w", fs.ErrNotExist))
			}
			dirs = dirs[:len(dirs)-1]
			continue
		}
		e, err := f.r.lookup(dirs[len(dirs)-1], c)
		if err != nil {
			return fail(err)
		}
		if e.Type == fs.ModeSymlink && (len(comps) > 0 || followLast) {
			if hops++; hops > maxSymlinkHops {
				return fail(syscall.ELOOP)
			}
			target, err := f.r.Readlink(e.Inode)
			if err != nil {
				return fail(err)
			}
			if strings.HasPrefix(target, "/") {
				return fail(fmt.Errorf("symlink %q has an absolute target %q: %w", c, target, fs.ErrNotExist))
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		if len(comps) > 0 && e.Type != fs.ModeDir {
			return fail(syscall.ENOTDIR)
		}
		dirs = append(dirs, e.Inode)
	}
	return dirs[len(dirs)-1], nil
}

func (f imageFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	ino, err := f.resolve(op, name, follow)
	if err != nil {
		return nil, err
	}
	st, err := f.r.Stat(ino)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return fileStat{name: path.Base(name), st: st}, nil
}

func (f imageFS) Stat(name string) (fs.FileInfo, error) { return f.stat("stat", name, true) }

func (f imageFS) Lstat(name string) (fs.FileInfo, error) { return f.stat("lstat", name, false) }

func (f imageFS) ReadLink(name string) (string, error) {
	ino, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	target, err := f.r.Readlink(ino)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return target, nil
}

func (f imageFS) Open(name string) (fs.File, error) {
	ino, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	st, err := f.r.Stat(ino)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info := fileStat{name: path.Base(name), st: st}
	if st.Mode.IsDir() {
		return &fsDir{r: f.r, ino: ino, path: name, info: info}, nil
	}
	return &fsFile{r: f.r, ino: ino, path: name, info: info}, nil
}

func (f imageFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ino, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	entries, err := f.r.fsDirEntries(ino)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// fsDirEntries lists dir sorted by name, as fs.ReadDirFS requires.
// mksquashfs sorts listings already; a listing that isn't is sorted here.
func (r *Reader) fsDirEntries(dir Inode) ([]fs.DirEntry, error) {
	var entries []fs.DirEntry
	err := r.ReadDir(dir, 0, func(e DirEntry) bool {
		entries = append(entries, fsDirEntry{r: r, e: e})
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// fileStat is an fs.FileInfo. Sys returns the Stat.
type fileStat struct {
	name string
	st   Stat
}

func (s fileStat) Name() string       { return s.name }
func (s fileStat) Size() int64        { return s.st.Size }
func (s fileStat) Mode() fs.FileMode  { return s.st.Mode }
func (s fileStat) ModTime() time.Time { return s.st.Mtime }
func (s fileStat) IsDir() bool        { return s.st.Mode.IsDir() }
func (s fileStat) Sys() any           { return s.st }

type fsDirEntry struct {
	r *Reader
	e DirEntry
}

func (d fsDirEntry) Name() string      { return d.e.Name }
func (d fsDirEntry) IsDir() bool       { return d.e.Type.IsDir() }
func (d fsDirEntry) Type() fs.FileMode { return d.e.Type }
func (d fsDirEntry) String() string    { return fs.FormatDirEntry(d) }

func (d fsDirEntry) Info() (fs.FileInfo, error) {
	st, err := d.r.Stat(d.e.Inode)
	if err != nil {
		return nil, err
	}
	return fileStat{name: d.e.Name, st: st}, nil
}

// fsFile is an open file (anything but a directory). Read and Seek keep
// an offset; ReadAt does not use it.
type fsFile struct {
	r    *Reader
	ino  Inode
	path string
	info fileStat
	off  int64
}

func (f *fsFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *fsFile) Close() error               { return nil }

func (f *fsFile) ReadAt(p []byte, off int64) (int, error) {
	if !f.info.st.Mode.IsRegular() {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: syscall.EINVAL}
	}
	n, err := f.r.ReadAt(f.ino, p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &fs.PathError{Op: "read", Path: f.path, Err: err}
	}
	return n, err
}

func (f *fsFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil // the next Read reports EOF
	}
	return n, err
}

func (f *fsFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.info.st.Size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// fsDir is an open directory.
type fsDir struct {
	r       *Reader
	ino     Inode
	path    string
	info    fileStat
	entries []fs.DirEntry // read on the first ReadDir
	read    bool
}

func (d *fsDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *fsDir) Close() error               { return nil }

func (d *fsDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: syscall.EISDIR}
}

func (d *fsDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		entries, err := d.r.fsDirEntries(d.ino)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
		}
		d.entries, d.read = entries, true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n:n]
	d.entries = d.entries[n:]
	return out, nil
}
