package squashfs

import (
	"errors"
	"io"
	"io/fs"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// outFile is a file Extract writes. On Linux it is a bare descriptor:
// an *os.File costs an epoll registration attempt per open and fcntl
// calls per Fd, measurable over tens of thousands of small files.
type outFile struct {
	fd   int
	path string
}

// createOut creates path, which must not exist, for writing.
func createOut(path string, perm fs.FileMode) (*outFile, error) {
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &outFile{fd: fd, path: path}, nil
	}
}

func (f *outFile) err(op string, err error) error {
	return &fs.PathError{Op: op, Path: f.path, Err: err}
}

func (f *outFile) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pwrite(f.fd, p[n:], off+int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, f.err("write", err)
		}
		if k == 0 {
			return n, f.err("write", io.ErrShortWrite)
		}
		n += k
	}
	return n, nil
}

func (f *outFile) Truncate(size int64) error {
	if err := unix.Ftruncate(f.fd, size); err != nil {
		return f.err("truncate", err)
	}
	return nil
}

func (f *outFile) Chown(uid, gid int) error {
	if err := unix.Fchown(f.fd, uid, gid); err != nil {
		return f.err("chown", err)
	}
	return nil
}

func (f *outFile) Chmod(mode fs.FileMode) error {
	if err := unix.Fchmod(f.fd, unixMode(mode)); err != nil {
		return f.err("chmod", err)
	}
	return nil
}

func (f *outFile) Setxattr(x Xattr) error {
	return unix.Fsetxattr(f.fd, x.Name, x.Value, 0)
}

// SetMtime sets atime and mtime (as unsquashfs does, atime is set to the
// mtime). This is futimens(3): utimensat with a NULL path acts on the
// descriptor; x/sys/unix offers only a detour through /proc/self/fd.
func (f *outFile) SetMtime(mtime time.Time) error {
	ts := mtimeSpec(mtime)
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(f.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return f.err("futimens", errno)
	}
	return nil
}

// CopyFrom copies up to n bytes from the descriptor src at srcOff to f at
// off with copy_file_range, in the kernel. It returns how many it copied;
// fewer than n without an error means the file systems or the kernel
// can't, and the caller copies the rest itself.
func (f *outFile) CopyFrom(src int, srcOff, off, n int64) (int64, error) {
	done := int64(0)
	for done < n {
		k, err := unix.CopyFileRange(src, &srcOff, f.fd, &off, int(min(n-done, 1<<30)), 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if done == 0 && (errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
				errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM)) {
				return 0, nil
			}
			return done, f.err("copy_file_range", err)
		}
		if k == 0 {
			break // the image is shorter than it claims: the caller's read says so
		}
		done += int64(k)
	}
	return done, nil
}

func (f *outFile) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return f.err("close", err)
	}
	return nil
}

func mtimeSpec(mtime time.Time) [2]unix.Timespec {
	t := unix.NsecToTimespec(mtime.UnixNano())
	return [2]unix.Timespec{t, t}
}

// unixMode converts permission and setuid/setgid/sticky bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

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

// lsetxattr sets one xattr on path, not following a symlink.
func lsetxattr(path string, x Xattr) error {
	return unix.Lsetxattr(path, x.Name, x.Value, 0)
}

// lsetMtime sets atime and mtime of path, not following a symlink.
func lsetMtime(path string, mtime time.Time) error {
	ts := mtimeSpec(mtime)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: path, Err: err}
	}
	return nil
}
