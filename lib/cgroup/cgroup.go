package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Limits bounds a group. A zero field means no limit (the kernel's "max").
type Limits struct {
	// Pids is how many tasks (processes and threads) may exist in the
	// group at once, e.g. 4096. A fork or clone beyond it fails with
	// EAGAIN.
	Pids int
	// Memory is the RAM the group may use, in bytes, e.g. 12 << 30:
	// anonymous memory, page cache and the pages of tmpfs files written
	// by its processes. Swap is not allowed on top of it. Beyond it, the
	// kernel reclaims, then kills a process of the group (OOM).
	Memory int64
	// CPUWeight is the group's share of CPU time under contention,
	// relative to the default 100 of other groups (1 to 10000; cgroup v2's
	// cpu.weight, mapped to cpu.shares on v1). Zero leaves the default.
	CPUWeight int
}

// Group is one control group, in one (v2) or several (v1) hierarchies.
type Group struct {
	v2 bool
	// dirs maps controller to the group's directory for it ("" for v2);
	// controllers of one v1 hierarchy share a directory.
	dirs   map[string]string
	unique []string // the distinct directories, in creation order
	limits Limits
}

// Events counts the times the group's limits were hit.
type Events struct {
	// PidsMax is how often a fork or clone failed at the pids limit.
	PidsMax int64
	// OOMKills is how many processes the OOM killer killed because the
	// group was at its memory limit.
	OOMKills int64
}

// New creates the group name (one path component, e.g.
// "distri-sandbox-1234-1") below this process's own group in every needed
// hierarchy, with the limits l. The caller adds processes with
// [Group.Add] and must call [Group.Kill] and [Group.Remove] when done.
func New(name string, l Limits) (*Group, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\n") {
		return nil, fmt.Errorf("cgroup: invalid group name %q", name)
	}
	if l.Pids < 0 || l.Memory < 0 || l.CPUWeight < 0 || l.CPUWeight > 10000 {
		return nil, fmt.Errorf("cgroup %s: invalid limits %+v", name, l)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	g, err := layout(parseMountinfo(string(mi)), parseProcCgroup(string(pc)), name)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	g.limits = l
	if err := g.create(); err != nil {
		g.Remove()
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	return g, nil
}

// layout decides between v2 and v1 and where the group's directories go.
func layout(hs []hierarchy, own map[string]string, name string) (*Group, error) {
	for _, h := range hs {
		if !h.V2 {
			continue
		}
		p, ok := own[""]
		if !ok {
			continue
		}
		dir, ok := ownDir(h, p)
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			continue
		}
		avail := strings.Fields(string(b))
		if slices.Contains(avail, "pids") && slices.Contains(avail, "memory") {
			g := &Group{v2: true, dirs: map[string]string{"": filepath.Join(dir, name)}}
			g.unique = []string{g.dirs[""]}
			return g, nil
		}
	}
	g := &Group{dirs: map[string]string{}}
	for _, c := range []string{"pids", "memory", "cpu", "freezer"} {
		for _, h := range hs {
			if h.V2 || !slices.Contains(h.Controllers, c) {
				continue
			}
			p, ok := own[c]
			if !ok {
				continue
			}
			dir, ok := ownDir(h, p)
			if !ok {
				continue
			}
			dir = filepath.Join(dir, name)
			g.dirs[c] = dir
			if !slices.Contains(g.unique, dir) {
				g.unique = append(g.unique, dir)
			}
			break
		}
	}
	for _, c := range []string{"pids", "memory"} {
		if g.dirs[c] == "" {
			return nil, fmt.Errorf("no cgroup v2 hierarchy with the pids and memory controllers, and no cgroup v1 %s hierarchy mounted (see /proc/self/mountinfo)", c)
		}
	}
	return g, nil
}

// V2 reports whether the group lives in the unified (v2) hierarchy.
func (g *Group) V2() bool { return g.v2 }

// Dirs returns the group's directories, one per hierarchy, e.g.
// [/sys/fs/cgroup/pids/distri-sandbox-1-1 /sys/fs/cgroup/memory/distri-sandbox-1-1].
func (g *Group) Dirs() []string { return slices.Clone(g.unique) }

func (g *Group) create() error {
	if g.v2 {
		if err := g.delegate(); err != nil {
			return err
		}
	}
	for _, d := range g.unique {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	l := g.limits
	if g.v2 {
		d := g.dirs[""]
		if err := write(d, "pids.max", maxOr(int64(l.Pids))); err != nil {
			return err
		}
		if err := write(d, "memory.max", maxOr(l.Memory)); err != nil {
			return err
		}
		if l.Memory > 0 {
			if err := write(d, "memory.swap.max", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if l.CPUWeight > 0 {
			if err := write(d, "cpu.weight", strconv.Itoa(l.CPUWeight)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(g.dirs["pids"], "pids.max", maxOr(int64(l.Pids))); err != nil {
		return err
	}
	if l.Memory > 0 {
		if err := write(g.dirs["memory"], "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil {
			return err
		}
		// Without swap accounting (swapaccount=0) the file is absent.
		if err := write(g.dirs["memory"], "memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if l.CPUWeight > 0 {
		d, ok := g.dirs["cpu"]
		if !ok {
			return errors.New("a CPU weight needs the cgroup v1 cpu hierarchy, which is not mounted")
		}
		// cpu.shares is 1024 for the default weight 100.
		if err := write(d, "cpu.shares", strconv.Itoa(max(2, l.CPUWeight*1024/100))); err != nil {
			return err
		}
	}
	return nil
}

// delegate enables the controllers for the children of this process's own
// v2 group.
func (g *Group) delegate() error {
	parent := filepath.Dir(g.dirs[""])
	want := []string{"pids", "memory"}
	if g.limits.CPUWeight > 0 {
		want = append(want, "cpu")
	}
	b, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range want {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := write(parent, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
		return fmt.Errorf("%w (a v2 group that holds processes cannot enable controllers for its children; run the builder in a group of its own with them delegated, e.g. systemd-run --scope -p Delegate=yes)", err)
	}
	return nil
}

// Add moves the process pid, with all its threads, into the group. Its
// children are born there; children it forked before stay outside.
func (g *Group) Add(pid int) error {
	for _, d := range g.unique {
		if err := write(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup: add %d: %w", pid, err)
		}
	}
	return nil
}

// Procs returns the processes in the group, in any hierarchy.
func (g *Group) Procs() ([]int, error) {
	var pids []int
	for _, d := range g.unique {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		for f := range strings.FieldsSeq(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("cgroup: %s/cgroup.procs: %q is no PID", d, f)
			}
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// killTimeout bounds Kill: a process in uninterruptible sleep (D state,
// e.g. on a hung NFS server) can outlive SIGKILL for a long time.
const killTimeout = 10 * time.Second

// Kill kills every process in the group and returns once it is empty. The
// group is frozen first where the kernel can (v1 freezer, v2 cgroup.freeze)
// so a fork bomb cannot outrun the kill; on v2 with cgroup.kill the kernel
// does it all.
func (g *Group) Kill() error {
	g.freeze(true)
	if g.v2 {
		// cgroup.kill (Linux 5.14) kills everything, frozen or not.
		_ = write(g.dirs[""], "cgroup.kill", "1")
	}
	deadline := time.Now().Add(killTimeout)
	for thawed := false; ; {
		pids, err := g.Procs()
		if err != nil {
			g.freeze(false)
			return err
		}
		if len(pids) == 0 {
			g.freeze(false)
			return nil
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		// A frozen process dies of SIGKILL only once thawed; nothing
		// unkilled is left to fork now.
		if !thawed {
			g.freeze(false)
			thawed = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: processes %v still in %s after SIGKILL for %v", pids, g.unique[0], killTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// freeze freezes or thaws the group, if a freezer is available; it waits
// (briefly) for a freeze to complete.
func (g *Group) freeze(on bool) {
	if g.v2 {
		v := map[bool]string{true: "1", false: "0"}[on]
		if write(g.dirs[""], "cgroup.freeze", v) != nil || !on {
			return
		}
		for range 100 {
			b, err := os.ReadFile(filepath.Join(g.dirs[""], "cgroup.events"))
			if err != nil || strings.Contains(string(b), "frozen 1") {
				return
			}
			time.Sleep(time.Millisecond)
		}
		return
	}
	d, ok := g.dirs["freezer"]
	if !ok {
		return
	}
	v := map[bool]string{true: "FROZEN", false: "THAWED"}[on]
	if write(d, "freezer.state", v) != nil || !on {
		return
	}
	for range 100 {
		b, err := os.ReadFile(filepath.Join(d, "freezer.state"))
		if err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Events reads how often the group hit its limits.
func (g *Group) Events() (Events, error) {
	var ev Events
	var err error
	if g.v2 {
		d := g.dirs[""]
		if ev.PidsMax, err = readKey(filepath.Join(d, "pids.events"), "max"); err != nil {
			return ev, err
		}
		if ev.OOMKills, err = readKey(filepath.Join(d, "memory.events"), "oom_kill"); err != nil {
			return ev, err
		}
		return ev, nil
	}
	if ev.PidsMax, err = readKey(filepath.Join(g.dirs["pids"], "pids.events"), "max"); err != nil {
		return ev, err
	}
	// oom_kill is in memory.oom_control since Linux 4.13; under_oom is
	// set while the group is at its limit with the OOM killer disabled.
	oc := filepath.Join(g.dirs["memory"], "memory.oom_control")
	if ev.OOMKills, err = readKey(oc, "oom_kill"); err != nil {
		return ev, err
	}
	if ev.OOMKills == 0 {
		under, err := readKey(oc, "under_oom")
		if err != nil {
			return ev, err
		}
		ev.OOMKills = under
	}
	return ev, nil
}

// removeTimeout bounds how long Remove waits for exiting processes to leave.
const removeTimeout = 5 * time.Second

// Remove removes the group's directories. It fails if processes are still
// in the group (call [Group.Kill] first); a group already removed is no
// error.
func (g *Group) Remove() error {
	var errs []error
	deadline := time.Now().Add(removeTimeout)
	for _, d := range slices.Backward(g.unique) {
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			// EBUSY while a killed process is still being torn down.
			if errors.Is(err, unix.EBUSY) && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", d, err))
			break
		}
	}
	return errors.Join(errs...)
}

func maxOr(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// write writes value to the control file dir/name. Control files take one
// value per write(2) and report a bad value as the write's error.
func write(dir, name, value string) error {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

// readKey returns the number after key in a flat-keyed control file
// ("max 3\n"); a missing key is 0.
func readKey(file, key string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cgroup: %s: %q: %w", file, line, err)
		}
		return n, nil
	}
	return 0, nil
}
