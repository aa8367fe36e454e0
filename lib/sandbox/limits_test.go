package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/sandbox"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"4096", 4096},
		{"512K", 512 << 10},
		{"64M", 64 << 20},
		{"64MiB", 64 << 20},
		{"12G", 12 << 30},
		{"12GiB", 12 << 30},
		{"1T", 1 << 40},
	} {
		got, err := sandbox.ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "1.5G", "12X", "99999999999T"} {
		if got, err := sandbox.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{64 << 20: "64 MiB", 12 << 30: "12 GiB", 3 << 29: "1.5 GiB", 100: "100 bytes"} {
		if got := sandbox.FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// limitOptions returns Options whose /ro holds bin/limitprobe, and checks
// in Cleanup that nothing of the sandbox is left: no control group of this
// process and no limitprobe process.
func limitOptions(t *testing.T) sandbox.Options {
	t.Helper()
	opts := testOptions(t)
	bin := distritest.StaticBinary(t, "distri.dev/distri/lib/sandbox/testdata/limitprobe")
	ro := filepath.Join(t.TempDir(), "ro")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ro, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "bin", "limitprobe"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	opts.RO = ro
	t.Cleanup(func() { checkNothingLeft(t) })
	return opts
}

// checkNothingLeft fails t if a control group of this process's sandboxes
// or a limitprobe process exists.
func checkNothingLeft(t *testing.T) {
	t.Helper()
	prefix := fmt.Sprintf("distri-sandbox-%d-", os.Getpid())
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), prefix) {
			t.Errorf("control group %s left behind", p)
			return fs.SkipDir
		}
		return nil
	})
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if argv0, _, _ := bytes.Cut(b, []byte{0}); strings.HasSuffix(string(argv0), "limitprobe") {
			t.Errorf("process %s left behind: %q", filepath.Dir(p), b)
		}
	}
}

