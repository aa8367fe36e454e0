package fstab

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/blockdev"
	"distri.dev/distri/lib/internal/pid1"
)

// DefaultDeviceTimeout is how long MountAll waits in total for devices
// that are not there yet (virtio disks may appear after init starts).
const DefaultDeviceTimeout = 5 * time.Second

// Options configure MountAll.
type Options struct {
	// Root is prepended to every mount point (and to the source of bind
	// mounts): "/" or "" for the running system, a directory in tests.
	Root string
	// Path is the fstab to read, default /etc/fstab. A missing file is
	// no error: there is nothing to mount.
	Path string
	// Log gets a line for every entry mounted, skipped or failed; nil
	// means log.Default().
	Log *log.Logger
	// DeviceTimeout bounds the wait for devices, shared by all entries
	// (so a system with three missing disks waits once, not three
	// times); 0 means DefaultDeviceTimeout.
	DeviceTimeout time.Duration
	// SysBlock is where block devices are listed, default
	// /sys/class/block.
	SysBlock string
}

// Mounted is what MountAll mounted and swapped on, for UnmountAll.
type Mounted struct {
	log  *log.Logger
	done []active
}

type active struct {
	target string // the mount point, or the swap device
	swap   bool
}

// Targets returns the mount points and swap devices MountAll set up, in
// order.
func (m *Mounted) Targets() []string {
	var out []string
	for _, a := range m.done {
		out = append(out, a.target)
	}
	return out
}

