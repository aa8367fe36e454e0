package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/store"
)

// runCmd runs distri-install in-process with args and returns the exit
// code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli.RunArgs(t.Context(), newRootCmd, args...)
}

func TestCommands(t *testing.T) {
	r := mirrortest.NewRepo(t,
		mirrortest.Package{Name: "libc-amd64-1-2"},
		mirrortest.Package{Name: "hello-amd64-2.12-3", Deps: []string{"libc-amd64-1-2"}},
		mirrortest.Package{Name: "help-amd64-1-1"},
	)
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // stdout, exactly
		wantErr  string // substring of stderr
	}{
		{name: "help has examples", args: []string{"--help"}, wantErr: ""},
		{name: "no packages", args: g, wantCode: 2, wantErr: "no packages named"},
		{name: "unknown package", args: append(g, "helo"), wantCode: 1, wantErr: `unknown package "helo" (did you mean hello, help?)`},
		{name: "bad transport", args: append(g, "--transport", "fast", "hello"), wantCode: 2, wantErr: `--transport "fast": want auto, compressed or identity`},
		{name: "install", args: append(g, "--transport", "compressed", "hello"), wantOut: "hello-amd64-2.12-3\nlibc-amd64-1-2\n"},
		{name: "install again", args: append(g, "hello")},
		{name: "list", args: append(g, "list"), wantOut: "hello-amd64-2.12-3\nlibc-amd64-1-2\n"},
		{name: "list prefix", args: append(g, "list", "--installed", "li"), wantOut: "libc-amd64-1-2\n"},
		{name: "list available", args: append(g, "list", "--available", "hel"), wantOut: "hello-amd64-2.12-3\nhelp-amd64-1-1\n"},
		{name: "list both", args: append(g, "list", "--available", "--installed"), wantCode: 2, wantErr: "none of the others can be"},
		{name: "update", args: append(g, "update")},
		{name: "remove", args: append(g, "remove", "hello"), wantOut: "hello-amd64-2.12-3\n"},
		{name: "gc", args: append(g, "gc"), wantOut: "libc-amd64-1-2\n"},
		{name: "verbose install", args: append(g, "-v", "hello"), wantOut: "hello-amd64-2.12-3\nlibc-amd64-1-2\n", wantErr: "distri-install: fetch 2 packages (0.0 MiB): "},
		{name: "remove nothing", args: append(g, "remove"), wantCode: 2, wantErr: "requires at least 1 arg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, errs)
			}
			if tt.name == "help has examples" {
				if !strings.Contains(out, "Examples:\n  % distri-install") {
					t.Errorf("--help lacks examples: %q", out)
				}
				return
			}
			if out != tt.wantOut {
				t.Errorf("stdout %q, want %q", out, tt.wantOut)
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errs, tt.wantErr)
			}
		})
	}
}

// slowHandler serves h in small, delayed pieces, so that an install
// takes long enough to be killed at any point.
type slowHandler struct{ h http.Handler }

func (s slowHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.h.ServeHTTP(&slowWriter{w}, r)
}

type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(b []byte) (int, error) {
	const chunk = 8 << 10
	n := 0
	for len(b) > 0 {
		c := min(chunk, len(b))
		m, err := s.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		s.ResponseWriter.(http.Flusher).Flush()
		b = b[c:]
		time.Sleep(2 * time.Millisecond)
	}
	return n, nil
}

// checkWhole fails unless every package visible in the store (a meta
// file) is whole and byte for byte what the index says.
func checkWhole(t *testing.T, roimg string, idx map[string]*pb.Package) int {
	t.Helper()
	s, err := store.Open(roimg)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(roimg)
	if err != nil {
		t.Fatal(err)
	}
	whole := 0
	for _, e := range ents {
		full, ok := strings.CutSuffix(e.Name(), ".meta.textproto")
		if !ok {
			continue
		}
		whole++
		p, ok := idx[full]
		if !ok {
			t.Errorf("%s: not a package of the repository", e.Name())
			continue
		}
		for _, f := range []struct {
			path string
			sum  string
		}{{s.ImagePath(full), p.GetImageSha256()}, {s.MetaPath(full), p.GetMetaSha256()}} {
			b, err := os.ReadFile(f.path)
			if err != nil {
				t.Errorf("visible package %s: %v", full, err)
				continue
			}
			if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != f.sum {
				t.Errorf("visible package %s: %s does not match the index", full, filepath.Base(f.path))
			}
		}
	}
	return whole
}