// runLimited runs limitprobe args in the sandbox with limits l.
func runLimited(t *testing.T, opts sandbox.Options, l sandbox.Limits, args ...string) (string, time.Duration, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts.Argv = append([]string{"limitprobe"}, args...)
	opts.Stdout = &stdout
	opts.Stderr = &stderr
	opts.Limits = l
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := sandbox.Run(ctx, opts)
	took := time.Since(start)
	if stderr.Len() > 0 {
		t.Logf("limitprobe %v stderr (%d bytes): %.500s", args, stderr.Len(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), took, err
}

// wantLimit checks that err is a *LimitError for limit with message msg.
func wantLimit(t *testing.T, err error, limit, msg string) {
	t.Helper()
	var le *sandbox.LimitError
	if !errors.As(err, &le) || le.Limit != limit {
		t.Fatalf("Run = %v, want a *LimitError for %s", err, limit)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("Run = %q, want it to say %q", err, msg)
	}
}

// TestLimitForkBomb attacks the pids limit with a fork bomb: every process
// starts copies of itself forever. The step is stopped at the first
// refused fork and fails with an error that names the limit.
func TestLimitForkBomb(t *testing.T) {
	opts := limitOptions(t)
	_, took, err := runLimited(t, opts, sandbox.Limits{Pids: 64}, "forkbomb")
	wantLimit(t, err, "pids", "hit the limit of 64 processes (--pids)")
	t.Logf("fork bomb stopped after %v: %v", took, err)
	if took > 10*time.Second {
		t.Errorf("fork bomb stopped after %v, want well under the 6 h timeout", took)
	}
}

// TestLimitMemory attacks the memory limit: the step touches 256 MiB with
// a limit of 64 MiB, is killed by the OOM killer and the build step fails
// naming the limit.
func TestLimitMemory(t *testing.T) {
	opts := limitOptions(t)
	out, took, err := runLimited(t, opts, sandbox.Limits{Memory: 64 << 20}, "mem", "256")
	wantLimit(t, err, "memory", "ran out of memory: limit 64 MiB (--memory)")
	if strings.Contains(out, "survived") {
		t.Errorf("memory hog printed %q, want it killed", out)
	}
	t.Logf("memory hog stopped after %v: %v", took, err)
}

// TestLimitTimeout attacks the wall-clock limit: a step that sleeps 30 s
// with a limit of 1 s is killed at the deadline.
func TestLimitTimeout(t *testing.T) {
	opts := limitOptions(t)
	out, took, err := runLimited(t, opts, sandbox.Limits{Timeout: time.Second}, "sleep", "30s")
	wantLimit(t, err, "timeout", "exceeded the time limit of 1s (--timeout)")
	if out != "" || took > 5*time.Second {
		t.Errorf("sleeping step printed %q and took %v, want it killed after 1 s", out, took)
	}
}

// TestLimitTmpfs attacks the tmpfs sizes: writing 2 MiB into the root,
// /tmp or /dev/shm with a size of 1 MiB fails with ENOSPC.
func TestLimitTmpfs(t *testing.T) {
	opts := limitOptions(t)
	l := sandbox.Limits{Tmpfs: 1 << 20}
	for _, p := range []string{"/tmp/fill", "/dev/shm/fill", "/fill"} {
		out, _, err := runLimited(t, opts, l, "fill", p, strconv.Itoa(2<<20))
		if err != nil || out != "ENOSPC" {
			t.Errorf("writing 2 MiB to %s with a 1 MiB tmpfs = %q, %v; want ENOSPC", p, out, err)
		}
	}
	out, _, err := runLimited(t, opts, l, "df", "/tmp")
	if want := "size=1048576 inodes=1024"; err != nil || out != want {
		t.Errorf("df /tmp = %q, %v; want %q", out, err, want)
	}
	// The default is DefaultTmpfs, and /dev is small.
	out, _, err = runLimited(t, opts, sandbox.Limits{}, "df", "/tmp")
	if want := fmt.Sprintf("size=%d inodes=%d", sandbox.DefaultTmpfs, sandbox.DefaultTmpfs/(16<<10)); err != nil || out != want {
		t.Errorf("df /tmp with the default = %q, %v; want %q", out, err, want)
	}
	out, _, err = runLimited(t, opts, sandbox.Limits{}, "fill", "/dev/fill", strconv.Itoa(2<<20))
	if err != nil || out != "ENOSPC" {
		t.Errorf("writing 2 MiB to /dev = %q, %v; want ENOSPC", out, err)
	}
}

// TestLimitDefaults checks that the step runs in its own control group
// (from its first instruction: the helper is added before it is told what
// to run), with the default limits in the group's files, and that the
// group is gone afterwards.
func TestLimitDefaults(t *testing.T) {
	opts := limitOptions(t)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	opts.Argv = []string{"limitprobe", "cgroup-wait"}
	opts.Stdin, opts.Stdout = stdinR, stdoutW
	done := make(chan error, 1)
	go func() {
		done <- sandbox.Run(t.Context(), opts)
		stdoutW.Close()
	}()
	groups := map[string]string{} // controller → path
	sc := bufio.NewScanner(stdoutR)
	for sc.Scan() && sc.Text() != "END" {
		// 8:pids:/distri-sandbox-123-4
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) == 3 {
			groups[f[1]] = f[2]
		}
	}
	stdinR.Close()
	prefix := fmt.Sprintf("/distri-sandbox-%d-", os.Getpid())
	for _, c := range []string{"pids", "memory"} {
		if !strings.Contains(groups[c], prefix) {
			t.Errorf("the step's %s group is %q, want one named %s…", c, groups[c], prefix)
		}
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	halfRAM := int64(si.Totalram) * int64(si.Unit) / 2
	for _, tt := range []struct{ ctrl, file, want string }{
		{"pids", "pids.max", "4096"},
		{"memory", "memory.limit_in_bytes", strconv.FormatInt(halfRAM&^4095, 10)},
		{"cpu", "cpu.shares", "1024"},
	} {
		if groups[tt.ctrl] == "" {
			continue // v2, or no cpu hierarchy
		}
		p := filepath.Join("/sys/fs/cgroup", tt.ctrl, groups[tt.ctrl], tt.file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != tt.want {
			t.Errorf("%s = %s, want %s", p, got, tt.want)
		}
	}
	stdinW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLimitsInvalid checks that bad limits are refused before anything is
// created.
func TestLimitsInvalid(t *testing.T) {
	opts := limitOptions(t)
	for _, l := range []sandbox.Limits{{Pids: -1}, {Memory: -1}, {CPUWeight: 20000}, {Tmpfs: -1}} {
		if _, _, err := runLimited(t, opts, l, "sleep", "0s"); err == nil {
			t.Errorf("Run with limits %+v succeeded, want an error", l)
		}
	}
}

// TestLimitStaleGroups checks that Run removes the empty groups that a
// killed distri-build left (named after a PID that no longer exists), and
// keeps those of live processes.
func TestLimitStaleGroups(t *testing.T) {
	opts := limitOptions(t)
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var own string
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "pids" {
			own = filepath.Join("/sys/fs/cgroup/pids", f[2])
		}
	}
	if own == "" {
		distritest.Skip(t, "no cgroup v1 pids hierarchy (the test fakes leftovers there)")
	}
	// A PID that existed and no longer does.
	dead := exec.Command(distritest.NeedTool(t, "true"))
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(own, fmt.Sprintf("distri-sandbox-%d-7", dead.Process.Pid))
	live := filepath.Join(own, fmt.Sprintf("distri-sandbox-%d-7", os.Getppid()))
	for _, d := range []string{stale, live} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	defer unix.Rmdir(live)
	defer unix.Rmdir(stale)
	if _, _, err := runLimited(t, opts, sandbox.Limits{}, "sleep", "0s"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale group %s still there (stat: %v)", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("group %s of a live process removed: %v", live, err)
	}
}