// MountAll mounts the entries of the fstab in file order, as mount -a
// and swapon -a do: noauto entries and the root ("/", which the
// initramfs mounted) are skipped, mount points that are already
// mounted are left alone, missing mount points are created. Every entry
// gets a log line. An entry that fails is logged with its line, device
// and error, and the rest are still mounted; MountAll then returns the
// failures of the entries that are not nofail (and the lines that could
// not be parsed, or the error reading the file), joined; all of them are
// logged already. Unmount with UnmountAll.
func MountAll(ctx context.Context, opts Options) (*Mounted, error) {
	if opts.Path == "" {
		opts.Path = "/etc/fstab"
	}
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Log == nil {
		opts.Log = log.Default()
	}
	if opts.DeviceTimeout == 0 {
		opts.DeviceTimeout = DefaultDeviceTimeout
	}
	m := &Mounted{log: opts.Log}
	f, err := os.Open(opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		opts.Log.Printf("FAILED: %v; nothing mounted from it", err)
		return m, err
	}
	entries, perr := Parse(f, opts.Path)
	f.Close()
	var errs []error
	if perr != nil {
		errs = append(errs, perr)
		lines := []error{perr}
		if j, ok := perr.(interface{ Unwrap() []error }); ok {
			lines = j.Unwrap()
		}
		for _, err := range lines {
			opts.Log.Printf("FAILED: %v; line ignored", err)
		}
	}
	mt := &mounter{opts: opts, devs: blockdev.New(opts.SysBlock), deadline: time.Now().Add(opts.DeviceTimeout)}
	for _, e := range entries {
		if e.Mount.NoAuto || (!e.Swap() && e.File == "/") {
			continue
		}
		a, what, err := mt.mount(ctx, e)
		switch {
		case err == nil:
			opts.Log.Printf("%s", what)
			if a != nil {
				m.done = append(m.done, *a)
			}
		case e.Mount.NoFail:
			opts.Log.Printf("%s:%d: not mounted (nofail): %v", opts.Path, e.Line, err)
		default:
			err = fmt.Errorf("%s:%d: %w", opts.Path, e.Line, err)
			opts.Log.Printf("FAILED: %v; booting on", err)
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}

var errNoFSType = errors.New("unknown file system")

type mounter struct {
	opts     Options
	devs     *blockdev.Set
	deadline time.Time
}

// mount mounts (or swaps on) one entry. It returns what to undo at
// shutdown (nil if nothing was done) and a line saying what it did.
func (mt *mounter) mount(ctx context.Context, e Entry) (*active, string, error) {
	src, fstype := e.Spec, e.Type
	var info string
	if isDevice(e.Spec) {
		spec, err := parseSpec(e.Spec)
		if err != nil {
			return nil, "", err
		}
		d, err := mt.find(ctx, spec)
		if err != nil {
			return nil, "", err
		}
		src = d.Path
		if d.Path != e.Spec {
			info = " (" + e.Spec + ")"
		}
		if fstype == "auto" {
			if d.Info.Type == "" || d.Info.Type == "crypto_LUKS" {
				return nil, "", fmt.Errorf("type auto: %s: %w (want ext4, squashfs or swap; name the type)", d, errNoFSType)
			}
			fstype = d.Info.Type
		}
	} else if fstype == "auto" {
		return nil, "", fmt.Errorf("type auto needs a device to probe, not %q", e.Spec)
	}
	if e.Swap() {
		if err := swapon(src, e.Mount.SwapFlags); err != nil {
			return nil, "", fmt.Errorf("swapon %s%s: %w", src, info, err)
		}
		return &active{target: src, swap: true}, "swap on " + src + info, nil
	}

	target := filepath.Join(mt.opts.Root, e.File)
	if pid1.IsMountpoint(target) {
		return nil, target + " is already mounted; skipped " + e.Spec, nil
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, "", fmt.Errorf("mount point for %s%s: %w", src, info, err)
	}
	if e.Mount.Flags&unix.MS_BIND != 0 {
		src = filepath.Join(mt.opts.Root, e.Spec)
	}
	var err error
	for t := range strings.SplitSeq(fstype, ",") {
		fstype = t
		if err = unix.Mount(src, target, t, e.Mount.Flags, e.Mount.Data); err == nil {
			break
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("mount %s%s on %s (%s, %s): %w", src, info, target, e.Type, e.Options, err)
	}
	if e.Mount.Flags&unix.MS_BIND != 0 && e.Mount.Flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
		// A bind mount ignores the other flags; a remount applies them.
		if err := unix.Mount("", target, "", e.Mount.Flags|unix.MS_REMOUNT, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return nil, "", fmt.Errorf("remount bind mount %s with %s: %w", target, e.Options, err)
		}
	}
	mode := "rw"
	if e.Mount.Flags&unix.MS_RDONLY != 0 {
		mode = "ro"
	}
	return &active{target: target}, fmt.Sprintf("mounted %s%s on %s (%s, %s)", src, info, target, fstype, mode), nil
}

func swapon(dev string, flags int) error {
	p, err := unix.BytePtrFromString(dev)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), uintptr(flags), 0); errno != 0 {
		return errno
	}
	return nil
}

func swapoff(dev string) error {
	p, err := unix.BytePtrFromString(dev)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// UnmountAll undoes MountAll in reverse order: it unmounts each mount
// point (detaching it if it is busy) and swaps off each swap area,
// logging each step. It returns what failed, joined.
func (m *Mounted) UnmountAll() error {
	var errs []error
	for _, a := range slices.Backward(m.done) {
		if a.swap {
			if err := swapoff(a.target); err != nil {
				err = fmt.Errorf("swapoff %s: %w", a.target, err)
				m.log.Printf("%v", err)
				errs = append(errs, err)
				continue
			}
			m.log.Printf("swap off %s", a.target)
			continue
		}
		err := unix.Unmount(a.target, 0)
		if errors.Is(err, unix.EBUSY) {
			// Still in use (a process that would not die): detach it so
			// it goes when the last user does.
			if derr := unix.Unmount(a.target, unix.MNT_DETACH); derr == nil {
				m.log.Printf("unmount %s: %v; detached it", a.target, err)
				errs = append(errs, fmt.Errorf("unmount %s: %w (detached)", a.target, err))
				continue
			}
		}
		if err != nil {
			err = fmt.Errorf("unmount %s: %w", a.target, err)
			m.log.Printf("%v", err)
			errs = append(errs, err)
			continue
		}
		m.log.Printf("unmounted %s", a.target)
	}
	m.done = nil
	return errors.Join(errs...)
}
