package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pack"
)

// runCmd runs distri-fuse in-process with args and returns the exit code,
// stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli.RunArgs(t.Context(), newRootCmd, args...)
}

func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{name: "version", args: []string{"--version"}, wantOut: "distri-fuse version"},
		{name: "help has examples", args: []string{"--help"}, wantOut: "Examples:"},
		{name: "rescan help", args: []string{"ctl", "rescan", "--help"}, wantOut: "Examples:"},
		{name: "no mount point", args: nil, wantCode: 2, wantErr: "accepts 1 arg(s)"},
		{name: "unknown flag", args: []string{"--frob", "/ro"}, wantCode: 2, wantErr: "unknown flag: --frob"},
		{name: "rescan with nothing mounted", args: []string{"ctl", "rescan", t.TempDir()}},
		{name: "owner outside /ro", args: []string{"owner", t.TempDir()}, wantCode: 1, wantErr: "not in a distri /ro mount"},
		{name: "missing store", args: []string{"--store", filepath.Join(t.TempDir(), "nope"), t.TempDir()}, wantCode: 1, wantErr: "scan store"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, errs)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", errs, tt.wantErr)
			}
		})
	}
}

func mkpkg(t *testing.T, store, full string, files map[string]string) {
	t.Helper()
	src := t.TempDir()
	for p, content := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pack.Pack(pack.Options{Name: full, Dir: src, OutDir: store}); err != nil {
		t.Fatal(err)
	}
}

// TestServe runs the daemon as a process: readiness, ctl rescan, SIGHUP,
// owner, and a clean unmount on SIGTERM.
func TestServe(t *testing.T) {
	distritest.NeedFUSE(t)
	bin := distritest.Binary(t, "distri.dev/distri/distri-fuse")
	store := t.TempDir()
	mnt := t.TempDir()
	mkpkg(t, store, "hello-amd64-2.12-1", map[string]string{"bin/hello": "hello"})

	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--store", store, "--ctl-socket", filepath.Join(t.TempDir(), "ctl.sock"), "--readiness-fd", "3", mnt)
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	line, err := bufio.NewReader(ready).ReadString('\n')
	if err != nil {
		t.Fatalf("readiness: %v (stderr %q)", err, stderr.String())
	}
	if got := strings.TrimSpace(line); got != mnt {
		t.Errorf("readiness fd says %q, want %q", got, mnt)
	}

	// ctl rescan picks up a new package.
	mkpkg(t, store, "world-amd64-1-1", map[string]string{"bin/world": "world"})
	if code, _, errs := runCmd(t, "ctl", "rescan", mnt); code != 0 {
		t.Fatalf("ctl rescan: exit %d: %s", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "bin/world")); err != nil || string(b) != "world" {
		t.Errorf("read /ro/bin/world after ctl rescan = %q, %v", b, err)
	}
	if code, out, errs := runCmd(t, "owner", filepath.Join(mnt, "bin/world"), filepath.Join(mnt, "bin/hello")); code != 0 ||
		out != filepath.Join(mnt, "bin/world")+": world-amd64-1-1\n"+filepath.Join(mnt, "bin/hello")+": hello-amd64-2.12-1\n" {
		t.Errorf("owner: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// SIGHUP too. It has no answer to wait for, so poll.
	mkpkg(t, store, "sighup-amd64-1-1", map[string]string{"bin/sighup": "hup"})
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(filepath.Join(mnt, "bin/sighup")); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("distri-fuse after SIGTERM: %v (stderr %q)", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("distri-fuse did not exit on SIGTERM")
	}
	if got, want := stdout.String(), mnt+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), " "+mnt+" ") {
		t.Errorf("%s still mounted after SIGTERM", mnt)
	}
}

// TestTermAfterDetach is the shutdown of a booted system: init detaches
// /ro, then sends SIGTERM. The daemon exits cleanly and says nothing
// (it used to try to unmount and detach the mount again, and fail).
func TestTermAfterDetach(t *testing.T) {
	distritest.NeedFUSE(t)
	bin := distritest.Binary(t, "distri.dev/distri/distri-fuse")
	store := t.TempDir()
	mnt := t.TempDir()
	mkpkg(t, store, "hello-amd64-2.12-1", map[string]string{"bin/hello": "hello"})
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--store", store, "--ctl-socket", filepath.Join(t.TempDir(), "ctl.sock"), mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		unix.Unmount(mnt, unix.MNT_DETACH)
	})
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != mnt {
		t.Fatalf("not ready: %q, %v (stderr %q)", line, err, stderr.String())
	}
	exited := make(chan error, 1)
	go func() { r.WriteTo(io.Discard); exited <- cmd.Wait() }()
	// A file still open keeps the detached mount, and the daemon's
	// connection, alive until the SIGTERM (else the daemon may notice
	// the detach first and exit on its own).
	f, err := os.Open(filepath.Join(mnt, "bin/hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "hello" {
		t.Fatalf("read bin/hello = %q, %v", b, err)
	}
	if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("distri-fuse after detach and SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("distri-fuse did not exit on SIGTERM")
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q, want nothing", stderr.String())
	}
}

// TestReadinessFailureLeavesNoMount: a start whose readiness cannot be
// signalled (the descriptor is not open) fails, and takes its mount
// down: the old daemon kept serving a mount nobody knew about, and a
// later exit left it dead.
func TestReadinessFailureLeavesNoMount(t *testing.T) {
	distritest.NeedFUSE(t)
	store := t.TempDir()
	mkpkg(t, store, "hello-amd64-1-1", map[string]string{"bin/hello": "#!/bin/sh\n"})
	mnt := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	code, _, errs := cli.RunArgs(ctx, newRootCmd, "--store", store, "--ctl-socket", filepath.Join(t.TempDir(), "ctl.sock"), "--readiness-fd", "987", mnt)
	if ctx.Err() != nil {
		t.Errorf("distri-fuse served until the deadline instead of failing its start")
	}
	if code != 1 || !strings.Contains(errs, "--readiness-fd 987") {
		t.Errorf("exit code %d, stderr %q; want 1 and an error naming --readiness-fd", code, errs)
	}
	if isMounted(t, mnt) {
		unix.Unmount(mnt, unix.MNT_DETACH)
		t.Errorf("%s is still mounted after the failed start", mnt)
	}
}

// isMounted reports whether p is a mount point in /proc/self/mountinfo.
func isMounted(t *testing.T, p string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}
