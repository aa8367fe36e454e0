package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init is the sandbox helper: PID 1 of the sandbox's PID namespace and root
// of its user namespace. It assembles the root, starts the step as its
// child, confined (confine_linux.go), reaps every process that is
// re-parented to it, and exits with the step's exit status. It never
// returns. Call it only when IsInit(os.Args[0]) is true.
func Init() {
	// fds 3 (config) and 4 (errors) must not leak into the step.
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	errPipe := os.NewFile(4, "sandbox-errors")
	fail := func(err error) {
		fmt.Fprintf(errPipe, "%v\n", err)
		os.Exit(exitSetup)
	}
	cfg, trees, err := readConfig(3)
	if err != nil {
		fail(fmt.Errorf("read config: %w", err))
	}
	if err := setup(&cfg, trees); err != nil {
		fail(err)
	}
	argv0, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		fail(err)
	}
	// The confinement applies to this thread and is inherited by the
	// step, which ForkExec clones from it; the helper's other threads
	// keep their capabilities, and it needs none any more.
	runtime.LockOSThread()
	if err := confine(); err != nil {
		fail(err)
	}
	pid, err := syscall.ForkExec(argv0, cfg.Argv, &syscall.ProcAttr{
		Dir:   cfg.Dir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		// A session of its own, without a controlling terminal.
		Sys: &syscall.SysProcAttr{Setsid: true},
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

// readConfig reads the JSON config and the bind mounts' trees (one file
// descriptor per config.Binds entry) from the socket fd until EOF.
func readConfig(fd int) (config, []int, error) {
	var cfg config
	var data bytes.Buffer
	var trees []int
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(16*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return cfg, nil, err
		}
		if oobn > 0 {
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				return cfg, nil, err
			}
			for _, m := range msgs {
				fds, err := unix.ParseUnixRights(&m)
				if err != nil {
					return cfg, nil, err
				}
				trees = append(trees, fds...)
			}
		}
		if n == 0 {
			break
		}
		data.Write(buf[:n])
	}
	unix.Close(fd)
	if err := json.Unmarshal(data.Bytes(), &cfg); err != nil {
		return cfg, nil, err
	}
	if len(trees) != len(cfg.Binds) {
		return cfg, nil, fmt.Errorf("got %d mount trees for %d binds", len(trees), len(cfg.Binds))
	}
	return cfg, trees, nil
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

// assembleAt is where the helper assembles the root before pivoting into
// it: a tmpfs over the host's /tmp, in the helper's own mount namespace.
// The helper is an unprivileged id on the host and may not be able to look
// up any other host directory; the binds arrive as file descriptors.
const assembleAt = "/tmp"

// setup assembles the root in a tmpfs and pivots into it.
func setup(cfg *config, trees []int) error {
	// Nothing below may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := assembleAt
	if err := mountTmpfs(root, unix.MS_NOSUID|unix.MS_NODEV, "mode=0755", cfg.Tmpfs.Scratch); err != nil {
		return err
	}
	// /ro first, then the links (which point into it), then the other
	// binds, which are resolved through the links.
	for i, b := range cfg.Binds {
		if i == 1 {
			if err := links(root, cfg.Links); err != nil {
				return err
			}
		}
		if err := attach(root, b, trees[i]); err != nil {
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
	if err := mountProc(root); err != nil {
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

// mountTmpfs mounts a tmpfs on target with mode (e.g. "mode=0755") and
// size (the Limits' options, e.g. "size=4294967296,nr_inodes=262144").
func mountTmpfs(target string, flags uintptr, mode, size string) error {
	data := mode
	if size != "" {
		data += "," + size
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", flags, data); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", target, err)
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

// attach mounts the detached tree (a clone of b.Host Run made, already
// read-only and idmapped as b asks) at b.At.
func attach(root string, b bind, tree int) error {
	defer unix.Close(tree)
	target, err := resolve(root, b.At)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("bind %s: %w", b.At, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind %s at %s: %w", b.Host, b.At, err)
	}
	return nil
}

func mountTmp(root string, sizes tmpfsSizes) error {
	tmp := filepath.Join(root, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	return mountTmpfs(tmp, unix.MS_NOSUID|unix.MS_NODEV, "mode=1777", sizes.Scratch)
}

// readOnlyProc are the parts of /proc that reach beyond the sandbox's
// namespaces: kernel settings (/proc/sys: core_pattern, modprobe, …),
// the magic SysRq key, interrupt routing, bus and file system knobs. They
// are bound read-only over themselves. The user namespace already denies
// writing most of them (their owner is the host's root, not the step's);
// this covers the ones it does not.
var readOnlyProc = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}

func mountProc(root string) error {
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// This process is PID 1 of a new PID namespace, so this proc shows only
	// the sandbox's processes.
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, name := range readOnlyProc {
		p := filepath.Join(proc, name)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /proc/%s: %w", name, err)
		}
		if err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("make /proc/%s read-only: %w", name, err)
		}
	}
	return nil
}

// mountDev builds a minimal /dev: binds of the host's harmless character
// devices (mknod needs privileges the user namespace does not give), the
// fd links, a /dev/shm tmpfs and a devpts instance of the sandbox's own
// for builds that need a pseudo-terminal (expect-based test suites). No
// /dev/tty, no host terminal.
func mountDev(root string, sizes tmpfsSizes) error {
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	if err := mountTmpfs(dev, unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755", sizes.Dev); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom"} {
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
		"ptmx":   "pts/ptmx",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("mount /dev: %w", err)
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := mountTmpfs(shm, unix.MS_NOSUID|unix.MS_NODEV, "mode=1777", sizes.Scratch); err != nil {
		return err
	}
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
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
