package fusefs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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
	loop, err := attachLoop(f, name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(loop.fd)
	fsfd, err := unix.Fsopen("squashfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen squashfs: %w", err)
	}
	defer unix.Close(fsfd)
	// A read-only superblock: the loop device is read-only, and the
	// block device is opened for writing otherwise.
	if err := unix.FsconfigSetFlag(fsfd, "ro"); err != nil {
		return nil, fmt.Errorf("fsconfig ro: %w", err)
	}
	if err := unix.FsconfigSetString(fsfd, "source", loop.path); err != nil {
		return nil, fmt.Errorf("fsconfig source %s: %w", loop.path, err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("mount %s (squashfs on %s): %w%s", f.Name(), loop.path, err, fsLog(fsfd))
	}
	// nosuid and nodev: what runs is decided by the FUSE mount's
	// attributes, the backing files only provide bytes.
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, fmt.Errorf("fsmount %s: %w", f.Name(), err)
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

type loopDev struct {
	fd   int
	path string
}

// attachLoop binds f to a free loop device, read-only and autoclearing.
func attachLoop(f *os.File, name string) (loopDev, error) {
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return loopDev{}, fmt.Errorf("loop devices: %w", err)
	}
	defer unix.Close(ctl)
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], "distri-fuse:"+name)
	// Another process may take the free device between our asking and
	// configuring it: then ask again.
	for range 20 {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return loopDev{}, fmt.Errorf("find a free loop device: %w", err)
		}
		p := fmt.Sprintf("/dev/loop%d", n)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return loopDev{}, fmt.Errorf("open %s: %w", p, err)
		}
		err = unix.IoctlLoopConfigure(fd, &cfg)
		if err == nil {
			return loopDev{fd: fd, path: p}, nil
		}
		unix.Close(fd)
		if !errors.Is(err, unix.EBUSY) {
			return loopDev{}, fmt.Errorf("configure %s for %s: %w", p, f.Name(), err)
		}
	}
	return loopDev{}, fmt.Errorf("configure a loop device for %s: %w", f.Name(), syscall.EBUSY)
}

// fsLog returns the kernel's messages about a failed mount, e.g.
// ": squashfs: Unable to read page...".
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}
