package repo_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/repo"
)

// A hostile mirror serves a real, signed repository except for the
// index or its signature, which it replaces with an attack.
type hostile struct {
	name      string
	transport string // what the client asks for: compressed or identity
	index     func(w http.ResponseWriter)
	sig       func(w http.ResponseWriter) // nil: the repository's own
	wantErr   error                       // for the in-process client
	wantMsg   string                      // in distri-install's stderr
}

// endlessWrite writes chunk until the client goes away.
func endlessWrite(w http.ResponseWriter, chunk []byte) {
	for {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// zstdRLE is the start of a zstd frame with a window of 1<<windowLog
// bytes (no content size) and one RLE block of 128 KiB zeros: a frame of
// any decoded size is the header then the block again and again, 4
// bytes on the wire for 128 KiB decoded.
func zstdRLE(windowLog int) (header, block []byte) {
	header = []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	const size = 128 << 10
	bh := uint32(size)<<3 | 1<<1 // not last, RLE
	block = []byte{byte(bh), byte(bh >> 8), byte(bh >> 16), 0x00}
	return header, block
}

func zstdBomb(windowLog int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		header, block := zstdRLE(windowLog)
		w.Header().Set("Content-Encoding", "zstd")
		w.Write(header)
		endlessWrite(w, bytes.Repeat(block, 1024))
	}
}

func hostileMirrors(t *testing.T, r *mirrortest.Repo) []hostile {
	// A gzip member of 16 MiB of zeros; members one after another
	// decode as one stream.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(make([]byte, 16<<20))
	zw.Close()
	// 64 MiB of empty package entries (field 1, length 0), and a
	// signature by the trusted key over something else.
	empty := bytes.Repeat([]byte{0x0a, 0x00}, 32<<20)
	badSig, err := minisign.Sign(r.Key, strings.NewReader("another index"), "")
	if err != nil {
		t.Fatal(err)
	}
	return []hostile{
		{
			name: "endless signature", transport: "compressed",
			sig: func(w http.ResponseWriter) {
				w.Write([]byte("untrusted comment: "))
				endlessWrite(w, bytes.Repeat([]byte("A"), 64<<10))
			},
			wantErr: repo.ErrTooLarge, wantMsg: "index.minisig: larger than the limit",
		},
		{
			name: "endless index", transport: "identity",
			index:   func(w http.ResponseWriter) { endlessWrite(w, make([]byte, 64<<10)) },
			wantErr: repo.ErrTooLarge, wantMsg: "index: larger than the limit",
		},
		{
			name: "zstd bomb", transport: "compressed",
			index:   zstdBomb(23), // within the window limit: decodes up to the size limit
			wantErr: repo.ErrTooLarge, wantMsg: "index: larger than the limit",
		},
		{
			name: "zstd bomb with a 256 MiB window", transport: "compressed",
			index:   zstdBomb(28),
			wantErr: zstd.ErrWindowSizeExceeded, wantMsg: "window size exceeded",
		},
		{
			name: "gzip bomb", transport: "compressed",
			index: func(w http.ResponseWriter) {
				w.Header().Set("Content-Encoding", "gzip")
				endlessWrite(w, gz.Bytes())
			},
			wantErr: repo.ErrTooLarge, wantMsg: "index: larger than the limit",
		},
		{
			name: "zstd bomb not asked for", transport: "identity",
			index:   zstdBomb(23),
			wantErr: repo.ErrEncoding, wantMsg: `unrequested encoding: Content-Encoding "zstd", asked for identity`,
		},
		{
			name: "64 MiB index with a bad signature", transport: "compressed",
			index:   func(w http.ResponseWriter) { w.Write(empty) },
			sig:     func(w http.ResponseWriter) { w.Write(badSig) },
			wantErr: minisign.ErrVerify, wantMsg: "signature verification failed: the signed data does not match",
		},
		{
			name: "index with a good signature", transport: "compressed",
			index: nil, wantErr: nil, wantMsg: "",
		},
	}
}

// serve serves r with the attack h.
func (h hostile) serve(t *testing.T, r *mirrortest.Repo) string {
	good := mirror.Handler(r.Dir)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/pkg/index" && h.index != nil:
			h.index(w)
		case req.URL.Path == "/pkg/index.minisig" && h.sig != nil:
			h.sig(w)
		default:
			good.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHostileMirror attacks the in-process client with each hostile
// mirror: each must fail with its error, allocating little.
func TestHostileMirror(t *testing.T) {
	r := newRepo(t)
	for _, h := range hostileMirrors(t, r) {
		t.Run(h.name, func(t *testing.T) {
			enc := repo.Compressed
			if h.transport == "identity" {
				enc = []string{}
			}
			rp, err := repo.New(repo.Options{URL: h.serve(t, r), Keys: []minisign.PublicKey{r.Pub()}, Encodings: enc,
				RetryDelay: time.Millisecond, MaxIndexSize: 80 << 20, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			idx, err := rp.Summary(t.Context())
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d MiB: %v", alloc>>20, err)
			if h.wantMsg == "" {
				if err != nil || len(idx.GetPackage()) == 0 {
					t.Fatalf("Summary = %v, %v; want the index", idx, err)
				}
				return
			}
			if !errors.Is(err, h.wantErr) || !strings.Contains(err.Error(), h.wantMsg) {
				t.Fatalf("Summary = %v, want %v (%q)", err, h.wantErr, h.wantMsg)
			}
			// Everything beyond what is held in memory goes to disk, and
			// nothing unverified is parsed.
			if alloc > 48<<20 {
				t.Errorf("allocated %d MiB, want at most 48", alloc>>20)
			}
		})
	}
}

// rssHelperEnv makes the test binary run the command in its arguments
// and write the command's peak RSS to the file the variable names (see
// TestMain).
const rssHelperEnv = "DISTRI_TEST_PEAK_RSS"

// TestMain runs the test binary as [peakRSS]'s helper when asked to.
//
// A child's ru_maxrss counts the memory of the process it was forked
// from until it called exec: Linux keeps the high-water mark across
// exec, and Go starts children with vfork, sharing the parent's memory.
// A child of this test process would report the test's own memory (over
// 100 MiB here). So a fresh copy of the test binary, small at exec,
// starts the program and reports what it measured.
func TestMain(m *testing.M) {
	if out := os.Getenv(rssHelperEnv); out != "" {
		cmd := exec.Command(os.Args[1], os.Args[2:]...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, rssHelperEnv+"=") })
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		err := cmd.Run()
		if cmd.ProcessState == nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(125)
		}
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
		if err := os.WriteFile(out, []byte(strconv.FormatInt(rss, 10)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(125)
		}
		os.Exit(cmd.ProcessState.ExitCode())
	}
	os.Exit(m.Run())
}

// peakRSS runs bin with args and returns its peak resident memory in
// bytes, and its error.
func peakRSS(t *testing.T, stderr *bytes.Buffer, bin string, args ...string) (int64, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rss")
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{bin}, args...)...)
	cmd.Env = append(os.Environ(), rssHelperEnv+"="+out, "TMPDIR="+t.TempDir())
	cmd.Stderr = stderr
	err := cmd.Run()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() == 125 {
		t.Fatalf("%s: %v: %s", bin, err, stderr)
	}
	b, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatal(rerr)
	}
	rss, rerr := strconv.ParseInt(string(b), 10, 64)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return rss, err
}

