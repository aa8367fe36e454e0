package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init is the sandbox helper: PID 1 of the sandbox's PID namespace. It
// assembles the root, starts the step as its child, reaps every process
// that is re-parented to it, and exits with the step's exit status. It
// never returns. Call it only when IsInit(os.Args[0]) is true.
func Init() {
	// fds 3 (config) and 4 (errors) must not leak into the step.
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	errPipe := os.NewFile(4, "sandbox-errors")
	fail := func(err error) {
		fmt.Fprintf(errPipe, "%v\n", err)
		os.Exit(exitSetup)
	}
	var cfg config
	if err := json.NewDecoder(os.NewFile(3, "sandbox-config")).Decode(&cfg); err != nil {
		fail(fmt.Errorf("read config: %w", err))
	}
	if err := setup(&cfg); err != nil {
		fail(err)
	}
	argv0, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		fail(err)
	}
	pid, err := syscall.ForkExec(argv0, cfg.Argv, &syscall.ProcAttr{
		Dir:   cfg.Dir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		fail(fmt.Errorf("exec %v: %w", cfg.Argv, err))
	}
	// Tells Run the step is running. Should the write fail, Run reports a
	// helper that never started the step, which is wrong but not silent.
	_, _ = io.WriteString(errPipe, stepStarted)
	errPipe.Close()
	// syscall.Exit, not os.Exit: there is nothing to flush, and under the
	// race detector os.Exit(0) sleeps a second (GORACE atexit_sleep_ms).
	syscall.Exit(reap(pid))
}

// reap waits for every child, the step's and orphans alike, and returns the
// step's exit status once it exits. Returning ends the PID namespace: the
// kernel kills whatever is left.
func reap(step int) int {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return exitSetup
		}
		if pid != step {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// lookPath resolves argv0 in the PATH of env, inside the new root.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	var pathEnv string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %s: not found in PATH %q", argv0, pathEnv)
}

const (
	passwd = "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
	group  = "root:x:0:\nnogroup:x:65534:\n"
	hosts  = "127.0.0.1 localhost\n::1 localhost\n"
)

// setup assembles the root in a tmpfs on cfg.Root and pivots into it.
func setup(cfg *config) error {
	// Nothing below may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := cfg.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,"+cfg.Tmpfs.Scratch); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", root, err)
	}
	// /ro first, then the links (which point into it), then the other
	// binds, which are resolved through the links.
	for i, b := range cfg.Binds {
		if i == 1 {
			if err := links(root, cfg.Links); err != nil {
				return err
			}
		}
		if err := bindMount(root, b); err != nil {
			return err
		}
	}
	if len(cfg.Binds) == 1 {
		if err := links(root, cfg.Links); err != nil {
			return err
		}
	}
	if err := mountTmp(root, cfg.Tmpfs); err != nil {
		return err
	}
	if err := mountDev(root, cfg.Tmpfs); err != nil {
		return err
	}
	if err := writeEtc(root); err != nil {
		return err
	}
	if err := pivot(root); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	return nil
}

// resolve returns the host path of the inside path p, following symlinks
// within root (so /usr/src with /usr → / is root/src). Missing components
// are taken literally.
func resolve(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		next := path.Join(cur, c)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			cur = next // not a symlink, or missing
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("resolve %s: %w", p, unix.ELOOP)
		}
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		cur = "/"
		rest = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}

func links(root string, links map[string]string) error {
	// Sorted, so /lib64 is created before /lib64/ld-linux-x86-64.so.2 and
	// errors do not depend on map order.
	for _, p := range slices.Sorted(maps.Keys(links)) {
		target := links[p]
		host, err := resolve(root, path.Dir(p))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(host, 0o755); err != nil {
			return fmt.Errorf("link %s: %w", p, err)
		}
		if err := os.Symlink(target, filepath.Join(host, path.Base(p))); err != nil {
			return fmt.Errorf("link %s: %w", p, err)
		}
	}
	return nil
}

func bindMount(root string, b bind) error {
	target, err := resolve(root, b.At)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("bind %s: %w", b.At, err)
	}
	if err := unix.Mount(b.Host, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", b.Host, b.At, err)
	}
	if !b.ReadOnly {
		return nil
	}
	// A bind mount inherits the source's flags; MS_RDONLY passed with
	// MS_BIND is ignored (the original distri's bug). mount_setattr makes
	// the whole subtree read-only; the remount is the pre-5.12 fallback,
	// which only covers the top mount.
	err = unix.MountSetattr(-1, target, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if errors.Is(err, unix.ENOSYS) {
		err = unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if err != nil {
		return fmt.Errorf("make %s read-only: %w", b.At, err)
	}
	return nil
}

func mountTmp(root string, sizes tmpfsSizes) error {
	tmp := filepath.Join(root, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,"+sizes.Scratch); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// This process is PID 1 of a new PID namespace, so this proc shows only
	// the sandbox's processes.
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

// mountDev builds a minimal /dev: binds of the host's harmless character
// devices (mknod would need the devices cgroup to allow it), the fd links
// and a /dev/shm tmpfs.
func mountDev(root string, sizes tmpfsSizes) error {
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,"+sizes.Dev); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		target := filepath.Join(dev, name)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return fmt.Errorf("mount /dev/%s: %w", name, err)
		}
		if err := unix.Mount("/dev/"+name, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount /dev/%s: %w", name, err)
		}
	}
	for name, target := range map[string]string{
		"fd":     "/proc/self/fd",
		"stdin":  "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("mount /dev: %w", err)
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := unix.Mount("tmpfs", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,"+sizes.Scratch); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	return nil
}

// writeEtc writes a minimal /etc, unless Links made /etc point elsewhere.
// There is no resolv.conf: there is no network.
func writeEtc(root string) error {
	etc := filepath.Join(root, "etc")
	if fi, err := os.Lstat(etc); err == nil && !fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("write /etc: %w", err)
	}
	for name, content := range map[string]string{"passwd": passwd, "group": group, "hosts": hosts} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write /etc: %w", err)
		}
	}
	return nil
}

// pivot makes root the new / and detaches the old one, so no host path is
// reachable (unlike chroot).
func pivot(root string) error {
	if err := os.Chdir(root); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one;
	// unmounting "." then removes the old root (see pivot_root(2)).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	return nil
}

// loopbackUp brings lo up, so a build's tests can use localhost. The network
// namespace is fresh, so lo reaches nothing on the host.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}