// TestKill9 kills distri-install 20 times and checks each time that the
// store holds only whole packages; a final run must complete the
// install. Even runs are killed (kill -9) at a random time of an install
// from a slow server, mostly while it downloads; odd runs die by SIGKILL
// at a random step of the commit (store.CrashEnv): before any rename,
// right after the first image renames, between the image and the meta
// renames, after some metas, or after the last fsync.
func TestKill9(t *testing.T) {
	bin := distritest.Binary(t, "distri.dev/distri/distri-install")
	var pkgs []mirrortest.Package
	var names, fulls []string
	for i := range 8 {
		name := fmt.Sprintf("pkg%d-amd64-1.0-%d", i, i+1)
		pkgs = append(pkgs, mirrortest.Package{Name: name, Blob: 192 << 10, Deps: []string{"base-amd64-1-1"}, Files: map[string]string{
			"etc/pkg" + fmt.Sprint(i) + ".conf": "x\n",
		}})
		names = append(names, fmt.Sprintf("pkg%d", i))
		fulls = append(fulls, name)
	}
	pkgs = append(pkgs, mirrortest.Package{Name: "base-amd64-1-1", Blob: 64 << 10})
	fulls = append(fulls, "base-amd64-1-1")
	r := mirrortest.NewRepo(t, pkgs...)
	srv := httptest.NewServer(slowHandler{mirror.Handler(r.Dir)})
	defer srv.Close()

	b, err := os.ReadFile(filepath.Join(r.Dir, "pkg", "index"))
	if err != nil {
		t.Fatal(err)
	}
	var index pb.Index
	if err := proto.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	idx := map[string]*pb.Package{}
	for _, p := range index.GetPackage() {
		idx[p.GetName()] = p
	}

	root := t.TempDir()
	roimg := filepath.Join(root, "roimg")
	args := append([]string{"--root", root, "--repo", srv.URL, "--pubkey", r.PubFile(t), "-j", "2"}, names...)
	var out bytes.Buffer
	run := func(env ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out.Reset()
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	killedBySignal := func(err error) bool {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return false
		}
		ws, ok := ee.Sys().(syscall.WaitStatus)
		return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}

	// How long one undisturbed install takes, to spread the kills over.
	start := time.Now()
	if err := run().Wait(); err != nil {
		t.Fatalf("undisturbed install: %v\n%s", err, out.Bytes())
	}
	took := time.Since(start)
	t.Logf("an undisturbed install takes %v", took)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	timedKills := 0
	commitKills := map[string]int{}
	for i := range 20 {
		if i%4 < 2 {
			// Start over, so there is work to kill.
			if err := os.RemoveAll(roimg); err != nil {
				t.Fatal(err)
			}
		} else {
			// Or remove a few packages the way remove does.
			s, _ := store.Open(roimg)
			l, err := s.Lock(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for j := range 8 {
				if rng.IntN(2) == 0 {
					s.Remove(l, fmt.Sprintf("pkg%d-amd64-1.0-%d", j, j+1))
				}
			}
			l.Unlock()
		}
		s, _ := store.Open(roimg)
		n := 0 // packages the run commits
		for _, f := range fulls {
			if !s.Has(f) {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("run %d: nothing to install", i)
		}
		if i%2 == 0 {
			cmd := run()
			at := time.Duration(rng.Int64N(int64(took)))
			time.Sleep(at)
			if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
				timedKills++
			}
			cmd.Wait()
			whole := checkWhole(t, roimg, idx)
			half, _ := filepath.Glob(filepath.Join(roimg, "*.squashfs"))
			t.Logf("run %d: kill -9 at %v: %d whole packages, %d images", i, at, whole, len(half))
			continue
		}
		// The commit has 2n+4 steps (see store.CrashEnv): die after
		// step k of them.
		k := rng.IntN(2*n + 4)
		var where string
		switch {
		case k <= 1:
			where = "before the renames"
		case k <= n+1:
			where = "among the image renames"
		case k == n+2:
			where = "after the images' directory fsync"
		case k < 2*n+3:
			where = "among the meta renames"
		default:
			where = "after the final fsync"
		}
		cmd := run(fmt.Sprintf("%s=%d", store.CrashEnv, k))
		if err := cmd.Wait(); !killedBySignal(err) {
			t.Fatalf("run %d: with %s=%d distri-install ended with %v, want death by SIGKILL in the commit\n%s", i, store.CrashEnv, k, err, out.Bytes())
		}
		commitKills[where]++
		whole := checkWhole(t, roimg, idx)
		half, _ := filepath.Glob(filepath.Join(roimg, "*.squashfs"))
		t.Logf("run %d: killed after commit step %d of %d (%s): %d whole packages, %d images", i, k, 2*n+3, where, whole, len(half))
		// The metas are the commit point: the packages of this run
		// are there exactly when their meta renames were.
		if want := len(fulls) - n + max(0, min(n, k-(n+2))); whole != want {
			t.Errorf("run %d: %d whole packages after commit step %d, want %d", i, whole, k, want)
		}
	}
	if timedKills < 5 {
		t.Errorf("only %d of 10 timed runs were killed before they finished", timedKills)
	}
	t.Logf("commit kills: %v", commitKills)

	cmd := run()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final install: %v\n%s", err, out.Bytes())
	}
	if n := checkWhole(t, roimg, idx); n != len(pkgs) {
		t.Errorf("after the final install the store has %d packages, want %d", n, len(pkgs))
	}
	ents, _ := os.ReadDir(filepath.Join(roimg, ".staging"))
	if len(ents) != 0 {
		t.Errorf("staging not empty after the final install: %d entries", len(ents))
	}
	s, _ := store.Open(roimg)
	set, err := s.Installed()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 8 {
		want = append(want, fmt.Sprintf("pkg%d-amd64", i))
	}
	if diff := cmp.Diff(want, set); diff != "" {
		t.Errorf("installed set mismatch (-want +got):\n%s", diff)
	}
}

// TestReadOnlyCreatesNothing: list, remove and gc of a root without a
// store, and an install with a bad name, create no folder (list used to
// create ROOT/roimg, i.e. /roimg without --root).
func TestReadOnlyCreatesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "newroot")
	for _, args := range [][]string{
		{"--root", root, "list"},
		{"--root", root, "remove", "hello"},
		{"--root", root, "gc"},
		{"--root", root, "--repo", root, "--pubkey", root + ".pub", "hello\nworld"},
	} {
		runCmd(t, args...)
		if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("distri-install %q created %s (%v)", args, root, err)
		}
	}
}
