package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"distri.dev/distri/lib/sandbox"
)

// limitOptions are the resource limits of each build step, shared by build
// and batch.
type limitOptions struct {
	memory    string
	pids      int
	cpuWeight int
	timeout   time.Duration
	tmpfsSize string
}

func (o *limitOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.memory, "memory", "", "RAM each build step may use, its tmpfs files included, e.g. 12G (default: half of the machine's RAM)")
	fs.IntVar(&o.pids, "pids", sandbox.DefaultPids, "processes and threads each build step may have at once")
	fs.IntVar(&o.cpuWeight, "cpu-weight", sandbox.DefaultCPUWeight, "CPU share of each build step under contention, 1-10000, against 100 for everything else")
	fs.DurationVar(&o.timeout, "timeout", sandbox.DefaultTimeout, "wall-clock time each build step may take; 0: no limit")
	fs.StringVar(&o.tmpfsSize, "tmpfs-size", "4G", "size of each scratch tmpfs of a build step (/, /tmp, /dev/shm), e.g. 1G")
}

// limits checks the flags and returns them as sandbox.Limits.
func (o *limitOptions) limits() (sandbox.Limits, error) {
	var l sandbox.Limits
	if o.memory != "" {
		n, err := sandbox.ParseSize(o.memory)
		if err != nil {
			return l, fmt.Errorf("--memory: %w", err)
		}
		if n < 16<<20 {
			return l, fmt.Errorf("--memory %s: want at least 16M", o.memory)
		}
		l.Memory = n
	}
	if o.pids < 1 {
		return l, fmt.Errorf("--pids %d: want at least 1", o.pids)
	}
	l.Pids = o.pids
	if o.cpuWeight < 1 || o.cpuWeight > 10000 {
		return l, fmt.Errorf("--cpu-weight %d: want 1 to 10000", o.cpuWeight)
	}
	l.CPUWeight = o.cpuWeight
	switch {
	case o.timeout < 0:
		return l, fmt.Errorf("--timeout %v: want a positive duration, or 0 for none", o.timeout)
	case o.timeout == 0:
		l.Timeout = -1 // none
	default:
		l.Timeout = o.timeout
	}
	n, err := sandbox.ParseSize(o.tmpfsSize)
	if err != nil {
		return l, fmt.Errorf("--tmpfs-size: %w", err)
	}
	if n < 1<<20 {
		return l, fmt.Errorf("--tmpfs-size %s: want at least 1M", o.tmpfsSize)
	}
	l.Tmpfs = n
	return l, nil
}
