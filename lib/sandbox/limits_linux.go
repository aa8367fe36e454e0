package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/cgroup"
)

// tmpfsSizes are the size options of the helper's tmpfs mounts, sent in
// the config.
type tmpfsSizes struct {
	Scratch string // the root, /tmp and /dev/shm, e.g. "size=4294967296,nr_inodes=262144"
	Dev     string // /dev: device binds and links only
}

// limiter applies Limits to one Run: the step's control group and its
// deadline.
//
// A watcher polls the group's event counters every watchEvery while the
// step runs and stops the step at the first fork refused at the pids limit
// or the first OOM kill, as cgroup v2's memory.oom.group would: a build
// that lost a process is not worth finishing, and a fork bomb whose first
// process keeps forking would otherwise hold its slots until the timeout.
//
// The helper is moved into the group right after it starts, before Run
// sends it the config: it blocks reading the config pipe until then, so
// nothing of the step runs, and nothing is forked, outside the group. (Go
// starts the helper's runtime threads before main; moving a process moves
// all its threads.) CLONE_INTO_CGROUP would do it in the clone itself, but
// only on cgroup v2, which the development machines lack.
type limiter struct {
	parent context.Context
	ctx    context.Context // parent with the deadline
	cancel context.CancelFunc
	limits Limits // with the defaults filled in
	tmpfs  tmpfsSizes
	group  *cgroup.Group
	stop   chan struct{} // closed by finish to end the watcher
	done   chan struct{} // closed by the watcher when it ends
}

// watchEvery is how often the watcher reads the group's event counters:
// two small reads per tick.
const watchEvery = 50 * time.Millisecond

var groupSeq atomic.Int64

// startLimits creates the control group for a step of Run.
func startLimits(ctx context.Context, l Limits) (*limiter, error) {
	if l.Pids < 0 || l.Memory < 0 || l.CPUWeight < 0 || l.Tmpfs < 0 {
		return nil, fmt.Errorf("invalid limits %+v: negative", l)
	}
	if l.Pids == 0 {
		l.Pids = DefaultPids
	}
	if l.Memory == 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return nil, fmt.Errorf("sysinfo: %w", err)
		}
		l.Memory = int64(si.Totalram) * int64(si.Unit) / 2
	}
	if l.CPUWeight == 0 {
		l.CPUWeight = DefaultCPUWeight
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.Tmpfs == 0 {
		l.Tmpfs = DefaultTmpfs
	}
	name := fmt.Sprintf("%s%d-%d", groupPrefix, os.Getpid(), groupSeq.Add(1))
	g, err := cgroup.New(name, cgroup.Limits{Pids: l.Pids, Memory: l.Memory, CPUWeight: l.CPUWeight})
	if err != nil {
		return nil, err
	}
	removeStale(g.Dirs())
	lim := &limiter{
		parent: ctx,
		limits: l,
		group:  g,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		tmpfs: tmpfsSizes{
			Scratch: fmt.Sprintf("size=%d,nr_inodes=%d", l.Tmpfs, max(l.Tmpfs/(16<<10), 1024)),
			Dev:     "size=1m,nr_inodes=256",
		},
	}
	if l.Timeout > 0 {
		lim.ctx, lim.cancel = context.WithTimeout(ctx, l.Timeout)
	} else {
		lim.ctx, lim.cancel = context.WithCancel(ctx)
	}
	go lim.watch()
	return lim, nil
}

// watch cancels l.ctx, which kills the helper and with it the PID
// namespace, once the group hit its pids or memory limit.
func (l *limiter) watch() {
	defer close(l.done)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if ev, err := l.group.Events(); err == nil && (ev.PidsMax > 0 || ev.OOMKills > 0) {
			l.cancel()
			return
		}
	}
}

// groupPrefix starts the name of every step's group, followed by the PID
// of the process that runs the step and a counter.
const groupPrefix = "distri-sandbox-"

// removeStale removes the groups of processes that no longer exist next
// to dirs: those of a distri-build killed with SIGKILL, whose steps died
// with it (Pdeathsig, then the PID namespace) but whose empty groups
// stayed. A group that still holds a process is not removed (rmdir
// fails), so a reused PID costs nothing but a leftover.
func removeStale(dirs []string) {
	for _, d := range dirs {
		parent := filepath.Dir(d)
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			rest, ok := strings.CutPrefix(e.Name(), groupPrefix)
			if !ok || !e.IsDir() {
				continue
			}
			pidStr, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || pid <= 0 || pid == os.Getpid() {
				continue
			}
			if unix.Kill(pid, 0) == unix.ESRCH {
				unix.Rmdir(filepath.Join(parent, e.Name()))
			}
		}
	}
}

// add moves the just-started helper into the group; on failure it kills
// the helper.
func (l *limiter) add(cmd *exec.Cmd) error {
	if err := l.group.Add(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	return nil
}

// finish makes sure nothing of the step is left (it kills whatever is
// still in the group and removes the group) and returns the error Run
// returns: a *LimitError if a limit was hit, otherwise err.
func (l *limiter) finish(argv []string, err error) error {
	close(l.stop)
	<-l.done
	timedOut := errors.Is(l.ctx.Err(), context.DeadlineExceeded) && l.parent.Err() == nil
	l.cancel()
	kerr := l.group.Kill()
	ev, everr := l.group.Events()
	rerr := l.group.Remove()
	switch {
	case everr != nil:
		// Which limit was hit is unknown; the step's own error stands.
	case ev.OOMKills > 0:
		err = &LimitError{Argv: argv, Limit: "memory", Value: l.limits.Memory, Err: err}
	case ev.PidsMax > 0:
		err = &LimitError{Argv: argv, Limit: "pids", Value: int64(l.limits.Pids), Err: err}
	case timedOut && err != nil:
		err = &LimitError{Argv: argv, Limit: "timeout", Value: int64(l.limits.Timeout), Err: err}
	}
	if cerr := errors.Join(kerr, everr, rerr); cerr != nil {
		// Leftovers are worth an error even after a failed step.
		return errors.Join(err, fmt.Errorf("sandbox %v: clean up: %w", argv, cerr))
	}
	return err
}
