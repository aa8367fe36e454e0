package sandbox

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults of the Limits fields left zero.
const (
	DefaultPids    = 4096
	DefaultTimeout = 6 * time.Hour
	// DefaultTmpfs is the size of each scratch tmpfs (the root, /tmp,
	// /dev/shm). Their pages count against Memory too, so together they
	// never hold more than it.
	DefaultTmpfs = 4 << 30
	// DefaultCPUWeight is the kernel's default: an equal share.
	DefaultCPUWeight = 100
)

// Limits bounds the resources of one step: all its processes together, in
// a control group made for it (lib/cgroup), and its tmpfs mounts. A step
// that hits one fails with a *LimitError, even if it exited 0 (a build
// whose fork failed, or one of whose processes the OOM killer took, is not
// to be trusted). Zero fields mean the defaults.
type Limits struct {
	// Pids is how many tasks (processes and threads) may exist at once,
	// e.g. 4096. Zero means DefaultPids.
	Pids int
	// Memory is the RAM in bytes, e.g. 12 << 30, counting page cache and
	// the files in the sandbox's tmpfs mounts; no swap on top. Zero means
	// half of the host's RAM.
	Memory int64
	// CPUWeight is the step's CPU share under contention, 1 to 10000,
	// against the default 100 of everything else. Zero means
	// DefaultCPUWeight.
	CPUWeight int
	// Timeout is the wall-clock time the step may take, e.g. 2*time.Hour;
	// it is killed at the deadline. Zero means DefaultTimeout, negative
	// means none.
	Timeout time.Duration
	// Tmpfs is the size in bytes of each scratch tmpfs: the root, /tmp
	// and /dev/shm, e.g. 1 << 30; each gets one inode per 16 KiB of it
	// (at least 1024). /dev gets 1 MiB and 256 inodes. Zero means
	// DefaultTmpfs.
	Tmpfs int64
}

// LimitError reports a step stopped, or failed, by one of its Limits.
type LimitError struct {
	Argv []string // e.g. ["make", "-j2"]
	// Limit names the limit hit as the flag of distri-build that sets
	// it: "pids", "memory" or "timeout".
	Limit string
	// Value is the limit: a count for pids, bytes for memory, a
	// time.Duration for timeout.
	Value int64
	// Err is what the step's exit gave otherwise, e.g. an *ExitError, or
	// nil.
	Err error
}

func (e *LimitError) Error() string {
	var what string
	switch e.Limit {
	case "pids":
		what = fmt.Sprintf("hit the limit of %d processes (--pids)", e.Value)
	case "memory":
		what = fmt.Sprintf("ran out of memory: limit %s (--memory)", FormatSize(e.Value))
	case "timeout":
		what = fmt.Sprintf("exceeded the time limit of %v (--timeout)", time.Duration(e.Value))
	default:
		what = fmt.Sprintf("hit the %s limit of %d", e.Limit, e.Value)
	}
	return fmt.Sprintf("build step %q %s", strings.Join(e.Argv, " "), what)
}

func (e *LimitError) Unwrap() error { return e.Err }

// ParseSize parses a size in bytes with an optional binary unit: "4096",
// "512K", "64M", "64MiB", "12G", "12GiB", "1T" (K, M, G, T are powers of
// 1024; a B suffix is allowed).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift > 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional K, M, G or T, e.g. 12G", s)
	}
	return n << shift, nil
}

// FormatSize prints bytes in the largest binary unit that divides them
// exactly, or with one decimal: "64 MiB", "12 GiB", "1.5 GiB".
func FormatSize(n int64) string {
	units := []string{"TiB", "GiB", "MiB", "KiB"}
	for i, u := range units {
		shift := uint(40 - 10*i)
		if n >= 1<<shift {
			if n%(1<<shift) == 0 {
				return fmt.Sprintf("%d %s", n>>shift, u)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(int64(1)<<shift), u)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
