package fusefs

import (
	"io/fs"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/squashfs"
)

// unixMode converts a Go file mode to st_mode bits.
func unixMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= syscall.S_ISVTX
	}
	return mode | typeBits(m)
}

// typeBits returns the S_IFMT bits of m.
func typeBits(m fs.FileMode) uint32 {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return syscall.S_IFDIR
	case t&fs.ModeSymlink != 0:
		return syscall.S_IFLNK
	case t&fs.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case t&fs.ModeSocket != 0:
		return syscall.S_IFSOCK
	case t&fs.ModeCharDevice != 0:
		return syscall.S_IFCHR
	case t&fs.ModeDevice != 0:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

// fuseRdev encodes a device number for the FUSE protocol, which carries
// the kernel's 32-bit new_encode_dev format.
func fuseRdev(rdev uint64) uint32 {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

func setTimes(out *fuse.Attr, t time.Time) {
	sec, nsec := uint64(t.Unix()), uint32(t.Nanosecond())
	out.Atime, out.Mtime, out.Ctime = sec, sec, sec
	out.Atimensec, out.Mtimensec, out.Ctimensec = nsec, nsec, nsec
}

// imageAttr fills out from a squashfs inode of img.
func imageAttr(out *fuse.Attr, img *image, st squashfs.Stat) {
	out.Ino = img.ino(st.Ino)
	out.Mode = unixMode(st.Mode)
	if img.superseded.Load() && st.Mode.IsRegular() {
		// Only the newest revision runs with privileges: the kernel
		// honours the mode bits the daemon reports.
		out.Mode &^= syscall.S_ISUID | syscall.S_ISGID
	}
	out.Nlink = st.Nlink
	out.Uid, out.Gid = st.Uid, st.Gid
	out.Size = uint64(st.Size)
	if st.Mode.IsRegular() {
		// 512-byte blocks, as the kernel's squashfs counts them: du
		// and ls -s see the files' sizes.
		out.Blocks = (uint64(st.Size) + 511) / 512
	}
	out.Rdev = fuseRdev(st.Rdev)
	out.Blksize = 4096
	setTimes(out, st.Mtime)
}

// dirAttr fills out for a virtual directory.
func dirAttr(out *fuse.Attr, ino uint64, d *xdir) {
	out.Ino = ino
	out.Mode = syscall.S_IFDIR | 0o755
	out.Nlink = uint32(2 + d.nsubdir)
	out.Size = 4096
	out.Blksize = 4096
	setTimes(out, d.mtime)
}

// linkAttr fills out for a virtual symlink.
func linkAttr(out *fuse.Attr, ino uint64, target string, mtime time.Time) {
	out.Ino = ino
	out.Mode = syscall.S_IFLNK | 0o777
	out.Nlink = 1
	out.Size = uint64(len(target))
	out.Blksize = 4096
	setTimes(out, mtime)
}

// getxattr answers a getxattr for name from xs, the way getxattr(2)
// does: the size when dest is empty, ERANGE when it is too small.
func getxattr(xs []squashfs.Xattr, name string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range xs {
		if x.Name != name {
			continue
		}
		if len(dest) < len(x.Value) {
			return uint32(len(x.Value)), syscall.ERANGE
		}
		return uint32(copy(dest, x.Value)), 0
	}
	return 0, noXattr(name)
}

// unsupportedXattrs are attributes the images cannot carry (squashfs
// stores only the user, trusted and security namespaces) and that ls -l
// asks for of every entry: the SELinux label and POSIX ACLs.
var unsupportedXattrs = map[string]bool{
	"security.selinux":         true,
	"system.posix_acl_access":  true,
	"system.posix_acl_default": true,
}

// noXattr is the error for an attribute a node does not have: ENODATA,
// but EOPNOTSUPP for the unsupportedXattrs, as the kernel's squashfs
// answers. ls -l asks for the SELinux label and the ACL of every entry, a
// round trip each (the kernel caches no xattrs, and ACLs only until it
// forgets the inode, which a cold walk has); after EOPNOTSUPP (not
// supported here) it stops asking for the rest of the file system, after
// ENODATA it does not. The kernel passes EOPNOTSUPP on and keeps asking
// for other attributes (ENOSYS would make it stop asking for any,
// security.capability included).
func noXattr(name string) syscall.Errno {
	if unsupportedXattrs[name] {
		return syscall.EOPNOTSUPP
	}
	return syscall.ENODATA
}

// listxattr answers a listxattr from xs.
func listxattr(xs []squashfs.Xattr, dest []byte) (uint32, syscall.Errno) {
	var sb strings.Builder
	for _, x := range xs {
		sb.WriteString(x.Name)
		sb.WriteByte(0)
	}
	if len(dest) < sb.Len() {
		return uint32(sb.Len()), syscall.ERANGE
	}
	return uint32(copy(dest, sb.String())), 0
}
