// Package sysinit is what distri-init does as PID 1 of the booted
// system: mount what a system needs, serve /ro with distri-fuse, set the
// hostname, then exec systemd if the system has it, or else supervise a
// console session itself.
//
// # Steps
//
// Every step is one line on the console, prefixed "distri-init: ".
//
//  1. Mount /proc, /sys, /dev (with /dev/pts and /dev/shm), /run and
//     /tmp, those that the initramfs did not hand over.
//  2. Start distri-fuse (distri.fuse=, default /distri-fuse) serving the
//     store /roimg on /ro, and wait until it says the mount is ready.
//     Without the binary or the store, say so and go on. It runs with
//     oom_score_adj -1000, and if it dies, the dead mount is detached
//     and a new distri-fuse mounts /ro again (see fuse.go).
//  3. Set the hostname from /etc/hostname.
//  4. If systemd is installed (the newest /ro/systemd-<arch>-*/, else
//     /lib/systemd/systemd), exec it; it mounts /etc/fstab itself.
//  5. Otherwise make distri-init the kernel's modprobe
//     (/run/distri/modprobe, lib/modprobe), so that modules load on
//     demand (e.g. vfat for /boot), and mount the entries of /etc/fstab
//     (lib/fstab: devices by UUID=, LABEL=, PARTUUID=, PARTLABEL= or
//     path, waited for up to 5s in all; failures are logged and boot
//     goes on; the root line is skipped) and swap on its swap areas.
//  6. In the background, load the drivers of the devices by modalias
//     (lib/kmod, as the initramfs does for its own) and bring up the
//     network (lib/netconf: lo, DHCPv4 on each Ethernet interface, up
//     to 8 s; /etc/resolv.conf unless someone else wrote it; leases
//     renewed until shutdown). The login does not wait for it.
//  7. Supervise: run a login (/bin/login, else a shell, /bin/sh) on
//     /dev/console, reap orphaned processes, and shut down in order
//     (stop processes, unmount the fstab entries in reverse order, stop
//     distri-fuse, unmount the rest, sync, power off or reboot) when the
//     console session ends (power off), on SIGTERM or SIGUSR2 (power
//     off), or on SIGINT (Ctrl-Alt-Del) or SIGUSR1 (reboot).
package sysinit

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

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/fstab"
	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/internal/pid1"
	"distri.dev/distri/lib/modprobe"
	"distri.dev/distri/lib/pkgname"
)

// Options configure Run.
type Options struct {
	// Log gets one line per step; nil means a logger to /dev/console.
	Log *log.Logger
	// Logins are the programs tried, in order, for the console session;
	// nil means /bin/login, /bin/bash, /bin/sh.
	Logins []string
}