// maxRSSLimit is the bound of distri-install's peak memory against a
// hostile mirror (issue 12).
const maxRSSLimit = 256 << 20

// TestHostileMirrorBinary runs distri-install against each hostile
// mirror and bounds its peak resident memory, with the default limits.
func TestHostileMirrorBinary(t *testing.T) {
	bin := distritest.Binary(t, "distri.dev/distri/distri-install")
	r := newRepo(t)
	pub := r.PubFile(t)
	var report []string
	for _, h := range hostileMirrors(t, r) {
		t.Run(h.name, func(t *testing.T) {
			var stderr bytes.Buffer
			start := time.Now()
			rss, err := peakRSS(t, &stderr, bin, "--root", t.TempDir(), "--repo", h.serve(t, r), "--pubkey", pub,
				"--transport", h.transport, "hello-amd64")
			report = append(report, fmt.Sprintf("%-36s peak RSS %3d MiB, %v", h.name, rss>>20, time.Since(start).Round(10*time.Millisecond)))
			t.Logf("peak RSS %d MiB in %v: %s", rss>>20, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
			if h.wantMsg == "" {
				if err != nil {
					t.Fatalf("install from a good mirror: %v: %s", err, stderr.String())
				}
			} else if err == nil || !strings.Contains(stderr.String(), h.wantMsg) {
				t.Errorf("distri-install = %v, stderr %q; want a failure saying %q", err, stderr.String(), h.wantMsg)
			}
			if rss >= maxRSSLimit {
				t.Errorf("peak RSS %d MiB, want less than %d MiB", rss>>20, maxRSSLimit>>20)
			}
		})
	}
	t.Logf("distri-install against hostile mirrors:\n%s", strings.Join(report, "\n"))
}
