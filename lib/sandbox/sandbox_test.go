package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/sandbox"
)

func TestMain(m *testing.M) {
	if sandbox.IsInit(os.Args[0]) {
		sandbox.Init()
	}
	code := m.Run()
	if probeDir != "" {
		os.RemoveAll(probeDir)
	}
	os.Exit(code)
}

var (
	probeOnce sync.Once
	probeDir  string // holds ro/bin/probe
	probeErr  error
)

// roTree returns a /ro tree that holds only bin/probe, a static binary built
// from testdata/probe, so the sandbox needs nothing from the host.
func roTree(t testing.TB) string {
	t.Helper()
	probeOnce.Do(func() {
		probeDir, probeErr = os.MkdirTemp("", "sandbox-test-ro-")
		if probeErr != nil {
			return
		}
		// /ro is not idmapped: the step, an unprivileged id on the
		// host, sees it as others do.
		if probeErr = os.Chmod(probeDir, 0o755); probeErr != nil {
			return
		}
		out := filepath.Join(probeDir, "bin", "probe")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, "./testdata/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("%v: %w\n%s", cmd.Args, err, b)
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probeDir
}

var cleanEnv = []string{"PATH=/ro/bin:/bin", "HOME=/", "LANG=C.UTF-8"}

// testOptions returns Options with fresh source, build and dest directories.
func testOptions(t testing.TB) sandbox.Options {
	t.Helper()
	distritest.NeedRoot(t)
	tmp := t.TempDir()
	opts := sandbox.Options{
		RO:         roTree(t),
		Source:     filepath.Join(tmp, "src"),
		SourceAt:   "/usr/src/hello-amd64-2.12-1",
		BuildDir:   filepath.Join(tmp, "build"),
		BuildDirAt: "/build",
		Dest:       filepath.Join(tmp, "dest"),
		Links: map[string]string{
			"/bin":  "/ro/bin",
			"/usr":  "/",
			"/lib":  "/ro/lib",
			"/sbin": "/ro/bin",
		},
		Env:      cleanEnv,
		Hostname: "distri-test",
	}
	for _, d := range []string{opts.Source, opts.BuildDir, opts.Dest} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(opts.Source, "configure"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return opts
}

// probe runs the probe with args in the sandbox and returns its stdout.
func probe(t testing.TB, opts sandbox.Options, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts.Argv = append([]string{"probe"}, args...)
	opts.Stdout = &stdout
	opts.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := sandbox.Run(ctx, opts)
	if stderr.Len() > 0 {
		t.Logf("probe %v stderr: %s", args, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), err
}

func TestSandbox(t *testing.T) {
	opts := testOptions(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "clean env", args: []string{"env"}, want: strings.Join(cleanEnv, "\n")},
		{name: "ro visible", args: []string{"ls", "/ro"}, want: "bin"},
		{name: "ro read-only", args: []string{"write", "/ro/bin/new"}, want: "EROFS"},
		{name: "ro binary read-only", args: []string{"write", "/ro/bin/probe"}, want: "EROFS"},
		{name: "source visible", args: []string{"read", "/usr/src/hello-amd64-2.12-1/configure"}, want: "#!/bin/sh"},
		{name: "source read-only", args: []string{"write", "/usr/src/hello-amd64-2.12-1/configure"}, want: "EROFS"},
		{name: "source new file read-only", args: []string{"write", "/src/hello-amd64-2.12-1/new"}, want: "EROFS"},
		{name: "build dir writable", args: []string{"write", "/build/x"}, want: "ok"},
		{name: "dest writable", args: []string{"write", "/dest/x"}, want: "ok"},
		{name: "root writable scratch", args: []string{"write", "/scratch"}, want: "ok"},
		{name: "tmp is tmpfs", args: []string{"statfs", "/tmp"}, want: fmt.Sprintf("%#x", 0x01021994)},
		{name: "tmp empty", args: []string{"ls", "/tmp"}, want: ""},
		{name: "tmp writable", args: []string{"write", "/tmp/x"}, want: "ok"},
		{name: "dev null", args: []string{"write", "/dev/null"}, want: "ok"},
		{name: "dev listing", args: []string{"ls", "/dev"}, want: "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\nurandom\nzero"},
		{name: "dev shm tmpfs", args: []string{"statfs", "/dev/shm"}, want: fmt.Sprintf("%#x", 0x01021994)},
		{name: "proc shows only the sandbox", args: []string{"ps"}, want: "1 distri-sandbox-init\nself probe"},
		{name: "hostname", args: []string{"hostname"}, want: "distri-test"},
		{name: "host usr invisible", args: []string{"read", "/usr/bin/env"}, want: "ENOENT"},
		{name: "usr points to root", args: []string{"readlink", "/usr"}, want: "/"},
		{name: "host etc invisible", args: []string{"read", "/etc/os-release"}, want: "ENOENT"},
		{name: "no resolv.conf", args: []string{"read", "/etc/resolv.conf"}, want: "ENOENT"},
		{name: "hosts", args: []string{"read", "/etc/hosts"}, want: "127.0.0.1 localhost\n::1 localhost"},
		{name: "passwd", args: []string{"read", "/etc/passwd"}, want: "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false"},
		{name: "host home invisible", args: []string{"ls", "/root"}, want: "ENOENT"},
		{name: "cwd defaults to root", args: []string{"getwd"}, want: "/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := probe(t, opts, tt.args...)
			if err != nil {
				t.Fatalf("probe %v: %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("probe %v mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
	t.Run("host unchanged", func(t *testing.T) {
		if got, err := os.Hostname(); err != nil || got != hostname {
			t.Errorf("host name after Run = %q, %v; want %q", got, err, hostname)
		}
		b, err := os.ReadFile(filepath.Join(opts.Source, "configure"))
		if err != nil || string(b) != "#!/bin/sh\n" {
			t.Errorf("source configure = %q, %v; want unchanged", b, err)
		}
		for _, p := range []string{filepath.Join(opts.BuildDir, "x"), filepath.Join(opts.Dest, "x")} {
			b, err := os.ReadFile(p)
			if err != nil || string(b) != "written inside\n" {
				t.Errorf("ReadFile(%s) = %q, %v; want the step's write", p, b, err)
			}
		}
	})
}

func TestDir(t *testing.T) {
	opts := testOptions(t)
	opts.Dir = "/usr/src/hello-amd64-2.12-1"
	got, err := probe(t, opts, "getwd")
	if err != nil {
		t.Fatal(err)
	}
	// /usr → /, and the kernel reports the resolved path.
	if want := "/src/hello-amd64-2.12-1"; got != want {
		t.Errorf("getwd in Dir %s = %q, want %q", opts.Dir, got, want)
	}
}

func TestStdio(t *testing.T) {
	opts := testOptions(t)
	var stdout bytes.Buffer
	opts.Stdin = strings.NewReader("from the host\n")
	opts.Stdout = &stdout
	opts.Argv = []string{"probe", "cat"}
	if err := sandbox.Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "from the host\n"; got != want {
		t.Errorf("probe cat = %q, want %q", got, want)
	}
}

func TestNoNetwork(t *testing.T) {
	opts := testOptions(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	got, err := probe(t, opts, "dial", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// lo is up inside, but it is the sandbox's own: nothing listens there.
	if want := "ECONNREFUSED"; got != want {
		t.Errorf("probe dial %s = %q, want %q", ln.Addr(), got, want)
	}
	select {
	case <-accepted:
		t.Errorf("host listener accepted a connection from the sandbox")
	default:
	}
}

func TestExitError(t *testing.T) {
	opts := testOptions(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{name: "exit 3", args: []string{"exit", "3"}, code: 3},
		{name: "exit 125", args: []string{"exit", "125"}, code: 125},
		{name: "probe error", args: []string{"bogus"}, code: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := probe(t, opts, tt.args...)
			var ee *sandbox.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("Run(probe %v) = %v, want *ExitError", tt.args, err)
			}
			if got, want := ee.Code, tt.code; got != want {
				t.Errorf("ExitError.Code = %d, want %d", got, want)
			}
			if want := "probe " + strings.Join(tt.args, " "); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name argv %q", err, want)
			}
		})
	}
}

func TestSetupError(t *testing.T) {
	opts := testOptions(t)
	for _, tt := range []struct {
		name   string
		modify func(*sandbox.Options)
		want   string
	}{
		{name: "missing binary", modify: func(o *sandbox.Options) { o.Argv = []string{"no-such-tool"} }, want: "not found"},
		{name: "missing source", modify: func(o *sandbox.Options) { o.Source = filepath.Join(o.Source, "missing") }, want: "bind"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := opts
			o.Argv = []string{"probe", "true"}
			tt.modify(&o)
			err := sandbox.Run(context.Background(), o)
			if err == nil {
				t.Fatalf("Run = nil, want error containing %q", tt.want)
			}
			var ee *sandbox.ExitError
			if errors.As(err, &ee) {
				t.Errorf("Run = %v, a set-up error must not be an *ExitError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// TestNoLeftovers checks that a background child of the step dies with the
// sandbox: it holds a flock on a file in the build dir, which the test can
// take only once the child is gone.
func TestNoLeftovers(t *testing.T) {
	opts := testOptions(t)
	got, err := probe(t, opts, "background", "/build/lock")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "started ") {
		t.Fatalf("probe background = %q, want started <pid>", got)
	}
	f, err := os.Open(filepath.Join(opts.BuildDir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Errorf("flock after Run: %v; the background child is still running", err)
	}
}

func TestContextCancel(t *testing.T) {
	opts := testOptions(t)
	opts.Argv = []string{"probe", "sleep"}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := sandbox.Run(ctx, opts)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run returned after %v, want soon after the deadline", d)
	}
}

// TestSetupTime logs how long Run takes for a step that does nothing: the
// sandbox's set-up and teardown cost. The target is under 100 ms.
func TestSetupTime(t *testing.T) {
	opts := testOptions(t)
	opts.Argv = []string{"probe", "true"}
	if err := sandbox.Run(context.Background(), opts); err != nil { // warm caches
		t.Fatal(err)
	}
	const n = 10
	start := time.Now()
	for range n {
		if err := sandbox.Run(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Run of a no-op step: %v on average over %d runs", time.Since(start)/n, n)
	var buf bytes.Buffer
	opts.Log = log.New(&buf, "", 0)
	if err := sandbox.Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	t.Logf("set-up timing:\n%s", buf.String())
}

// BenchmarkSetup measures a no-op step: wall time per op, and the CPU
// time (user and system, of this process and the helpers) per op, which
// says more than the wall time on a loaded machine.
func BenchmarkSetup(b *testing.B) {
	opts := testOptions(b)
	opts.Argv = []string{"probe", "true"}
	cpu := func() time.Duration {
		var self, children syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
		var d time.Duration
		for _, tv := range []syscall.Timeval{self.Utime, self.Stime, children.Utime, children.Stime} {
			d += time.Duration(tv.Nano())
		}
		return d
	}
	start := cpu()
	for b.Loop() {
		if err := sandbox.Run(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpu()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// TestReadOnlySubmount checks that a mount below RO (e.g. a package image
// mounted inside a plain /ro tree) is read-only inside too.
func TestReadOnlySubmount(t *testing.T) {
	opts := testOptions(t)
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(opts.RO, "bin", "probe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ro, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "bin", "probe"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(ro, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", sub, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(sub, 0); err != nil {
			t.Errorf("unmount %s: %v", sub, err)
		}
	})
	opts.RO = ro
	got, err := probe(t, opts, "write", "/ro/sub/x")
	if err != nil {
		t.Fatal(err)
	}
	if want := "EROFS"; got != want {
		t.Errorf("probe write /ro/sub/x = %q, want %q", got, want)
	}
	if err := os.WriteFile(filepath.Join(sub, "y"), nil, 0o644); err != nil {
		t.Errorf("the submount is read-only on the host too: %v", err)
	}
}

// TestUnhookedHelper runs a helper that does not call Init: Run must say
// so, not report the helper's exit status as the step's.
func TestUnhookedHelper(t *testing.T) {
	opts := testOptions(t)
	opts.Helper = filepath.Join(opts.RO, "bin", "probe") // prints usage, exits 1
	opts.Argv = []string{"probe", "true"}
	err := sandbox.Run(context.Background(), opts)
	var ee *sandbox.ExitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "sandbox.Init") {
		t.Errorf("Run with an unhooked helper = %v, want an error naming sandbox.Init", err)
	}
}

// TestConcurrent runs steps in parallel, as distri-build --jobs does.
func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		opts := testOptions(t)
		opts.Argv = []string{"probe", "write", "/build/x"}
		wg.Go(func() { errs[i] = sandbox.Run(context.Background(), opts) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Run %d: %v", i, err)
		}
	}
}
