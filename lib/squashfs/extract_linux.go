package squashfs

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mknod creates a device node, fifo or socket.
func mknod(path string, mode fs.FileMode, rdev uint64) error {
	var typ uint32
	switch mode.Type() {
	case fs.ModeDevice:
		typ = unix.S_IFBLK
	case fs.ModeDevice | fs.ModeCharDevice:
		typ = unix.S_IFCHR
	case fs.ModeNamedPipe:
		typ = unix.S_IFIFO
	case fs.ModeSocket:
		typ = unix.S_IFSOCK
	default:
		return &fs.PathError{Op: "mknod", Path: path, Err: syscall.EINVAL}
	}
	// The permission bits come with setAttrs, free of the umask.
	if err := unix.Mknod(path, typ|0o600, int(rdev)); err != nil {
		return &fs.PathError{Op: "mknod", Path: path, Err: err}
	}
	return nil
}

// setxattr sets one xattr on f or, if f is nil, on path without following
// a symlink.
func setxattr(path string, f *os.File, x Xattr) error {
	if f != nil {
		return unix.Fsetxattr(int(f.Fd()), x.Name, x.Value, 0)
	}
	return unix.Lsetxattr(path, x.Name, x.Value, 0)
}

// setMtime sets atime and mtime of f or, if f is nil, of path without
// following a symlink (as unsquashfs, atime is set to the mtime).
func setMtime(path string, f *os.File, mtime time.Time) error {
	t := unix.NsecToTimespec(mtime.UnixNano())
	ts := [2]unix.Timespec{t, t}
	if f != nil {
		// futimens(3): utimensat with a NULL path acts on the
		// descriptor. x/sys/unix offers only a /proc/self/fd detour.
		_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if errno != 0 {
			return &fs.PathError{Op: "futimens", Path: path, Err: errno}
		}
		return nil
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: path, Err: err}
	}
	return nil
}

// copyFileRange copies up to n bytes from src at srcOff to dst at dstOff
// in the kernel. It returns how many it copied; fewer than n, without an
// error, means the caller should copy the rest itself (the file systems
// or the kernel don't support it).
func copyFileRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) (int64, error) {
	done := int64(0)
	for done < n {
		k, err := unix.CopyFileRange(int(src.Fd()), &srcOff, int(dst.Fd()), &dstOff, int(min(n-done, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
				errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EIO) && done == 0 {
				return done, nil
			}
			return done, &fs.PathError{Op: "copy_file_range", Path: dst.Name(), Err: err}
		}
		if k == 0 {
			break // source shorter than it claims: the caller's read reports it
		}
		done += int64(k)
	}
	return done, nil
}
