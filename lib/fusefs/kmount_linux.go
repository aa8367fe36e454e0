package fusefs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/loopdev"
)

// kernelMount is an image mounted read-only by the kernel's squashfs
// driver on a loop device, as a detached mount: it is attached to no
// directory in any mount namespace, so it shows up in no mount table and
// nobody but the daemon can reach it. Files opened through it are the
// backing files of FUSE passthrough: the kernel then reads them without
// a round trip through the daemon.
//
// The loop device is set to clear itself, so when the mount's last
// reference goes (the mount fd and every file opened through it), the
// kernel unmounts the image and detaches the loop device by itself.
type kernelMount struct {
	fd int // from fsmount(2)
}

// mountKernel mounts the image in f. name goes into the loop device's
// file name field, which losetup shows.
func mountKernel(f *os.File, name string) (*kernelMount, error) {
	// nosuid and nodev: what runs is decided by the FUSE mount's
	// attributes, the backing files only provide bytes.
	mfd, err := loopdev.MountSquashfs(f, "distri-fuse:"+name)
	if err != nil {
		return nil, err
	}
	return &kernelMount{fd: mfd}, nil
}

// open opens the regular file at p (relative to the image root) for
// reading. It refuses to follow symlinks or leave the mount: p was
// resolved component by component by the daemon already.
func (km *kernelMount) open(p string) (int, error) {
	fd, err := unix.Openat2(km.fd, p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOATIME,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.EPERM) {
		// O_NOATIME needs ownership or CAP_FOWNER.
		fd, err = unix.Openat2(km.fd, p, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		})
	}
	return fd, err
}

func (km *kernelMount) close() { unix.Close(km.fd) }