var systemMounts = []pid1.Mount{
	pid1.APIMounts[1], // /proc first: the rest checks mount points through it
	pid1.APIMounts[2],
	pid1.APIMounts[0],
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "gid=5,mode=0620,ptmxmode=0666"},
	{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777"},
	pid1.APIMounts[3],
	{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777"},
}

type system struct {
	log     *log.Logger
	start   time.Time
	cmdline initconfig.Cmdline
	reaper  *reaper
	fuse    *fuseDaemon // nil if /ro is not served
	fstab   *fstab.Mounted
}

// ErrNotPID1 is returned by Run when the process is not PID 1: the stage
// mounts the API file systems, starts /ro and powers the machine off at
// the end, which only the kernel's init may do. Run refuses before it
// touches anything.
var ErrNotPID1 = errors.New("not PID 1: the kernel starts this stage as init; it mounts over /dev and powers off at its end")

// Run brings the system up. It returns only on an error before
// supervision started, if it could not power off, or at once with
// ErrNotPID1 when it is not PID 1.
func Run(ctx context.Context, opts Options) error {
	if pid := os.Getpid(); pid != 1 {
		return fmt.Errorf("system stage (pid %d): %w", pid, ErrNotPID1)
	}
	s := &system{log: opts.Log, start: time.Now()}
	mounted, err := pid1.MountAll(systemMounts)
	if s.log == nil {
		s.log = pid1.NewLogger()
	}
	s.log.Printf("system stage, mounted %s", strings.Join(mounted, " "))
	if err != nil {
		s.log.Printf("%v", err)
	}
	if raw, err := os.ReadFile("/proc/cmdline"); err == nil {
		s.cmdline, _ = initconfig.ParseCmdline(string(raw))
	}
	// Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	s.reaper = startReaper()

	s.startFuse()
	s.setHostname()
	if sd := findSystemd(); sd != "" {
		// The reaper keeps running up to the exec (which ends it): the
		// /ro supervisor waits through it, also if the exec fails.
		s.log.Printf("exec %s after %s", sd, pid1.Since(s.start))
		env := []string{"PATH=/bin:/sbin", "TERM=linux"}
		err := unix.Exec(sd, []string{sd}, env)
		s.log.Printf("exec %s: %v; supervising instead", sd, err)
	}
	s.installModprobe()
	// Each entry that failed is logged; boot goes on regardless, as
	// there is no emergency shell to go to.
	s.fstab, _ = fstab.MountAll(ctx, fstab.Options{Log: s.log})
	s.startNetwork(ctx)
	return s.supervise(ctx, opts.Logins)
}

// installModprobe makes distri-init the kernel's module autoloader
// (request_module(), e.g. fs-vfat when /etc/fstab mounts /boot): the
// root has no /sbin/modprobe. A system that execs systemd does not get
// it: systemd and udev load modules with libkmod, which reads depmod's
// index, and the kernel's modprobe is then kmod's.
func (s *system) installModprobe() {
	self, err := os.Executable()
	if err == nil {
		err = modprobe.Install(modprobe.HelperPath, self, modprobe.Sysctl)
	}
	if err != nil {
		s.log.Printf("kernel modules cannot be loaded on demand: %v", err)
		return
	}
	s.log.Printf("kernel module helper %s -> %s", modprobe.HelperPath, self)
}

func (s *system) setHostname() {
	name, err := pid1.ReadHostname("/etc/hostname")
	if err != nil {
		s.log.Printf("hostname not set: %v", err)
		return
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		s.log.Printf("sethostname %s: %v", name, err)
		return
	}
	s.log.Printf("hostname %s", name)
}

// startFuse starts distri-fuse on /ro and waits for its readiness.
func (s *system) startFuse() {
	bin := s.cmdline.Fuse
	if bin == "" {
		bin = initconfig.SystemFuse
	}
	if _, err := os.Stat(bin); err != nil {
		s.log.Printf("%s not found: %s is not served", bin, initconfig.ROMount)
		return
	}
	if fi, err := os.Stat(initconfig.Store); err != nil || !fi.IsDir() {
		s.log.Printf("no package store %s: %s is not served", initconfig.Store, initconfig.ROMount)
		return
	}
	if err := os.MkdirAll(initconfig.ROMount, 0o755); err != nil {
		s.log.Printf("%v", err)
		return
	}
	// The console stays open for every restart's stderr.
	con, _ := pid1.OpenConsole()
	d, err := startFuseDaemon(s.reaper, FuseOptions{
		Fuse: bin, Store: initconfig.Store, Mount: initconfig.ROMount, Timeout: 30 * time.Second, Stderr: con,
	}, s.log.Printf)
	if err != nil {
		s.log.Printf("%v", err)
		if con != nil {
			con.Close()
		}
		return
	}
	s.fuse = d
	s.log.Printf("serving %s from %s (distri-fuse pid %d)", initconfig.ROMount, initconfig.Store, d.process().Pid)
}

// findSystemd returns the newest systemd in /ro, else a systemd on the
// root, else "".
func findSystemd() string {
	var best string
	var bestName pkgname.Name
	ents, _ := os.ReadDir(initconfig.ROMount)
	for _, e := range ents {
		n, err := pkgname.Parse(e.Name())
		if err != nil || n.Pkg != "systemd" {
			continue
		}
		p := filepath.Join(initconfig.ROMount, e.Name(), "out/lib/systemd/systemd")
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if best == "" || pkgname.Compare(n, bestName) > 0 {
			best, bestName = p, n
		}
	}
	if best != "" {
		return best
	}
	for _, p := range []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// supervise runs the console session and shuts down when it ends or
// on a signal.
func (s *system) supervise(ctx context.Context, logins []string) error {
	if logins == nil {
		logins = []string{"/bin/login", "/bin/bash", "/bin/sh"}
	}
	sigs := notifySignals()
	var sessionDone <-chan exitStatus
	login := ""
	for _, l := range logins {
		if _, err := os.Stat(l); err == nil {
			login = l
			break
		}
	}
	if login == "" {
		s.log.Printf("no login program (tried %s); waiting for a shutdown signal", strings.Join(logins, " "))
	} else {
		env := []string{"PATH=/bin:/sbin", "HOME=/root", "TERM=linux"}
		attr, con, err := pid1.ConsoleProcAttr(env)
		if err == nil {
			var p *os.Process
			p, err = s.reaper.start(login, []string{login}, attr)
			con.Close()
			if err == nil {
				s.log.Printf("started %s on the console (pid %d) after %s", login, p.Pid, pid1.Since(s.start))
				sessionDone = s.reaper.wait(p.Pid)
			}
		}
		if err != nil {
			s.log.Printf("start %s: %v", login, err)
		}
	}
	var h pid1.Halt
	select {
	case st := <-sessionDone:
		s.log.Printf("console session ended (%s)", st)
		h = pid1.PowerOff
	case sig := <-sigs:
		s.log.Printf("got %v", sig)
		h = haltFor(sig)
	case <-ctx.Done():
		h = pid1.PowerOff
	}
	return s.shutdown(h)
}

// shutdown stops every process, unmounts, syncs and halts.
func (s *system) shutdown(h pid1.Halt) error {
	s.log.Printf("shutting down: %s", h)
	var fuse *os.Process
	if s.fuse != nil {
		fuse = s.fuse.process()
	}
	s.reaper.killAll(unix.SIGTERM, 3*time.Second, fuse)
	s.reaper.killAll(unix.SIGKILL, time.Second, fuse)
	unix.Sync()
	if s.fstab != nil {
		s.fstab.UnmountAll() // logs each failure; what is left is detached below
	}
	if s.fuse != nil {
		s.fuse.stop(3 * time.Second)
	}
	if mps, err := pid1.Mountpoints(); err == nil {
		slices.Reverse(mps)
		for _, m := range mps {
			if m == "/" || m == "/proc" || m == "/sys" || m == "/dev" {
				continue
			}
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		s.log.Printf("remount / read-only: %v", err)
	}
	s.log.Printf("%s", h)
	err := pid1.Final(h)
	return errors.Join(fmt.Errorf("shutdown: %s failed", h), err)
}
