package cgroup

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
)

// The development machines' layout: v1 hierarchies, an empty v2, and this
// process in a memory group of a supervisor.
const (
	mountinfoV1 = `23 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	procCgroupV1 = `9:name=systemd:/
8:pids:/
4:memory:/process_api/f725
1:cpu,cpuacct:/
0::/
`
)

func TestParse(t *testing.T) {
	got := parseMountinfo(mountinfoV1)
	want := []hierarchy{
		{Point: "/sys/fs/cgroup/cpu", Root: "/", Controllers: []string{"cpu"}},
		{Point: "/sys/fs/cgroup/memory", Root: "/", Controllers: []string{"memory"}},
		{Point: "/sys/fs/cgroup/freezer", Root: "/", Controllers: []string{"freezer"}},
		{Point: "/sys/fs/cgroup/pids", Root: "/", Controllers: []string{"pids"}},
		{Point: "/sys/fs/cgroup/systemd", Root: "/"},
		{Point: "/sys/fs/cgroup/unified", Root: "/", V2: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseMountinfo mismatch (-want +got):\n%s", diff)
	}
	own := parseProcCgroup(procCgroupV1)
	wantOwn := map[string]string{"name=systemd": "/", "pids": "/", "memory": "/process_api/f725", "cpu": "/", "cpuacct": "/", "": "/"}
	if diff := cmp.Diff(wantOwn, own); diff != "" {
		t.Errorf("parseProcCgroup mismatch (-want +got):\n%s", diff)
	}
}

func TestOwnDir(t *testing.T) {
	for _, tt := range []struct {
		name, root, p, want string
		ok                  bool
	}{
		{name: "root mount", root: "/", p: "/a/b", want: "/m/a/b", ok: true},
		{name: "own group at the root", root: "/", p: "/", want: "/m", ok: true},
		{name: "container mount of its own group", root: "/docker/x", p: "/docker/x/y", want: "/m/y", ok: true},
		{name: "outside the mounted part", root: "/docker/x", p: "/other", ok: false},
		{name: "prefix is not a parent", root: "/docker/x", p: "/docker/xy", ok: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ownDir(hierarchy{Point: "/m", Root: tt.root}, tt.p)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ownDir(%q, %q) = %q, %v; want %q, %v", tt.root, tt.p, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestLayout checks the choice between v2 and v1 on fake hierarchies.
func TestLayout(t *testing.T) {
	tmp := t.TempDir()
	unified := filepath.Join(tmp, "unified")
	if err := os.MkdirAll(unified, 0o755); err != nil {
		t.Fatal(err)
	}
	hs := []hierarchy{
		{Point: filepath.Join(tmp, "pids"), Root: "/", Controllers: []string{"pids"}},
		{Point: filepath.Join(tmp, "memory"), Root: "/", Controllers: []string{"memory"}},
		{Point: filepath.Join(tmp, "cpu"), Root: "/", Controllers: []string{"cpu", "cpuacct"}},
		{Point: unified, Root: "/", V2: true},
	}
	own := map[string]string{"pids": "/", "memory": "/sup/x", "cpu": "/", "": "/"}

	// An empty v2 (only hugetlb): v1, below the own group in each.
	if err := os.WriteFile(filepath.Join(unified, "cgroup.controllers"), []byte("hugetlb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := layout(hs, own, "b1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(tmp, "pids/b1"), filepath.Join(tmp, "memory/sup/x/b1"), filepath.Join(tmp, "cpu/b1")}
	if diff := cmp.Diff(want, g.Dirs()); diff != "" || g.V2() {
		t.Errorf("layout with an empty v2: v2 %v, dirs mismatch (-want +got):\n%s", g.V2(), diff)
	}

	// v2 with the controllers: only v2.
	if err := os.WriteFile(filepath.Join(unified, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err = layout(hs, own, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{filepath.Join(unified, "b1")}, g.Dirs()); diff != "" || !g.V2() {
		t.Errorf("layout with v2 controllers: v2 %v, dirs mismatch (-want +got):\n%s", g.V2(), diff)
	}

	// Neither: a clear error.
	if _, err := layout(hs[2:3], own, "b1"); err == nil || !strings.Contains(err.Error(), "pids") {
		t.Errorf("layout without pids and memory hierarchies = %v, want an error naming pids", err)
	}
}

func TestNewInvalid(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "a\nb"} {
		if _, err := New(name, Limits{}); err == nil {
			t.Errorf("New(%q) succeeded, want an error", name)
		}
	}
	if _, err := New("x", Limits{CPUWeight: 10001}); err == nil {
		t.Errorf("New with CPUWeight 10001 succeeded, want an error")
	}
}

var seq atomic.Int64

func testName() string {
	return fmt.Sprintf("distri-cgroup-test-%d-%d", os.Getpid(), seq.Add(1))
}

// newGroup creates a group and checks in Cleanup that nothing is left.
func newGroup(t *testing.T, l Limits) *Group {
	t.Helper()
	distritest.NeedRoot(t)
	g, err := New(testName(), l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Kill(); err != nil {
			t.Error(err)
		}
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
		for _, d := range g.Dirs() {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("%s left behind (stat: %v)", d, err)
			}
		}
	})
	return g
}

// startHeld starts sh -c script with its stdin a pipe; the script should
// read a line first, so it does nothing before the test adds it to a group.
// Writing to the returned writer releases it.
func startHeld(t *testing.T, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	sh := distritest.NeedTool(t, "sh")
	cmd := exec.Command(sh, "-c", script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, in
}

// TestGroup creates a group with the v1 or v2 layout this host has, adds a
// process, and checks that the process and its children are in it, that
// the limits are in the files, that Kill leaves nothing, and that Remove
// removes every directory.
func TestGroup(t *testing.T) {
	g := newGroup(t, Limits{Pids: 50, Memory: 64 << 20, CPUWeight: 50})
	cmd, in := startHeld(t, "read x; sleep 60 & sleep 60 & wait")
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	// sh and its two sleeps.
	var pids []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var err error
		if pids, err = g.Procs(); err != nil {
			t.Fatal(err)
		}
		if len(pids) == 3 {
			break
		}
	}
	if len(pids) != 3 || pids[0] != cmd.Process.Pid {
		t.Fatalf("Procs() = %v, want sh %d and its two children", pids, cmd.Process.Pid)
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(g.Dirs()[0])
		if n := strings.Count(string(b), "/"+name+"\n"); n != len(g.Dirs()) {
			t.Errorf("/proc/%d/cgroup names the group in %d hierarchies, want %d:\n%s", pid, n, len(g.Dirs()), b)
		}
	}
	if !g.V2() {
		for file, want := range map[string]string{
			g.dirs["pids"] + "/pids.max":                string("50"),
			g.dirs["memory"] + "/memory.limit_in_bytes": fmt.Sprint(64 << 20),
		} {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if pids, err := g.Procs(); err != nil || len(pids) != 0 {
		t.Errorf("Procs() after Kill = %v, %v; want none", pids, err)
	}
	for _, pid := range pids {
		// Killed children of sh are zombies until sh is reaped; sh is
		// reaped by Cleanup. Signal 0 to a zombie succeeds, so check the
		// state instead.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d alive after Kill: %s", pid, b)
		}
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestPidsLimit attacks the pids limit: a shell starts 100 sleeps in a
// group that allows 20 tasks. Forks beyond the limit fail, the group never
// holds more than 20, and Events counts the failures.
func TestPidsLimit(t *testing.T) {
	g := newGroup(t, Limits{Pids: 20})
	cmd, in := startHeld(t, "read x; i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i+1)); done 2>/dev/null; echo done; wait")
	var out strings.Builder
	cmd.Stdout = &out
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	var ev Events
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ev.PidsMax == 0; time.Sleep(5 * time.Millisecond) {
		var err error
		if ev, err = g.Events(); err != nil {
			t.Fatal(err)
		}
	}
	if ev.PidsMax == 0 {
		t.Fatalf("Events() = %+v after starting 100 processes with a limit of 20, want PidsMax > 0", ev)
	}
	pids, err := g.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) > 20 {
		t.Errorf("%d processes in a group limited to 20", len(pids))
	}
	if ev.OOMKills != 0 {
		t.Errorf("Events().OOMKills = %d, want 0", ev.OOMKills)
	}
}

// TestMemoryLimit attacks the memory limit: a process that keeps 256 MiB
// in a group limited to 32 MiB is killed by the OOM killer, and Events
// counts it.
func TestMemoryLimit(t *testing.T) {
	g := newGroup(t, Limits{Memory: 32 << 20})
	// sh holds a growing string in memory: 2^28 bytes after 28 doublings.
	cmd, in := startHeld(t, `read x; s=x; i=0; while [ $i -lt 28 ]; do s="$s$s"; i=$((i+1)); done; echo survived`)
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	in.Close()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
		t.Fatalf("memory hog exited with %v, want killed by SIGKILL", err)
	}
	ev, err := g.Events()
	if err != nil {
		t.Fatal(err)
	}
	if ev.OOMKills == 0 {
		t.Errorf("Events() = %+v after an OOM kill, want OOMKills > 0", ev)
	}
}

// TestKillForkBomb attacks Kill: a shell fork bomb in a group of 64 tasks
// is killed completely, and the group can be removed.
func TestKillForkBomb(t *testing.T) {
	g := newGroup(t, Limits{Pids: 64})
	cmd, in := startHeld(t, `read x; f() { f | f & }; f 2>/dev/null; wait`)
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ev, _ := g.Events(); ev.PidsMax > 0 {
			break
		}
	}
	start := time.Now()
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the fork bomb in %v", time.Since(start))
	if pids, err := g.Procs(); err != nil || len(pids) != 0 {
		t.Errorf("Procs() after Kill = %v, %v; want none", pids, err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGroup measures what a group costs a sandboxed step: create with
// limits, read the events, kill (an empty group) and remove.
func BenchmarkGroup(b *testing.B) {
	distritest.NeedRoot(b)
	for b.Loop() {
		g, err := New(fmt.Sprintf("distri-cgroup-bench-%d", os.Getpid()), Limits{Pids: 4096, Memory: 1 << 30, CPUWeight: 100})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.Events(); err != nil {
			b.Fatal(err)
		}
		if err := g.Kill(); err != nil {
			b.Fatal(err)
		}
		if err := g.Remove(); err != nil {
			b.Fatal(err)
		}
	}
}
