package sysinit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The /ro safety net. /bin and /lib of a distri system are symlinks into
// /ro, so when distri-fuse dies, nothing new can be started: not even a
// shell to repair it. PID 1 therefore
//
//   - starts distri-fuse with oom_score_adj -1000, so that the OOM
//     killer picks anything else first;
//   - watches it (through the reaper, which sees every child's exit),
//     and when it exits without being asked to, detaches the dead mount
//     (umount -l: the dead connection answers ENOTCONN, and a new mount
//     cannot go on top of a mount point that cannot be looked up) and
//     starts a new distri-fuse that mounts /ro afresh;
//   - restarts at once the first time, then waits 1 s, 2 s, 4 s … up to
//     30 s between restarts while the daemon keeps dying within a
//     minute of starting, so that a broken store does not make PID 1
//     spin.
//
// Decision: replace the mount rather than keep the /dev/fuse fd in PID 1
// and hand it to the new daemon. A FUSE connection is stateful: the
// kernel holds node ids and open file handles the old daemon gave out,
// and has done the INIT handshake with it; a new daemon knows none of
// them, so handing it the fd would only turn ENOTCONN into wrong
// answers. With a new mount, files that were open in the old /ro fail
// (ENOTCONN) and are opened again by whoever retries; every new lookup,
// exec and dlopen works again.
//
// Only while distri-init supervises: once it has exec'd systemd, PID 1
// is systemd and the daemon (still at -1000) is its business.

// fuseDaemon keeps distri-fuse serving a store on a mount point.
type fuseDaemon struct {
	opts   FuseOptions
	reaper *reaper
	logf   func(string, ...any)

	mu       sync.Mutex
	proc     *os.Process   // the running daemon
	stopping bool          // stop was called: exits are not restarted
	quit     chan struct{} // closed by stop
	done     chan struct{} // closed when supervise returns
}

// maxRestartDelay bounds the wait between restarts of a daemon that
// keeps dying.
const maxRestartDelay = 30 * time.Second

// startFuseDaemon starts distri-fuse, waits until it is ready, and
// restarts it whenever it exits until stop is called. opts must have
// its defaults filled in (see FuseOptions).
func startFuseDaemon(r *reaper, opts FuseOptions, logf func(string, ...any)) (*fuseDaemon, error) {
	d := &fuseDaemon{opts: opts, reaper: r, logf: logf, quit: make(chan struct{}), done: make(chan struct{})}
	p, err := d.start()
	if err != nil {
		return nil, err
	}
	d.proc = p
	go d.supervise(p)
	return d, nil
}

// start starts one distri-fuse and waits for its readiness.
func (d *fuseDaemon) start() (*os.Process, error) {
	o := d.opts
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		wr.Close()
		return nil, err
	}
	defer null.Close()
	stderr := o.Stderr
	if stderr == nil {
		stderr = null
	}
	// stdout (the mount point distri-fuse prints when ready) is not for
	// the console: readiness comes through fd 3.
	// "@" in argv[0] asks systemd not to kill the daemon at shutdown: it
	// serves the root's /bin and /lib (systemd's root storage daemons).
	// TZ= keeps Go from reading /etc/localtime, a symlink into /ro.
	p, err := d.reaper.start(o.Fuse, []string{"@distri-fuse", "--store", o.Store, "--readiness-fd", "3", o.Mount},
		&os.ProcAttr{Dir: "/", Env: []string{"TZ=", "PATH=/bin:/sbin"}, Files: []*os.File{null, null, stderr, wr}})
	wr.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Fuse, err)
	}
	// Set before the mount exists, so there is no window in which /ro
	// is served by a daemon the OOM killer prefers.
	if err := protectFromOOM(p.Pid); err != nil {
		d.logf("%s (pid %d): %v", o.Fuse, p.Pid, err)
	}
	switch err := waitReady(rd, o.Timeout); err {
	case nil:
		return p, nil
	case errNotReady:
		// Keep it: it may still get ready, and a restart would not be
		// faster. supervise restarts it if it dies.
		d.logf("%s did not get ready in %s; going on", o.Fuse, o.Timeout)
		return p, nil
	default:
		<-d.reaper.wait(p.Pid)
		return nil, fmt.Errorf("%s exited before %s was ready", o.Fuse, o.Mount)
	}
}

// protectFromOOM sets pid's oom_score_adj to -1000: never the OOM
// killer's choice.
func protectFromOOM(pid int) error {
	p := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	if err := os.WriteFile(p, []byte("-1000\n"), 0); err != nil {
		return fmt.Errorf("oom_score_adj -1000: %w", err)
	}
	return nil
}

// supervise waits for p to exit and restarts the daemon, until stop.
func (d *fuseDaemon) supervise(p *os.Process) {
	defer close(d.done)
	delay := time.Duration(0)
	for {
		started := time.Now()
		st := <-d.reaper.wait(p.Pid)
		d.mu.Lock()
		stopping := d.stopping
		d.mu.Unlock()
		if stopping {
			return
		}
		if time.Since(started) > time.Minute {
			delay = 0 // it ran a while: this is no crash loop
		}
		d.logf("%s (pid %d) exited (%s): %s is gone; restarting it in %s", d.opts.Fuse, p.Pid, st, d.opts.Mount, delay)
		for {
			select {
			case <-time.After(delay):
			case <-d.quit:
				return
			}
			delay = min(max(2*delay, time.Second), maxRestartDelay)
			d.mu.Lock()
			if d.stopping {
				d.mu.Unlock()
				return
			}
			// Hold the lock over the restart, so that stop sees the new
			// process, not the dead one.
			detachDead(d.opts.Mount)
			np, err := d.start()
			if err == nil {
				d.proc = np
			}
			d.mu.Unlock()
			if err != nil {
				d.logf("restart %s: %v; trying again in %s", d.opts.Fuse, err, delay)
				continue
			}
			d.logf("serving %s again (distri-fuse pid %d)", d.opts.Mount, np.Pid)
			p = np
			break
		}
	}
}

// detachDead lazily unmounts the dead FUSE mounts on mnt: after a
// daemon's death the mount answers ENOTCONN until it is detached.
// Mounts stacked there are detached in turn; the loop ends once mnt is
// a plain directory again (or after a bound, if something keeps
// mounting).
func detachDead(mnt string) {
	for range 8 {
		if !isMountpoint(mnt) {
			return
		}
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return
		}
	}
}

// isMountpoint reports whether a mount has mnt as its mount point,
// according to /proc/self/mountinfo (a stat would hang or fail on a dead
// FUSE mount).
func isMountpoint(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == mnt {
			return true
		}
	}
	return false
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// process returns the running daemon.
func (d *fuseDaemon) process() *os.Process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// stop ends the supervision, detaches the mount and stops the daemon:
// SIGTERM, then SIGKILL after grace.
func (d *fuseDaemon) stop(grace time.Duration) {
	d.mu.Lock()
	d.stopping = true
	close(d.quit)
	p := d.proc
	d.mu.Unlock()
	unix.Unmount(d.opts.Mount, unix.MNT_DETACH)
	p.Signal(unix.SIGTERM)
	select {
	case <-d.done: // supervise saw it exit
	case <-time.After(grace):
		p.Kill()
		<-d.done
	}
}
