// Package loopdev mounts squashfs images through the kernel: the image
// file on a read-only, autoclearing loop device, mounted with the new
// mount API (fsopen, fsconfig, fsmount) as a detached mount. The caller
// attaches it to a directory ([Attach]) or opens files through it
// (distri-fuse's passthrough). No mount(8) or losetup(8) is run, so a
// mount costs a few system calls instead of two processes.
//
// The loop device clears itself: when the mount's last reference goes
// (its fd, every file opened through it, and the mount point if
// attached), the kernel unmounts the image and detaches the device.
package loopdev

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MountSquashfs mounts the squashfs image in f read-only (nosuid, nodev)
// and returns the detached mount's fd. label goes into the loop device's
// file name field, which losetup shows.
func MountSquashfs(f *os.File, label string) (int, error) {
	loop, path, err := attach(f, label)
	if err != nil {
		return -1, err
	}
	defer unix.Close(loop)
	fsfd, err := unix.Fsopen("squashfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen squashfs: %w", err)
	}
	defer unix.Close(fsfd)
	// A read-only superblock: the loop device is read-only, and the
	// block device is opened for writing otherwise.
	if err := unix.FsconfigSetFlag(fsfd, "ro"); err != nil {
		return -1, fmt.Errorf("fsconfig ro: %w", err)
	}
	if err := unix.FsconfigSetString(fsfd, "source", path); err != nil {
		return -1, fmt.Errorf("fsconfig source %s: %w", path, err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("mount %s (squashfs on %s): %w%s", f.Name(), path, err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w", f.Name(), err)
	}
	return mfd, nil
}

// Attach mounts the image file at image on the directory dir (read-only)
// and returns when it is there. Unmount it with unix.Unmount(dir, 0);
// the loop device goes with it.
func Attach(image, dir, label string) error {
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	defer f.Close()
	mfd, err := MountSquashfs(f, label)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s to %s: %w", image, dir, err)
	}
	return nil
}

// attach binds f to a free loop device, read-only and autoclearing, and
// returns the device's fd and path.
func attach(f *os.File, label string) (int, string, error) {
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("loop devices: %w", err)
	}
	defer unix.Close(ctl)
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], label)
	// Another process may take the free device between our asking and
	// configuring it, and a device whose autoclear is still tearing it
	// down is "free" but busy (GET_FREE then names it again and again):
	// ask again, backing off, for about three seconds in all.
	delay := 100 * time.Microsecond
	for range 40 {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return -1, "", fmt.Errorf("find a free loop device: %w", err)
		}
		p := fmt.Sprintf("/dev/loop%d", n)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", fmt.Errorf("open %s: %w", p, err)
		}
		err = unix.IoctlLoopConfigure(fd, &cfg)
		if err == nil {
			return fd, p, nil
		}
		unix.Close(fd)
		if !errors.Is(err, unix.EBUSY) {
			return -1, "", fmt.Errorf("configure %s for %s: %w", p, f.Name(), err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
	return -1, "", fmt.Errorf("configure a loop device for %s: %w", f.Name(), syscall.EBUSY)
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
