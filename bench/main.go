// Command bench runs distri's benchmarks beside their peers, in the same
// run, and prints the wall-time ratios as a table. The machine it runs on
// is shared and noisy, so each measurement alternates ours and the peer's
// and reports the median of several rounds.
//
//	go run ./bench [-rounds 3] [-tree /usr/local/go] [-only squashfs]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"distri.dev/distri/lib/sandbox"
)

type result struct {
	name       string
	ours, peer time.Duration
	peerName   string
	note       string
}

func main() {
	if sandbox.IsInit(os.Args[0]) {
		sandbox.Init() // the build benchmark's sandboxes; does not return
	}
	rounds := flag.Int("rounds", 3, "rounds per benchmark; the median counts")
	tree := flag.String("tree", filepath.Join(runtime.GOROOT()), "a large real directory tree to use as input")
	only := flag.String("only", "", "run only benchmarks whose name contains this")
	workParent := flag.String("work", defaultWork(), "where benchmarks write; tmpfs keeps disk noise out of the ratios")
	flag.Parse()
	work, err := os.MkdirTemp(*workParent, "distri-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)

	var results []result
	for _, b := range []struct {
		name string
		run  func(work, tree string, rounds int) ([]result, error)
	}{
		{"squashfs", benchSquashfs},
		{"install", benchInstall},
		{"fuse", benchFuse},
		{"initramfs", benchInitramfs},
		{"image", benchImage},
		{"build", benchBuild},
		{"release", benchRelease},
	} {
		if *only != "" && !strings.Contains(b.name, *only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s on %s (%d rounds)\n", b.name, *tree, *rounds)
		rs, err := b.run(work, *tree, *rounds)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", b.name, err))
		}
		results = append(results, rs...)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tours\tpeer\tpeer time\tratio (ours/peer)\tnote")
	for _, r := range results {
		if r.peer == 0 { // no peer to run: the note says what to compare with
			fmt.Fprintf(tw, "%s\t%v\t-\t-\t-\t%s\n", r.name, r.ours.Round(time.Millisecond), r.note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%v\t%.2fx\t%s\n", r.name, r.ours.Round(time.Millisecond), r.peerName,
			r.peer.Round(time.Millisecond), float64(r.ours)/float64(r.peer), r.note)
	}
	tw.Flush()
}

// measure runs ours and peer alternately rounds times and returns the
// medians.
func measure(rounds int, ours, peer func() error) (time.Duration, time.Duration, error) {
	var o, p []time.Duration
	for range rounds {
		for _, m := range []struct {
			f func() error
			d *[]time.Duration
		}{{ours, &o}, {peer, &p}} {
			start := time.Now()
			if err := m.f(); err != nil {
				return 0, 0, err
			}
			*m.d = append(*m.d, time.Since(start))
		}
	}
	return median(o), median(p), nil
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// defaultWork is /dev/shm (tmpfs) where it exists: on this shared machine
// the disk's latency varies by seconds between runs, which would drown
// the difference between ours and the peer.
func defaultWork() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	os.Exit(1)
}
