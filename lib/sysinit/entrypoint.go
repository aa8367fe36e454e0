package sysinit

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/initconfig"
)

// FuseOptions configure StartFuse.
type FuseOptions struct {
	// Fuse is the distri-fuse binary; empty means /distri-fuse.
	Fuse string
	// Store is the store to serve; empty means /roimg.
	Store string
	// Mount is where to serve it; empty means /ro.
	Mount string
	// Timeout bounds the wait for the mount; zero means 30 s.
	Timeout time.Duration
	// Stderr gets distri-fuse's stderr; nil means os.Stderr.
	Stderr *os.File
}

// StartFuse starts distri-fuse serving opts.Store on opts.Mount and
// returns once distri-fuse says the mount is ready (on its readiness fd).
func StartFuse(opts FuseOptions) (*os.Process, error) {
	if opts.Fuse == "" {
		opts.Fuse = initconfig.SystemFuse
	}
	if opts.Store == "" {
		opts.Store = initconfig.Store
	}
	if opts.Mount == "" {
		opts.Mount = initconfig.ROMount
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if err := os.MkdirAll(opts.Mount, 0o755); err != nil {
		return nil, err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	// A Go program dies without fds 0-2; a bare chroot has no /dev/null.
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		stdin = os.Stdin
	} else {
		defer stdin.Close()
	}
	argv := []string{"distri-fuse", "--store", opts.Store, "--readiness-fd", "3", opts.Mount}
	// TZ= keeps Go from reading /etc/localtime, a symlink into /ro.
	p, err := os.StartProcess(opts.Fuse, argv, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{"TZ=", "PATH=/bin:/sbin"},
		Files: []*os.File{stdin, opts.Stderr, opts.Stderr, wr},
	})
	wr.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Fuse, err)
	}
	switch err := waitReady(rd, opts.Timeout); err {
	case nil:
		return p, nil
	case errNotReady:
		p.Kill()
		p.Wait()
		return nil, fmt.Errorf("%s: %s not ready after %v", opts.Fuse, opts.Mount, opts.Timeout)
	default:
		p.Kill()
		p.Wait()
		return nil, fmt.Errorf("%s exited before %s was ready", opts.Fuse, opts.Mount)
	}
}

// errNotReady is waitReady's error for a daemon still running, not ready.
var errNotReady = errors.New("not ready in time")

// waitReady waits until distri-fuse writes to its readiness fd (the read
// end rd): nil then, errNotReady after timeout, or the read's error
// (io.EOF) when the daemon closed it, by exiting, without a word.
func waitReady(rd *os.File, timeout time.Duration) error {
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 512)
		n, err := rd.Read(buf)
		if n > 0 {
			err = nil
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		return err
	case <-time.After(timeout):
		return errNotReady
	}
}

// EntrypointOptions configure Entrypoint.
type EntrypointOptions struct {
	// Fuse configures distri-fuse.
	Fuse FuseOptions
	// Args is the command to exec once /ro is served, looked up in
	// /bin; empty means /bin/bash, else /bin/sh.
	Args []string
	// Log gets one line per step; nil means discard.
	Log *log.Logger
}

// Entrypoint is a container's entry point (docker run --entrypoint
// /entrypoint): it serves /ro from /roimg with distri-fuse, then execs
// opts.Args with PATH=/bin. It returns only on error. distri-fuse stays
// running as a child of the command.
func Entrypoint(opts EntrypointOptions) error {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log.Printf(format, args...)
		}
	}
	p, err := StartFuse(opts.Fuse)
	if err != nil {
		return err
	}
	logf("serving /ro (distri-fuse pid %d)", p.Pid)
	args := opts.Args
	if len(args) == 0 {
		args = []string{"/bin/sh"}
		if _, err := os.Stat("/bin/bash"); err == nil {
			args = []string{"/bin/bash"}
		}
	}
	env := append(os.Environ(), "PATH=/bin")
	os.Setenv("PATH", "/bin")
	bin, err := exec.LookPath(args[0])
	if err != nil {
		return err
	}
	if err := unix.Exec(bin, args, env); err != nil {
		return errors.Join(fmt.Errorf("exec %v: %w", args, err), p.Kill())
	}
	return nil
}
