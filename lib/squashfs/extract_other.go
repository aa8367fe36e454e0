//go:build !linux

package squashfs

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// Extract restores device nodes and xattrs on Linux only; elsewhere it
// reports them as not restorable.

func mknod(path string, mode fs.FileMode, rdev uint64) error {
	return &fs.PathError{Op: "mknod", Path: path, Err: errors.ErrUnsupported}
}

func setxattr(path string, f *os.File, x Xattr) error { return errors.ErrUnsupported }

func setMtime(path string, f *os.File, mtime time.Time) error {
	return os.Chtimes(path, mtime, mtime)
}

func copyFileRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) (int64, error) {
	return 0, nil
}
