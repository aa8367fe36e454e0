// Package earlyinit is what distri-init does as PID 1 in the initramfs:
// find the root file system, unlock it if it is encrypted, mount it and
// switch to it.
//
// # Steps
//
// Every step is one line on the console, prefixed "distri-init: ".
//
//  1. Mount devtmpfs on /dev, proc, sysfs, and tmpfs on /run.
//  2. Read the kernel command line (see initconfig.Cmdline for every
//     parameter) and /etc/distri/initramfs.json.
//  3. Load, by modalias, the drivers of every device present (coldplug)
//     or appearing (kernel uevents), in parallel; dm-crypt and its
//     ciphers as soon as a LUKS volume is asked for, the root's file
//     system before mounting it, and the rest of the config's list
//     (fuse, for the booted system) once the root is found.
//  4. For each rd.luks volume, wait for the device with that LUKS UUID,
//     ask for the passphrase on the console (echo off; three tries) or
//     read rd.luks.key, and map it with dm-crypt through device-mapper
//     ioctls as /dev/mapper/<name>.
//  5. Wait for root= (by UUID, PARTUUID, LABEL, PARTLABEL or path; a
//     LUKS volume found this way is unlocked as luks-<UUID>), at most
//     rd.timeout seconds.
//  6. Mount it on /sysroot (rootfstype=, rootflags=, ro/rw), move /dev,
//     /proc, /sys and /run into it, delete the initramfs's files to free
//     their memory, make it the root (mount --move, chroot) and exec its
//     init (init=, else /init, else /sbin/init).
//
// If a step fails, distri-init says what it was waiting for and why it
// gave up, then runs /bin/sh on the console if the initramfs has one,
// and otherwise powers off after ten seconds. When that shell exits
// after the root could not be found, unlocked, mounted or switched to,
// the boot is tried again from the wait for the root; after an earlier
// failure (no configuration, no module index) it powers off.
package earlyinit

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/blockdev"
	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/internal/pid1"
	"distri.dev/distri/lib/kmod"
)

// PowerOffDelay is how long a failed boot without a rescue shell shows
// its messages before powering off.
const PowerOffDelay = 10 * time.Second

// Options configure Run.
type Options struct {
	// Log gets one line per step; nil means a logger to /dev/console.
	Log *log.Logger
}

// booter is the state of one boot.
type booter struct {
	log         *log.Logger
	start       time.Time
	cmdline     initconfig.Cmdline
	cfg         initconfig.Config
	mods        *modules
	load, crypt group // modules of cfg.Load and cfg.Crypt
	devs        *blockdev.Set
	consolePath string
	noRescue    bool // the rescue shell failed to start
}

// ErrNotPID1 is returned by Run when the process is not PID 1: a stage
// mounts over /dev, /proc and /sys and powers the machine off when it
// fails, which only the kernel's init may do. Run refuses before it
// touches anything.
var ErrNotPID1 = errors.New("not PID 1: the kernel starts this stage as init; it mounts over /dev and powers off when it fails")

// Run boots: it finds, unlocks and mounts the root and execs its init.
// It returns only if booting failed and there was no way to power off,
// or at once with ErrNotPID1 when it is not PID 1; it never returns
// after a successful boot.
func Run(ctx context.Context, opts Options) error {
	if pid := os.Getpid(); pid != 1 {
		return fmt.Errorf("initramfs stage (pid %d): %w", pid, ErrNotPID1)
	}
	start := time.Now()
	mounted, mountErr := pid1.MountAll(pid1.APIMounts)
	b := &booter{log: opts.Log, start: start, devs: blockdev.New(""), consolePath: "/dev/console"}
	b.devs.NoneHint = "is the disk's driver in the initramfs?"
	if b.log == nil {
		b.log = pid1.NewLogger()
	}
	b.log.Printf("initramfs stage, mounted %s", strings.Join(mounted, " "))
	err := mountErr
	if err == nil {
		err = b.boot(ctx)
	}
	// boot returns only on failure.
	return b.fail(err)
}

func (b *booter) boot(ctx context.Context) error {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	b.cmdline, err = initconfig.ParseCmdline(string(raw))
	if err != nil {
		b.log.Printf("kernel command line: %v (ignored)", err)
	}
	b.log.Printf("command line: %s", b.cmdline)

	b.cfg, err = initconfig.ReadConfig("/" + initconfig.ConfigFile)
	if err != nil {
		return err
	}
	if release, _ := kmod.RunningRelease(); release != b.cfg.KernelRelease {
		b.log.Printf("warning: kernel %s, but the initramfs has modules for %s", release, b.cfg.KernelRelease)
	}
	idx, err := kmod.ReadIndex(filepath.Join("/", initconfig.ModulesDir, b.cfg.KernelRelease))
	if err != nil {
		return fmt.Errorf("module index: %w", err)
	}
	b.mods = newModules(b, idx)

	// Listen before coldplug so no device added meanwhile is missed.
	ue, err := openUevents()
	if err != nil {
		return err
	}
	defer ue.Close()
	go ue.Run(func(ev uevent) {
		if a := ev.Vars["MODALIAS"]; a != "" && ev.Action == "add" {
			b.mods.Modalias(a)
		}
		if ev.Vars["SUBSYSTEM"] == "block" {
			b.devs.Changed()
		}
	})
	n := b.mods.Coldplug()
	b.log.Printf("loading drivers for %d devices", n)
	if len(b.cmdline.LUKS) > 0 {
		b.crypt.Start(b.mods, b.cryptModules())
	}

	for {
		err := b.bootRoot(ctx) // returns only on failure
		if !b.rescue(err) {
			return err
		}
	}
}

