package sysinit

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pack"
)

func oomScoreAdj(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// haveSysResource reports whether this process has CAP_SYS_RESOURCE,
// which lowering an oom_score_adj needs. PID 1 has it; root on a
// machine whose bounding set lacks it (as this project's development
// VM's does) has not.
func haveSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}

// checkOOM wants pid's oom_score_adj at -1000 when the test can set it,
// and otherwise the supervisor's log line saying it could not. The VM
// test (distri-init TestBootSystem) checks -1000 under a real PID 1.
func checkOOM(t *testing.T, pid int, logs *distritest.Buffer) {
	t.Helper()
	got := oomScoreAdj(t, pid)
	if haveSysResource() {
		if got != "-1000" {
			t.Errorf("distri-fuse (pid %d) oom_score_adj = %s, want -1000\nlog:\n%s", pid, got, logs.String())
		}
		return
	}
	want := fmt.Sprintf("(pid %d): oom_score_adj -1000: ", pid)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("without CAP_SYS_RESOURCE, the log does not say %q:\n%s", want, logs.String())
	}
	t.Logf("no CAP_SYS_RESOURCE here: oom_score_adj stays %s; the failure is logged (TestBootSystem checks -1000)", got)
}

// mountsAt counts the mounts on mnt.
func mountsAt(t *testing.T, mnt string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == mnt {
			n++
		}
	}
	return n
}

// TestFuseDaemonRestart attacks /ro's safety net: the real distri-fuse,
// started by the supervisor PID 1 uses, is killed with SIGKILL (as the
// OOM killer would). The mount must serve files again within seconds,
// from a new daemon, with no dead mount left stacked, and every daemon
// must run with oom_score_adj -1000. After stop, nothing restarts it.
func TestFuseDaemonRestart(t *testing.T) {
	distritest.NeedFUSE(t)
	bin := distritest.Binary(t, "distri.dev/distri/distri-fuse")
	store, src := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin/hello"), []byte("hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := pack.Pack(pack.Options{Name: "hello-amd64-2.12-1", Dir: src, OutDir: store}); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}

	r := startReaper()
	defer r.stop()
	var logs distritest.Buffer
	logger := log.New(&logs, "", 0)
	d, err := startFuseDaemon(r, FuseOptions{Fuse: bin, Store: store, Mount: mnt, Timeout: 10 * time.Second, Stderr: os.Stderr}, logger.Printf)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d.stop(3 * time.Second)
		}
		if n := mountsAt(t, mnt); n != 0 {
			unix.Unmount(mnt, unix.MNT_DETACH)
			t.Errorf("%d mounts left on %s", n, mnt)
		}
	})
	hello := filepath.Join(mnt, "bin/hello")
	if b, err := os.ReadFile(hello); err != nil || string(b) != "hello" {
		t.Fatalf("read %s = %q, %v", hello, b, err)
	}

	for round := range 2 { // the second kill comes right after a restart
		old := d.process()
		checkOOM(t, old.Pid, &logs)
		killed := time.Now()
		if err := old.Signal(unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := killed.Add(10 * time.Second)
		for {
			b, err := os.ReadFile(hello)
			if err == nil && string(b) == "hello" && d.process().Pid != old.Pid {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %s not served 10 s after killing distri-fuse (pid %d): %q, %v\nlog:\n%s", round, hello, old.Pid, b, err, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: /ro served again %v after SIGKILL", round, time.Since(killed).Round(time.Millisecond))
		if n := mountsAt(t, mnt); n != 1 {
			t.Errorf("round %d: %d mounts on %s, want 1 (the dead one detached)", round, n, mnt)
		}
		checkOOM(t, d.process().Pid, &logs)
	}
	if !strings.Contains(logs.String(), "exited (killed by ") {
		t.Errorf("log does not say distri-fuse was killed:\n%s", logs.String())
	}

	last := d.process()
	d.stop(3 * time.Second)
	stopped = true
	if err := last.Signal(unix.Signal(0)); err == nil {
		t.Errorf("distri-fuse (pid %d) still running after stop", last.Pid)
	}
	time.Sleep(200 * time.Millisecond)
	if n := mountsAt(t, mnt); n != 0 {
		t.Errorf("%d mounts on %s after stop, want 0 (no restart)", n, mnt)
	}
	if p := d.process(); p.Pid != last.Pid {
		t.Errorf("a new distri-fuse (pid %d) started after stop", p.Pid)
	}
}

// TestFuseDaemonCrashLoop checks that a daemon that dies at once after
// getting ready is restarted with growing delays, not in a tight loop.
func TestFuseDaemonCrashLoop(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "distri-fuse")
	starts := filepath.Join(dir, "starts")
	script := "#!/bin/sh\necho x >> " + starts + "\necho \"$5\" >&3\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := startReaper()
	defer r.stop()
	var logs distritest.Buffer
	logger := log.New(&logs, "", 0)
	d, err := startFuseDaemon(r, FuseOptions{Fuse: bin, Store: dir, Mount: filepath.Join(dir, "ro"), Timeout: 5 * time.Second}, logger.Printf)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	d.stop(time.Second)
	b, _ := os.ReadFile(starts)
	// Starts at 0 s, then restarts at once, after 1 s and after 2 s more:
	// three or four in 2.5 s, not hundreds.
	if n := strings.Count(string(b), "x"); n < 2 || n > 4 {
		t.Errorf("%d starts in 2.5 s, want 2 to 4 (restart delays 0, 1 s, 2 s)\nlog:\n%s", n, logs.String())
	}
}
