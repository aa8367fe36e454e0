package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initArg0 is argv[0] of the re-executed helper; Init recognises it.
const initArg0 = "distri-sandbox-init"

// Exit statuses of the helper that are not the step's own.
const (
	exitSetup = 125 // set-up failed; the message is on the error pipe
)

// stepStarted is what the helper writes to the error pipe once the step
// has been started.
const stepStarted = "\x00"

// HostIDBase is the first host uid and gid of the sandbox's user
// namespace: ids 0 to IDCount-1 inside (root is 0) are HostIDBase to
// HostIDBase+IDCount-1 on the host. No user of the host may own ids in
// this range. 0x70000000 lies above the range systemd leaves to
// containers (524288 to 1879048191) and below 2^31, so every tool prints
// it as a positive number.
const (
	HostIDBase = 0x70000000 // 1879048192
	IDCount    = 65536
)

// config is what Run sends to the helper over fd 3, as JSON.
type config struct {
	Binds    []bind
	Links    map[string]string
	Env      []string
	Dir      string
	Argv     []string
	Hostname string
	Tmpfs    tmpfsSizes // limits_linux.go
}

// bind is one bind mount of a host directory into the root. Run clones
// the host tree (open_tree) and passes it to the helper as a file
// descriptor, in the order of config.Binds: the helper could not even
// look the host path up (it is an unprivileged id on the host).
type bind struct {
	Host     string // e.g. /tmp/src/hello-amd64-2.12-1
	At       string // inside, e.g. /usr/src/hello-amd64-2.12-1
	ReadOnly bool
	// Idmapped binds show the host's ids 0 to IDCount-1 as the same ids
	// inside, so the step's root owns what host root owns, and what it
	// writes is owned by host root. /ro is not idmapped: its file
	// system (FUSE, squashfs) may not support it, and nothing is written
	// to it; its files appear owned by nobody.
	Idmapped bool
}

// IsInit reports whether argv0 (os.Args[0]) marks this process as the
// sandbox helper that Run re-executes. A binary that calls Run must check it
// first thing in main:
//
//	if sandbox.IsInit(os.Args[0]) {
//		sandbox.Init() // does not return
//	}
func IsInit(argv0 string) bool { return argv0 == initArg0 }

// Run runs opts.Argv in a fresh sandbox and returns when the step and every
// process it started have exited. A step that exits non-zero yields an
// *ExitError.
func Run(ctx context.Context, opts Options) (err error) {
	if len(opts.Argv) == 0 {
		return errors.New("sandbox: empty Argv")
	}
	if opts.RO == "" {
		return fmt.Errorf("sandbox %v: RO is required", opts.Argv)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("sandbox %v: needs root (running as uid %d); see docs/sandbox.md on rootless builds", opts.Argv, os.Geteuid())
	}
	logf := func(string, ...any) {}
	if opts.Log != nil {
		logf = opts.Log.Printf
	}
	start := time.Now()
	cfg := config{
		Links:    opts.Links,
		Env:      opts.Env,
		Dir:      opts.Dir,
		Argv:     opts.Argv,
		Hostname: opts.Hostname,
	}
	if cfg.Env == nil {
		cfg.Env = []string{}
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "distri"
	}
	cfg.Binds = append(cfg.Binds, bind{Host: opts.RO, At: "/ro", ReadOnly: true})
	for _, b := range []bind{
		{opts.Source, withDefault(opts.SourceAt, "/usr/src/source"), true, true},
		{opts.BuildDir, withDefault(opts.BuildDirAt, "/build"), false, true},
		{opts.Dest, withDefault(opts.DestAt, "/dest"), false, true},
	} {
		if b.Host == "" {
			continue
		}
		cfg.Binds = append(cfg.Binds, b)
	}
	for i, b := range cfg.Binds {
		abs, err := filepath.Abs(b.Host)
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		cfg.Binds[i].Host = abs
	}
	// The step's control group and deadline (limits_linux.go).
	lim, err := startLimits(ctx, opts.Limits)
	if err != nil {
		return fmt.Errorf("sandbox %v: %w", opts.Argv, err)
	}
	defer func() { err = lim.finish(opts.Argv, err) }()
	ctx, cfg.Tmpfs = lim.ctx, lim.tmpfs
	payload, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}

	// fd 3 is a socket, not a pipe: the bind mounts travel over it as file
	// descriptors (SCM_RIGHTS) along with the JSON config.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: socketpair: %w", err)
	}
	cfgW := fds[0]
	cfgR := os.NewFile(uintptr(fds[1]), "sandbox-config")
	defer func() {
		if cfgW >= 0 {
			unix.Close(cfgW)
		}
	}()
	defer cfgR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer errR.Close()
	defer errW.Close()

	helper := withDefault(opts.Helper, "/proc/self/exe")
	cmd := exec.CommandContext(ctx, helper)
	cmd.Args = []string{initArg0}
	cmd.Env = []string{}
	cmd.Stdin = stdinOf(opts.Stdin)
	cmd.Stdout = outputOf(opts.Stdout)
	cmd.Stderr = outputOf(opts.Stderr)
	cmd.ExtraFiles = []*os.File{cfgR, errW} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: HostIDBase, Size: IDCount}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: HostIDBase, Size: IDCount}},
		// The clone keeps the host's uid 0, which the namespace does not
		// map; becoming root inside makes the helper HostIDBase on the
		// host, with every capability in its namespaces.
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		GidMappingsEnableSetgroups: true,
		// A session of its own: no controlling terminal, for the helper
		// and everything it starts.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sandbox: start %s: %w", helper, err)
	}
	errW.Close()
	cfgR.Close()
	// Into the group before the helper reads its config: it forks nothing
	// before (limits_linux.go).
	if err := lim.add(cmd); err != nil {
		return fmt.Errorf("sandbox %v: %w", opts.Argv, err)
	}
	werr := sendConfig(cfgW, cmd.Process.Pid, cfg.Binds, payload)
	unix.Close(cfgW)
	cfgW = -1
	if werr != nil {
		cmd.Process.Kill()
	}
	logf("sandbox: helper started after %v", time.Since(start))

	// The helper writes stepStarted once the step runs, or a message if
	// set-up fails; EOF with neither means it never ran Init.
	setupMsg, _ := io.ReadAll(errR)
	logf("sandbox: step %v started after %v", opts.Argv, time.Since(start))
	waitErr := cmd.Wait()
	if ctxErr := ctx.Err(); ctxErr != nil && waitErr != nil {
		return fmt.Errorf("sandbox %v: %w", opts.Argv, ctxErr)
	}
	switch {
	// EPIPE: the helper exited without reading its config, which it
	// may have done before the config was sent (after lim.add).
	case len(setupMsg) == 0 && werr != nil && !errors.Is(werr, syscall.EPIPE):
		return fmt.Errorf("sandbox %v: %w", opts.Argv, werr)
	case len(setupMsg) == 0:
		return fmt.Errorf("sandbox %v: helper %s exited (%v) without starting the step; does it call sandbox.Init?", opts.Argv, helper, waitErr)
	case string(setupMsg) != stepStarted:
		return fmt.Errorf("sandbox %v: %s", opts.Argv, bytes.TrimSpace(setupMsg))
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			return fmt.Errorf("sandbox %v: helper: %w", opts.Argv, waitErr)
		}
		return &ExitError{Argv: opts.Argv, Code: code}
	}
	if waitErr != nil {
		return fmt.Errorf("sandbox %v: %w", opts.Argv, waitErr)
	}
	return nil
}

