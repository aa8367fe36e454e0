package sysinit

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/internal/pid1"
)

// exitStatus is a child's wait status.
type exitStatus unix.WaitStatus

func (e exitStatus) String() string {
	ws := unix.WaitStatus(e)
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// reaper is the only caller of wait4 in PID 1: it reaps every child,
// ours and orphans alike, and hands the statuses of ours to whoever
// waits for them. (os/exec's Wait would race with it, so processes are
// started with start and waited for with wait.)
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan exitStatus
	exited  map[int]exitStatus // ours that exited before anyone waited
	ours    map[int]bool
	sigchld chan os.Signal
	done    chan struct{}
}

func startReaper() *reaper {
	r := &reaper{
		waiters: map[int]chan exitStatus{}, exited: map[int]exitStatus{}, ours: map[int]bool{},
		sigchld: make(chan os.Signal, 1), done: make(chan struct{}),
	}
	signal.Notify(r.sigchld, unix.SIGCHLD)
	go r.loop()
	return r
}

func (r *reaper) loop() {
	for {
		r.reapAll()
		select {
		case <-r.sigchld:
		case <-time.After(time.Second): // a missed signal costs a second at most
		case <-r.done:
			return
		}
	}
}

func (r *reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		if ch, ok := r.waiters[pid]; ok {
			ch <- exitStatus(ws)
			delete(r.waiters, pid)
		} else if r.ours[pid] {
			r.exited[pid] = exitStatus(ws)
		}
		delete(r.ours, pid)
		r.mu.Unlock()
	}
}

func (r *reaper) stop() {
	signal.Stop(r.sigchld)
	close(r.done)
}

// start starts a process that wait can wait for.
func (r *reaper) start(path string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	r.mu.Lock() // so the reaper cannot see the pid before it is ours
	defer r.mu.Unlock()
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return nil, err
	}
	r.ours[p.Pid] = true
	return p, nil
}

// wait returns a channel that gets pid's status when it exits.
func (r *reaper) wait(pid int) <-chan exitStatus {
	ch := make(chan exitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.exited[pid]; ok {
		ch <- st
		delete(r.exited, pid)
		return ch
	}
	r.waiters[pid] = ch
	return ch
}

// killAll sends sig to every process but PID 1 and except, and waits
// up to grace for them to be gone.
func (r *reaper) killAll(sig unix.Signal, grace time.Duration, except *os.Process) {
	deadline := time.Now().Add(grace)
	for {
		pids := otherProcesses(except)
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			unix.Kill(pid, sig)
		}
		time.Sleep(100 * time.Millisecond)
		r.reapAll()
	}
}

// otherProcesses lists user-space processes other than PID 1 and
// except (kernel threads have no cmdline).
func otherProcesses(except *os.Process) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid <= 1 {
			continue
		}
		if except != nil && pid == except.Pid {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err != nil || len(b) == 0 {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func notifySignals() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	return ch
}

// haltFor maps a signal to how to halt: SIGINT (Ctrl-Alt-Del) and
// SIGUSR1 reboot, SIGTERM and SIGUSR2 power off.
func haltFor(sig os.Signal) pid1.Halt {
	switch sig {
	case syscall.SIGINT, syscall.SIGUSR1:
		return pid1.Reboot
	}
	return pid1.PowerOff
}
