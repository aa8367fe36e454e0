package distritest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// VMOptions describe a QEMU guest booted with a kernel and an initramfs
// (no firmware boot loader): TCG, serial console on stdio, no reboot.
type VMOptions struct {
	Kernel string // e.g. Kernel.Vmlinuz
	Initrd string
	// Append is the kernel command line after "console=ttyS0".
	Append string
	// Disks are raw image files attached as virtio disks, /dev/vda, …
	Disks []string
	// MemoryMB defaults to 512, CPUs to 1.
	MemoryMB, CPUs int
	// Extra QEMU arguments.
	Extra []string
}

// Console is a running QEMU guest's serial console.
type Console struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	start time.Time

	mu    sync.Mutex
	lines []string // every complete console line so far
	next  int      // first line Expect has not consumed
	// partial is the line being printed; Expect matches it if it is a
	// prompt waiting for input (it ends in ": ").
	partial strings.Builder
	cond    *sync.Cond
	done    bool // QEMU exited
	err     error
}

// StartVM boots a guest and returns its console. The guest is killed
// when the test ends; its console log is printed if the test failed.
func StartVM(t testing.TB, opts VMOptions) *Console {
	t.Helper()
	qemu := NeedQEMU(t)
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 512
	}
	if opts.CPUs == 0 {
		opts.CPUs = 1
	}
	args := []string{
		"-machine", "q35,accel=tcg", "-cpu", "max",
		"-m", fmt.Sprint(opts.MemoryMB), "-smp", fmt.Sprint(opts.CPUs),
		"-display", "none", "-vga", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-nodefaults",
		"-kernel", opts.Kernel,
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 " + opts.Append),
	}
	if opts.Initrd != "" {
		args = append(args, "-initrd", opts.Initrd)
	}
	for _, d := range opts.Disks {
		args = append(args, "-drive", "file="+d+",if=virtio,format=raw")
	}
	args = append(args, opts.Extra...)
	return startConsole(t, qemu, args)
}

func (c *Console) read(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		c.mu.Lock()
		for _, b := range buf[:n] {
			if b == '\n' {
				c.lines = append(c.lines, strings.TrimRight(c.partial.String(), "\r"))
				c.partial.Reset()
			} else {
				c.partial.WriteByte(b)
			}
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			break
		}
	}
	err := c.cmd.Wait()
	c.mu.Lock()
	c.done, c.err = true, err
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Expect waits up to timeout for a console line matching re (after the
// lines earlier Expects consumed) and returns its submatches. It fails
// the test on timeout or if QEMU exits first.
func (c *Console) Expect(re string, timeout time.Duration) []string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for ; c.next < len(c.lines); c.next++ {
			if m := rx.FindStringSubmatch(c.lines[c.next]); m != nil {
				c.next++
				return m
			}
		}
		if p := c.partial.String(); c.next == len(c.lines) && strings.HasSuffix(p, ": ") {
			// A prompt waiting for input (only those: a line still
			// being printed would match too early).
			if m := rx.FindStringSubmatch(p); m != nil {
				c.next++ // the line being printed is consumed once it is complete
				return m
			}
		}
		if c.done {
			c.t.Fatalf("QEMU exited (%v) after %v without printing a line matching %q", c.err, c.elapsed(), re)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no console line matching %q within %v", re, timeout)
		}
		c.cond.Wait()
	}
}

// Send types line and a newline on the console.
func (c *Console) Send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("send to console: %v", err)
	}
}

// Wait waits up to timeout for QEMU to exit (the guest powered off;
// -no-reboot makes a reboot exit too) and returns how long the guest
// ran.
func (c *Console) Wait(timeout time.Duration) time.Duration {
	c.t.Helper()
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.done {
		if time.Now().After(deadline) {
			c.t.Fatalf("QEMU still running after %v", timeout)
		}
		c.cond.Wait()
	}
	if c.err != nil {
		c.t.Errorf("QEMU: %v", c.err)
	}
	return c.elapsed()
}

// Elapsed returns the time since QEMU started.
func (c *Console) Elapsed() time.Duration { return time.Since(c.start) }

func (c *Console) elapsed() time.Duration { return time.Since(c.start).Round(time.Millisecond) }

// Log returns the console output so far.
func (c *Console) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(append(slices.Clip(c.lines), c.partial.String()), "\n")
}

var (
	staticMu    sync.Mutex
	staticCache = map[string]string{}
)

// StaticBinary builds the main package at importPath with CGO_ENABLED=0,
// as a binary that runs without a libc (e.g. as /init of an initramfs),
// once per test process.
func StaticBinary(t testing.TB, importPath string) string {
	t.Helper()
	staticMu.Lock()
	defer staticMu.Unlock()
	if p, ok := staticCache[importPath]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "distritest-static-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(importPath))
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, importPath)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	staticCache[importPath] = out
	return out
}

// startConsole starts QEMU with args, its serial console on stdin and
// stdout, and kills it in t.Cleanup (logging the console when the test
// failed or $DISTRI_TEST_VM_LOG is set).
func startConsole(t testing.TB, qemu string, args []string) *Console {
	t.Helper()
	cmd := exec.Command(qemu, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &Console{t: t, cmd: cmd, stdin: stdin, start: time.Now()}
	c.cond = sync.NewCond(&c.mu)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	t.Logf("started %s", strings.Join(cmd.Args, " "))
	go c.read(out)
	t.Cleanup(func() {
		cmd.Process.Kill()
		c.mu.Lock()
		for !c.done {
			c.cond.Wait()
		}
		c.mu.Unlock()
		if t.Failed() || os.Getenv("DISTRI_TEST_VM_LOG") != "" {
			t.Logf("console:\n%s", c.Log())
		}
	})
	return c
}
