package fusefs

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
)

var loadDuration = flag.Duration("load-duration", 15*time.Second, "how long TestLoad reads while rescans run")

// TestLoad runs 8 reader processes on random ranges of random files for
// -load-duration while packages come and go with rescans: no read may
// fail or return wrong bytes, and nothing may hang.
func TestLoad(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			testLoad(t, mode.opts, *loadDuration/time.Duration(len(readModes)))
		})
	}
}

func testLoad(t *testing.T, opts []mountOpt, d time.Duration) {
	store := t.TempDir()
	var lines []string
	srv, mnt, logs := func() (*Server, string, *distritest.Buffer) {
		var srcs []string
		var fulls []string
		for i := range 6 {
			full := fmt.Sprintf("stable%d-amd64-1-%d", i, i+1)
			files := map[string]string{}
			for j := range 5 {
				size := []int{0, 100, 4096 + 3, 200000, 2<<20 + 11}[j]
				files[fmt.Sprintf("out/share/stable%d/f%d", i, j)] = string(distritest.Bytes(size, int64(i*10+j)))
			}
			files[fmt.Sprintf("bin/stable%d", i)] = string(distritest.Bytes(300000, int64(i)))
			srcs = append(srcs, mkpkg(t, store, full, files, nil))
			fulls = append(fulls, full)
		}
		srv, mnt, logs := mountStore(t, store, opts...)
		for i, src := range srcs {
			for j := range 5 {
				rel := fmt.Sprintf("out/share/stable%d/f%d", i, j)
				lines = append(lines, filepath.Join(mnt, fulls[i], rel)+"\t"+filepath.Join(src, rel))
				lines = append(lines, filepath.Join(mnt, fmt.Sprintf("share/stable%d/f%d", i, j))+"\t"+filepath.Join(src, rel))
			}
			lines = append(lines, filepath.Join(mnt, fmt.Sprintf("bin/stable%d", i))+"\t"+filepath.Join(src, fmt.Sprintf("bin/stable%d", i)))
		}
		return srv, mnt, logs
	}()
	work := t.TempDir()
	list := filepath.Join(work, "files")
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := filepath.Join(work, "stop")
	type reader struct {
		cmd  *exec.Cmd
		out  strings.Builder
		done chan error
	}
	var readers []*reader
	for i := range 8 {
		r := &reader{cmd: exec.Command(os.Args[0]), done: make(chan error, 1)}
		r.cmd.Env = append(os.Environ(), helperEnv+"=reader", "DISTRI_FUSEFS_FILES="+list, "DISTRI_FUSEFS_STOP="+stop, fmt.Sprint("DISTRI_FUSEFS_SEED=", i))
		r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { r.done <- r.cmd.Wait() }()
		readers = append(readers, r)
	}

	// Packages come and go. zchurn sorts after every stable package, so
	// the bin/stable0 it also ships never wins: readers see no change.
	rescans := 0
	deadline := time.Now().Add(d)
	for n := 0; time.Now().Before(deadline); n++ {
		full := fmt.Sprintf("zchurn-amd64-1-%d", n+1)
		mkpkg(t, store, full, map[string]string{"bin/zchurn": "churn", "bin/stable0": "loses", fmt.Sprintf("out/share/zchurn/%d", n): "x"}, nil)
		if n > 0 {
			removePkg(t, store, fmt.Sprintf("zchurn-amd64-1-%d", n))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := srv.Rescan(ctx)
		cancel()
		if err != nil {
			t.Fatalf("rescan %d: %v", n, err)
		}
		rescans++
		if b, err := os.ReadFile(filepath.Join(mnt, "bin/zchurn")); err != nil || string(b) != "churn" {
			t.Fatalf("rescan %d: read /ro/bin/zchurn = %q, %v", n, b, err)
		}
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, r := range readers {
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("reader %d: %v: %s", i, err, r.out.String())
				continue
			}
			var n int
			fmt.Sscan(r.out.String(), &n)
			total += n
		case <-time.After(60 * time.Second):
			r.cmd.Process.Kill()
			t.Errorf("reader %d hangs", i)
		}
	}
	t.Logf("%d rescans, %d reads by 8 processes in %v", rescans, total, d)
	if strings.Contains(logs.String(), "EIO") {
		t.Errorf("daemon logged errors:\n%s", logs)
	}
}