// bootRoot finds, unlocks and mounts the root and switches to it.
func (b *booter) bootRoot(ctx context.Context) error {
	root, err := b.findRoot(ctx)
	if err != nil {
		return err
	}
	b.load.Start(b.mods, b.cfg.Load)
	if err := b.mountRoot(root); err != nil {
		return err
	}
	b.load.Wait() // the booted system cannot load them itself
	return b.switchRoot()
}

// rescue reports err and runs the rescue shell on the console, if the
// initramfs has one. It returns true when the shell exited (with any
// status): then the boot is tried again, e.g. after the shell loaded a
// missing driver or waited for a slow disk. Without a shell, or when it
// cannot start, it returns false and the boot fails.
func (b *booter) rescue(err error) bool {
	shell := "/" + initconfig.RescueShell
	if _, serr := os.Stat(shell); serr != nil {
		return false
	}
	b.log.Printf("boot failed: %v", err)
	b.log.Printf("starting rescue shell %s; exit it to try booting again", shell)
	if rerr := runOnConsole(shell); rerr != nil {
		b.log.Printf("rescue shell: %v", rerr)
		b.noRescue = true
		return false
	}
	b.log.Printf("rescue shell exited; trying to boot again")
	return true
}

// findRoot unlocks the rd.luks volumes and returns the root device.
func (b *booter) findRoot(ctx context.Context) (*blockdev.Device, error) {
	timeout := b.cmdline.WaitTimeout()
	var mapped []*blockdev.Device
	for _, l := range b.cmdline.LUKS {
		what := "LUKS volume UUID=" + l.UUID
		b.log.Printf("waiting for %s (rd.luks), up to %s", what, fmtTimeout(timeout))
		dev, err := b.devs.Wait(ctx, what, timeout, func(d *blockdev.Device) bool {
			return d.Info.Type == "crypto_LUKS" && strings.EqualFold(d.Info.UUID, l.UUID)
		})
		if err != nil {
			return nil, err
		}
		b.log.Printf("found %s", dev)
		m, err := b.unlock(ctx, dev, l.Name)
		if err != nil {
			return nil, err
		}
		mapped = append(mapped, m)
	}
	spec := b.cmdline.Root
	if spec.Kind == "" {
		if len(mapped) != 1 {
			return nil, errors.New("no root= on the kernel command line (and not exactly one rd.luks volume to use instead)")
		}
		return mapped[0], nil
	}
	what := "root " + spec.String()
	b.log.Printf("waiting for %s, up to %s", what, fmtTimeout(timeout))
	dev, err := b.devs.Wait(ctx, what, timeout, func(d *blockdev.Device) bool { return d.Matches(spec) })
	if err != nil {
		return nil, err
	}
	b.log.Printf("found %s", dev)
	if dev.Info.Type == "crypto_LUKS" {
		return b.unlock(ctx, dev, "luks-"+dev.Info.UUID)
	}
	return dev, nil
}

func (b *booter) cryptModules() []string {
	if len(b.cfg.Crypt) > 0 {
		return b.cfg.Crypt
	}
	return initconfig.CryptModules
}

func fmtTimeout(d time.Duration) string {
	if d < 0 {
		return "forever"
	}
	return d.String()
}

// mountRoot mounts dev on /sysroot.
func (b *booter) mountRoot(dev *blockdev.Device) error {
	fstype := b.cmdline.RootFSType
	if fstype == "" {
		fstype = dev.Info.Type
	}
	if fstype == "" {
		return fmt.Errorf("%s: unknown file system (set rootfstype=)", dev.Path)
	}
	var flags uintptr
	mode := "rw"
	if b.cmdline.ReadOnly {
		flags |= unix.MS_RDONLY
		mode = "ro"
	}
	// The file system's module, unless built in (e.g. squashfs).
	if _, err := b.mods.loader.Load(fstype); err != nil && !errors.Is(err, kmod.ErrNotFound) {
		b.log.Printf("module for %s: %v", fstype, err)
	}
	target := "/" + initconfig.SysrootDir
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev.Path, target, fstype, flags, b.cmdline.RootFlags); err != nil {
		return fmt.Errorf("mount %s (%s, %s) on %s: %w", dev.Path, fstype, mode, target, err)
	}
	b.log.Printf("mounted %s on %s (%s, %s)", dev.Path, target, fstype, mode)
	return nil
}

// fail reports err and then starts the rescue shell or powers off.
func (b *booter) fail(err error) error {
	b.log.Printf("boot failed: %v", err)
	shell := "/" + initconfig.RescueShell
	_, serr := os.Stat(shell)
	switch {
	case b.noRescue:
		b.log.Printf("powering off in %s", PowerOffDelay)
		time.Sleep(PowerOffDelay)
	case serr == nil:
		b.log.Printf("starting rescue shell %s; exit it to power off", shell)
		if rerr := runOnConsole(shell); rerr != nil {
			b.log.Printf("rescue shell: %v", rerr)
		}
	default:
		b.log.Printf("no rescue shell in the initramfs; powering off in %s", PowerOffDelay)
		time.Sleep(PowerOffDelay)
	}
	b.log.Printf("powering off")
	if perr := pid1.Final(pid1.PowerOff); perr != nil {
		return errors.Join(err, perr)
	}
	return err
}