// sendConfig clones each bind's host tree, idmapped to the helper's user
// namespace where asked, and sends the clones and the config to the
// helper (pid) over sock.
func sendConfig(sock int, pid int, binds []bind, payload []byte) error {
	userns, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the helper's user namespace: %w", err)
	}
	defer unix.Close(userns)
	var trees []int
	defer func() {
		for _, fd := range trees {
			unix.Close(fd)
		}
	}()
	for _, b := range binds {
		fd, err := cloneTree(b, userns)
		if err != nil {
			return err
		}
		trees = append(trees, fd)
	}
	// One message with all descriptors; the stream carries the rest of
	// the payload if it does not fit.
	n, err := unix.SendmsgN(sock, payload, unix.UnixRights(trees...), nil, unix.MSG_NOSIGNAL)
	for err == nil && n < len(payload) {
		var k int
		k, err = unix.SendmsgN(sock, payload[n:], nil, nil, unix.MSG_NOSIGNAL)
		n += k
	}
	if err != nil {
		return fmt.Errorf("send config: %w", err)
	}
	return nil
}

// cloneTree returns a detached copy of the mount tree at b.Host, read-only
// if b.ReadOnly, with the helper's id mapping if b.Idmapped.
func cloneTree(b bind, userns int) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, b.Host, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("bind %s at %s: %w", b.Host, b.At, err)
	}
	attr := unix.MountAttr{}
	if b.ReadOnly {
		// MS_RDONLY passed with MS_BIND is ignored by the kernel (the
		// original distri's bug); mount_setattr covers the whole tree.
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if b.Idmapped {
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(userns)
	}
	if attr.Attr_set == 0 {
		return fd, nil
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(fd)
		what := "make read-only"
		if b.Idmapped {
			var st unix.Statfs_t
			unix.Statfs(b.Host, &st)
			what = fmt.Sprintf("idmap (file system %#x; it needs idmapped mount support, e.g. ext4, xfs, btrfs, tmpfs)", st.Type)
		}
		return -1, fmt.Errorf("bind %s at %s: %s: %w", b.Host, b.At, what, err)
	}
	return fd, nil
}

// isTerminal reports whether s is a terminal of the host. Run never hands
// one to the step (TIOCSTI, TIOCLINUX, job control): a terminal as Stdin
// reads as /dev/null, and output to one is copied through a pipe.
func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	if !ok || f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func stdinOf(r io.Reader) io.Reader {
	if isTerminal(r) {
		return nil
	}
	return r
}

// outputOf hides a terminal behind a plain io.Writer, which makes
// exec.Cmd copy through a pipe.
func outputOf(w io.Writer) io.Writer {
	if isTerminal(w) {
		return struct{ io.Writer }{w}
	}
	return w
}

func withDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
