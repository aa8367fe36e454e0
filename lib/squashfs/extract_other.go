//go:build !linux

package squashfs

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// Elsewhere than Linux, Extract writes through *os.File and cannot
// restore device nodes or xattrs; it logs them as not restored.

type outFile struct{ *os.File }

func createOut(path string, perm fs.FileMode) (*outFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return &outFile{f}, nil
}

func (f *outFile) Setxattr(x Xattr) error { return errors.ErrUnsupported }

func (f *outFile) SetMtime(mtime time.Time) error { return os.Chtimes(f.Name(), mtime, mtime) }

func (f *outFile) CopyFrom(src int, srcOff, off, n int64) (int64, error) { return 0, nil }

func mknod(path string, mode fs.FileMode, rdev uint64) error {
	return &fs.PathError{Op: "mknod", Path: path, Err: errors.ErrUnsupported}
}

func lsetxattr(path string, x Xattr) error { return errors.ErrUnsupported }

func lsetMtime(path string, mtime time.Time) error { return os.Chtimes(path, mtime, mtime) }
