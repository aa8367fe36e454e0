package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// archiveTime is the mtime of every entry of the archives written here:
// 2020-01-01 00:00:00 UTC, as seeded disk images use.
var archiveTime = time.Unix(fakeTime, 0).UTC()

// treeTar writes the tree at root to tw as `tar -C root -c .` would,
// deterministically: entries in lexical order, named ./…, every mtime
// archiveTime, owners as numeric ids from the tree (no user names), hard
// links as links. Extended attributes are not archived.
type treeTar struct {
	tw    *tar.Writer
	links map[[2]uint64]string // dev, ino → first name, for hard links
}

func newTreeTar(w io.Writer) *treeTar {
	return &treeTar{tw: tar.NewWriter(w), links: map[[2]uint64]string{}}
}

// addTree archives the tree at root.
func (t *treeTar) addTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := "./"
		if rel != "." {
			name = "./" + filepath.ToSlash(rel)
		}
		return t.addPath(name, p)
	})
}

// addPath archives the file system entry p (not following a symlink) as name.
func (t *treeTar) addPath(name, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("archive %s: no stat_t", p)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(fi.Mode().Perm()),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: archiveTime,
	}
	if fi.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		hdr.Typeflag = tar.TypeDir
		if name != "./" {
			hdr.Name += "/"
		}
	case m&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
	case m.IsRegular():
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := t.links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			break
		}
		if st.Nlink > 1 {
			t.links[key] = name
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = fi.Size()
	case m&fs.ModeDevice != 0:
		hdr.Typeflag = tar.TypeBlock
		if m&fs.ModeCharDevice != 0 {
			hdr.Typeflag = tar.TypeChar
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case m&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
	default:
		// Sockets have no place in an archive.
		return nil
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", p, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(t.tw, f); err != nil {
		return fmt.Errorf("archive %s: %w", p, err)
	}
	return nil
}

// addFile archives a regular file with content b, owned by root.
func (t *treeTar) addFile(name string, mode int64, b []byte) error {
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(b)), ModTime: archiveTime}); err != nil {
		return err
	}
	_, err := t.tw.Write(b)
	return err
}

// addSymlink archives a symlink owned by root.
func (t *treeTar) addSymlink(name, target string) error {
	return t.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: archiveTime})
}

func (t *treeTar) close() error { return t.tw.Close() }

// writeAtomic writes path through a temporary file in its folder, which
// replaces path only when write succeeded.
func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.CloseAtomicallyReplace()
}

// checkTree returns an error unless root is a directory.
func checkTree(root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New(root + " is not a directory")
	}
	return nil
}
