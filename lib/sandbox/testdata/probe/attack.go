package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tioclinux is TIOCLINUX (asm-generic ioctls, the same on amd64 and
// arm64); x/sys/unix does not define it for every architecture.
const tioclinux = 0x541c

// attack tries, from inside the sandbox, what a hostile build step would
// do to own the host, and prints one "<name> <result>" line per attempt
// (result "ok" or an errno name). It also prints what a build step must
// still be able to do. disk is the host's root device as MAJOR:MINOR.
//
// Every attempt is harmless if it succeeds: files are opened but not
// written, the clock is set to the time it already has, kexec and module
// calls get arguments the kernel rejects after its permission check.
func attack(disk string) {
	res := func(name string, err error) { fmt.Printf("%s %s\n", name, errnoName(err)) }

	// Block device of the host's disk, then mount it.
	maj, min, _ := strings.Cut(disk, ":")
	ma, _ := strconv.Atoi(maj)
	mi, _ := strconv.Atoi(min)
	os.MkdirAll("/tmp/mnt", 0o755)
	err := unix.Mknod("/tmp/disk", unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(ma), uint32(mi))))
	res("mknod-block", err)
	res("mknod-char", unix.Mknod("/tmp/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	res("mknodat-block", unix.Mknodat(unix.AT_FDCWD, "/tmp/disk2", unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(ma), uint32(mi)))))
	if err == nil {
		err = errors.New("no file system type matched")
		for _, fstype := range []string{"ext4", "xfs", "btrfs"} {
			if err = unix.Mount("/tmp/disk", "/tmp/mnt", fstype, unix.MS_RDONLY, ""); err == nil {
				unix.Unmount("/tmp/mnt", unix.MNT_DETACH)
				break
			}
		}
	}
	res("mount-disk", err)
	res("mount-tmpfs", unix.Mount("tmpfs", "/tmp/mnt", "tmpfs", 0, ""))
	_, err = unix.Fsopen("tmpfs", 0)
	res("fsopen", err)
	_, err = unix.OpenTree(unix.AT_FDCWD, "/ro", unix.OPEN_TREE_CLONE)
	res("open-tree", err)

	// Kernel knobs: opened for writing, never written.
	for _, p := range []string{"/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/sys/kernel/uevent_helper"} {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		res("open-write:"+p, err)
	}

	// A /proc/sys file the step's root owns (one of its own network
	// namespace's, as the user namespace maps it): only a read-only
	// /proc/sys stops it.
	own := "none"
	filepath.WalkDir("/proc/sys", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || own != "none" {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Uid == 0 && st.Mode&0o200 != 0 {
			own = p
			return filepath.SkipAll
		}
		return nil
	})
	if own != "none" {
		f, err := os.OpenFile(own, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		res("open-write:own-sysctl", err)
	} else {
		res("open-write:own-sysctl", errors.New("none found"))
	}

	// /ro: make it writable, take it away.
	res("remount-ro-rw", unix.Mount("", "/ro", "", unix.MS_REMOUNT|unix.MS_BIND, ""))
	res("mount-setattr-ro-rw", unix.MountSetattr(unix.AT_FDCWD, "/ro", 0, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}))
	res("umount-ro", unix.Unmount("/ro", unix.MNT_DETACH))
	res("pivot-root", unix.PivotRoot("/tmp", "/tmp/mnt"))

	// The clock, set to what it is.
	tv := unix.NsecToTimeval(time.Now().UnixNano())
	res("settimeofday", unix.Settimeofday(&tv))
	ts := unix.NsecToTimespec(time.Now().UnixNano())
	res("clock-settime", unix.ClockSettime(unix.CLOCK_REALTIME, &ts))
	var tx unix.Timex
	tx.Modes = unix.ADJ_OFFSET | unix.ADJ_STATUS // offset 0, status 0
	_, err = unix.Adjtimex(&tx)
	res("adjtimex", err)

	// Keystrokes into every terminal in reach.
	ttys := map[string]int{"stdin": 0, "stdout": 1, "stderr": 2}
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		ttys["dev-tty"] = int(f.Fd())
	} else {
		res("open:/dev/tty", err)
	}
	for name, fd := range ttys {
		c := byte('#')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		res("tiocsti:"+name, errnoOrNil(e))
		sub := byte(7) // TIOCL_GETMOUSEREPORTING: reads, harmless
		_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tioclinux, uintptr(unsafe.Pointer(&sub)))
		res("tioclinux:"+name, errnoOrNil(e))
	}

	// Modules and kexec: arguments the kernel refuses after the permission
	// check, so the old sandbox says EINVAL or ENOEXEC, not EPERM.
	if f, err := os.Open("/ro/bin/probe"); err == nil {
		res("finit-module", unix.FinitModule(int(f.Fd()), "", 0))
		f.Close()
	}
	res("init-module", unix.InitModule(make([]byte, 64), ""))
	res("delete-module", unix.DeleteModule("distri_no_such_module", unix.O_NONBLOCK))
	_, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0xffff0000, 0, 0)
	res("kexec-load", errnoOrNil(e))
	res("kexec-file-load", unix.KexecFileLoad(-1, -1, "", 0xffff0000))
	res("reboot-cad-off", unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF))
	os.WriteFile("/tmp/swap", make([]byte, 4096), 0o600)
	p, _ := unix.BytePtrFromString("/tmp/swap")
	_, _, e = unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), 0, 0)
	res("swapon", errnoOrNil(e))

	// Kernel attack surface.
	attr := make([]byte, 128)
	_, _, e = unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	res("bpf", errnoOrNil(e))
	pa := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
	fd, err := unix.PerfEventOpen(&pa, 0, -1, -1, 0)
	if err == nil {
		unix.Close(fd)
	}
	res("perf-event-open", err)
	_, err = unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
	res("keyctl", err)
	_, err = unix.AddKey("user", "distri-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
	res("add-key", err)
	res("ptrace-pid1", unix.PtraceSeize(1))
	res("unshare-user", unix.Unshare(unix.CLONE_NEWUSER))
	res("unshare-mount", unix.Unshare(unix.CLONE_NEWNS))

	// What a build must still be able to do.
	_, _, e = unix.RawSyscall(^uintptr(0), 0, 0, 0) // syscall(-1): ENOSYS, not killed
	res("normal:syscall-minus-1", errnoOrNil(e))
	res("normal:write-build", os.WriteFile("/build/normal", []byte("x"), 0o644))
	res("normal:mkfifo", unix.Mkfifo("/tmp/fifo", 0o644))
	res("normal:mknod-fifo", unix.Mknod("/tmp/fifo2", unix.S_IFIFO|0o644, 0))
	res("normal:mknod-regular", unix.Mknod("/tmp/regular", unix.S_IFREG|0o644, 0))
	res("normal:pty", pty())
	sfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		err = unix.Bind(sfd, &unix.SockaddrUnix{Name: "/tmp/sock"})
		unix.Close(sfd)
	}
	res("normal:unix-socket", err)

	// Who the step is.
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
			fmt.Printf("status:%s %s\n", k, strings.TrimSpace(v))
		}
	}
	sid, _ := unix.Getsid(0)
	fmt.Printf("session-leader %v\n", sid == os.Getpid())

	// The step's root has no capability left, not even in its own user
	// namespace: it cannot give files away, change ids, or write what
	// its permission bits forbid (test suites that expect an unwritable
	// file to be unwritable pass as root).
	res("normal:chown-build", os.Chown("/build/normal", 65534, 65534))
	res("normal:setuid-nobody", unix.Setresuid(65534, 65534, 65534))
	res("normal:write-readonly", func() error {
		if err := os.WriteFile("/build/readonly", []byte("x"), 0o444); err != nil {
			return err
		}
		f, err := os.OpenFile("/build/readonly", os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		return err
	}())
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// pty opens a pseudo-terminal pair through /dev/ptmx, as expect does, and
// sends a line through it.
func pty() error {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return err
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		return err
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := m.Write([]byte("hello\n")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	k, err := s.Read(buf)
	if err != nil {
		return err
	}
	if got := string(buf[:k]); got != "hello\n" {
		return fmt.Errorf("read %q through the pty, want %q", got, "hello\n")
	}
	return nil
}
