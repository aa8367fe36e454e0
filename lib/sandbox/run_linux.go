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
	"syscall"
	"time"
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

// config is what Run sends to the helper over fd 3, as JSON.
type config struct {
	Root     string
	Binds    []bind
	Links    map[string]string
	Env      []string
	Dir      string
	Argv     []string
	Hostname string
	Tmpfs    tmpfsSizes // limits_linux.go
}

// bind is one bind mount of a host directory into the root.
type bind struct {
	Host     string // e.g. /tmp/src/hello-amd64-2.12-1
	At       string // inside, e.g. /usr/src/hello-amd64-2.12-1
	ReadOnly bool
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
	logf := func(string, ...any) {}
	if opts.Log != nil {
		logf = opts.Log.Printf
	}
	start := time.Now()
	cfg := config{
		Root:     opts.Root,
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
	if cfg.Root == "" {
		d, err := os.MkdirTemp("", "distri-sandbox-")
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		defer os.Remove(d)
		cfg.Root = d
	}
	cfg.Binds = append(cfg.Binds, bind{Host: opts.RO, At: "/ro", ReadOnly: true})
	for _, b := range []bind{
		{opts.Source, withDefault(opts.SourceAt, "/usr/src/source"), true},
		{opts.BuildDir, withDefault(opts.BuildDirAt, "/build"), false},
		{opts.Dest, withDefault(opts.DestAt, "/dest"), false},
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
	abs, err := filepath.Abs(cfg.Root)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	cfg.Root = abs
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
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

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer cfgR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgW.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	defer errR.Close()

	helper := withDefault(opts.Helper, "/proc/self/exe")
	cmd := exec.CommandContext(ctx, helper)
	cmd.Args = []string{initArg0}
	cmd.Env = []string{}
	cmd.Stdin = opts.Stdin
	cmd.Stdout = opts.Stdout
	cmd.Stderr = opts.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, errW} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		cfgW.Close()
		errW.Close()
		return fmt.Errorf("sandbox: start %s: %w", helper, err)
	}
	errW.Close()
	cfgR.Close()
	// Into the group before the helper reads its config: it forks nothing
	// before (limits_linux.go).
	if err := lim.add(cmd); err != nil {
		cfgW.Close()
		return fmt.Errorf("sandbox %v: %w", opts.Argv, err)
	}
	_, werr := cfgW.Write(payload)
	cfgW.Close()
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
		return fmt.Errorf("sandbox %v: send config: %w", opts.Argv, werr)
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

func withDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
