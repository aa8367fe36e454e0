package repo_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/repo"
)

const image = "hello-amd64-2.12-1.squashfs"

func newRepo(t *testing.T) *mirrortest.Repo {
	return mirrortest.NewRepo(t,
		mirrortest.Package{Name: "hello-amd64-2.12-1", Blob: 300 << 10},
		mirrortest.Package{Name: "libc-amd64-1-1"},
	)
}

func entry(t *testing.T, idx *pb.Index, name string) *pb.Package {
	t.Helper()
	for _, p := range idx.GetPackage() {
		if p.GetName()+".squashfs" == name {
			return p
		}
	}
	t.Fatalf("%s not in index", name)
	return nil
}

func TestIndex(t *testing.T) {
	r := newRepo(t)
	other, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mirror.Handler(r.Dir))
	defer srv.Close()
	for _, tt := range []struct {
		name    string
		url     string
		keys    []minisign.PublicKey
		tamper  bool
		wantErr error
	}{
		{name: "http", url: srv.URL, keys: []minisign.PublicKey{r.Pub()}},
		{name: "local folder", url: r.Dir, keys: []minisign.PublicKey{r.Pub()}},
		{name: "file url", url: "file://" + r.Dir, keys: []minisign.PublicKey{other.Public(), r.Pub()}},
		{name: "other key", url: srv.URL, keys: []minisign.PublicKey{other.Public()}, wantErr: minisign.ErrVerify},
		// A key file that claims the repository key's ID, trusted first,
		// must neither hide the real key nor pass for it.
		{name: "spoofed key id first", url: srv.URL, keys: []minisign.PublicKey{{ID: r.Pub().ID, Key: other.Public().Key}, r.Pub()}},
		{name: "spoofed key id only", url: srv.URL, keys: []minisign.PublicKey{{ID: r.Pub().ID, Key: other.Public().Key}}, wantErr: minisign.ErrVerify},
		{name: "tampered index", url: srv.URL, keys: []minisign.PublicKey{r.Pub()}, tamper: true, wantErr: minisign.ErrVerify},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.tamper {
				// Change the index and every sibling, so that whichever
				// representation is sent is tampered with.
				p := filepath.Join(r.Dir, "pkg", "index")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b = append(b, 0x0a, 0x00) // an empty extra package entry
				os.WriteFile(p, b, 0o644)
				os.Remove(p + ".zst")
				os.Remove(p + ".gz")
			}
			c, err := repo.New(repo.Options{URL: tt.url, Keys: tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Index = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(idx.GetPackage()); got != 2 {
				t.Errorf("index has %d packages, want 2", got)
			}
		})
	}
}

// encodingRecorder stores the Content-Encoding of a response as its
// header is written: before the client can have read the body.
type encodingRecorder struct {
	http.ResponseWriter
	saw *atomic.Value
}

func (e encodingRecorder) WriteHeader(code int) {
	e.saw.Store(e.Header().Get("Content-Encoding"))
	e.ResponseWriter.WriteHeader(code)
}

// TestIndexEncodings reads the index in every representation a server
// may send: the mirror's zstd (with the decoded size in the frame
// header, which sizes the buffer), zstd without it (older mirrors, other
// tools), gzip and identity.
func TestIndexEncodings(t *testing.T) {
	for _, tt := range []struct {
		name    string
		zstd    func(t *testing.T, raw []byte) []byte // replaces index.zst; nil keeps the mirror's
		remove  []string
		wantEnc string
	}{
		{name: "zstd with content size", wantEnc: "zstd"},
		{name: "zstd without content size", zstd: func(t *testing.T, raw []byte) []byte {
			var b bytes.Buffer
			enc, err := zstd.NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			enc.Write(raw)
			enc.Flush() // else Close encodes a small input whole, with its size
			enc.Close()
			var h zstd.Header
			if err := h.Decode(b.Bytes()); err != nil || h.HasFCS {
				t.Fatalf("streamed zstd frame: header %+v, %v; want one without content size", h, err)
			}
			return b.Bytes()
		}, wantEnc: "zstd"},
		{name: "gzip", remove: []string{".zst"}, wantEnc: "gzip"},
		{name: "identity", remove: []string{".zst", ".gz"}, wantEnc: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			p := filepath.Join(r.Dir, "pkg", "index")
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if tt.zstd != nil {
				if err := os.WriteFile(p+".zst", tt.zstd(t, raw), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, suf := range tt.remove {
				os.Remove(p + suf)
			}
			var sawEnc atomic.Value
			h := mirror.Handler(r.Dir)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if strings.HasSuffix(req.URL.Path, "/index") {
					w = encodingRecorder{w, &sawEnc}
				}
				h.ServeHTTP(w, req)
			}))
			defer srv.Close()
			c, err := repo.New(repo.Options{URL: srv.URL, Keys: []minisign.PublicKey{r.Pub()}, Encodings: repo.Compressed})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := sawEnc.Load(); got != tt.wantEnc {
				t.Errorf("index sent with Content-Encoding %q, want %q", got, tt.wantEnc)
			}
			if got := len(idx.GetPackage()); got != 2 {
				t.Errorf("index has %d packages, want 2", got)
			}
		})
	}
}

// TestFetchEncodings fetches an image in each transport encoding, and
// checks that a client left to choose asks a loopback server for
// identity although the siblings are there.
func TestFetchEncodings(t *testing.T) {
	for _, tt := range []struct {
		name       string
		encodings  []string
		remove     []string // siblings to delete
		wantAccept string
		wantEnc    string
	}{
		{name: "zstd", encodings: repo.Compressed, wantAccept: "zstd, gzip", wantEnc: "zstd"},
		{name: "gzip", encodings: repo.Compressed, remove: []string{".zst"}, wantAccept: "zstd, gzip", wantEnc: "gzip"},
		{name: "identity", encodings: repo.Compressed, remove: []string{".zst", ".gz"}, wantAccept: "zstd, gzip", wantEnc: ""},
		{name: "auto on loopback", wantAccept: "identity", wantEnc: ""},
		{name: "gzip only", encodings: []string{"gzip"}, wantAccept: "gzip", wantEnc: "gzip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			for _, suf := range tt.remove {
				os.Remove(filepath.Join(r.Dir, "pkg", image+suf))
			}
			var sawEnc, sawAccept atomic.Value
			h := mirror.Handler(r.Dir)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if strings.HasSuffix(req.URL.Path, image) {
					sawAccept.Store(req.Header.Get("Accept-Encoding"))
					w = encodingRecorder{w, &sawEnc}
				}
				h.ServeHTTP(w, req)
			}))
			defer srv.Close()
			c, err := repo.New(repo.Options{URL: srv.URL, Keys: []minisign.PublicKey{r.Pub()}, Encodings: tt.encodings})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			e := entry(t, idx, image)
			dst := filepath.Join(t.TempDir(), image)
			var progress atomic.Int64
			if err := c.Fetch(t.Context(), image, int64(e.GetImageSize()), e.GetImageSha256(), dst, func(n int64) { progress.Add(n) }); err != nil {
				t.Fatal(err)
			}
			if got := sawAccept.Load(); got != tt.wantAccept {
				t.Errorf("Accept-Encoding %q, want %q", got, tt.wantAccept)
			}
			if got := sawEnc.Load(); got != tt.wantEnc {
				t.Errorf("Content-Encoding %q, want %q", got, tt.wantEnc)
			}
			if got, want := progress.Load(), int64(e.GetImageSize()); got != want {
				t.Errorf("progress reported %d bytes, want %d", got, want)
			}
			want, _ := os.ReadFile(filepath.Join(r.Dir, "pkg", image))
			got, _ := os.ReadFile(dst)
			if string(got) != string(want) {
				t.Errorf("fetched %s differs from the repository's", image)
			}
		})
	}
}

func TestAutoEncodings(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want []string
	}{
		{"http://127.0.0.1:7080", []string{}},
		{"http://127.4.5.6/distri", []string{}},
		{"http://[::1]:7080", []string{}},
		{"http://localhost:7080", []string{}},
		{"http://LOCALHOST", []string{}},
		{"http://repo.localhost", []string{}},
		{"https://mirror.example.org/distri", repo.Compressed},
		{"http://10.0.0.2:7080", repo.Compressed},
		{"http://[2001:db8::1]", repo.Compressed},
	} {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := repo.AutoEncodings(u); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("AutoEncodings(%s) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestFetchTampered(t *testing.T) {
	r := newRepo(t)
	for _, tt := range []struct {
		name string
		url  string
	}{
		{name: "http", url: ""},
		{name: "local", url: r.Dir},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url
			if url == "" {
				srv := httptest.NewServer(mirror.Handler(r.Dir))
				defer srv.Close()
				url = srv.URL
			}
			c, err := repo.New(repo.Options{URL: url, Keys: []minisign.PublicKey{r.Pub()}})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			e := entry(t, idx, image)
			// Same size, other bytes, in every representation.
			p := filepath.Join(r.Dir, "pkg", image)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
			os.Remove(p + ".zst")
			os.Remove(p + ".gz")
			sum := sha256.Sum256(b)
			dst := filepath.Join(t.TempDir(), image)
			err = c.Fetch(t.Context(), image, int64(e.GetImageSize()), e.GetImageSha256(), dst, nil)
			var de *repo.DigestError
			if !errors.As(err, &de) {
				t.Fatalf("Fetch = %v, want a *DigestError", err)
			}
			for _, want := range []string{image, e.GetImageSha256(), hex.EncodeToString(sum[:])} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("%s left behind after a digest error (%v)", dst, err)
			}
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		})
	}
}

// dyingHandler serves h, but cuts the connection after cut bytes of the
// body of image, for the first dies requests (all when dies < 0).
type dyingHandler struct {
	h      http.Handler
	cut    int
	dies   int
	mu     sync.Mutex
	served int
	ranges []string
}

func (d *dyingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, image) {
		d.h.ServeHTTP(w, r)
		return
	}
	d.mu.Lock()
	d.served++
	die := d.dies < 0 || d.served <= d.dies
	if rg := r.Header.Get("Range"); rg != "" {
		d.ranges = append(d.ranges, rg)
	}
	d.mu.Unlock()
	if !die {
		d.h.ServeHTTP(w, r)
		return
	}
	d.h.ServeHTTP(&cutWriter{ResponseWriter: w, left: d.cut}, r)
}

type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if len(b) > c.left {
		c.ResponseWriter.Write(b[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the server drops the connection
	}
	c.left -= len(b)
	return c.ResponseWriter.Write(b)
}

func TestDyingServer(t *testing.T) {
	for _, tt := range []struct {
		name       string
		dies       int
		identity   bool
		wantErr    bool
		wantRanges bool
	}{
		{name: "resumes zstd", dies: 2, wantRanges: true},
		{name: "resumes identity", dies: 3, identity: true, wantRanges: true},
		{name: "gives up", dies: -1, wantErr: true, wantRanges: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			if tt.identity {
				os.Remove(filepath.Join(r.Dir, "pkg", image+".zst"))
				os.Remove(filepath.Join(r.Dir, "pkg", image+".gz"))
			}
			d := &dyingHandler{h: mirror.Handler(r.Dir), cut: 20000, dies: tt.dies}
			srv := httptest.NewServer(d)
			defer srv.Close()
			c, err := repo.New(repo.Options{URL: srv.URL, Keys: []minisign.PublicKey{r.Pub()}, RetryDelay: time.Millisecond, Encodings: repo.Compressed})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			e := entry(t, idx, image)
			dst := filepath.Join(t.TempDir(), image)
			err = c.Fetch(t.Context(), image, int64(e.GetImageSize()), e.GetImageSha256(), dst, nil)
			if tt.wantErr != (err != nil) {
				t.Fatalf("Fetch = %v, want error %v", err, tt.wantErr)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if tt.wantRanges != (len(d.ranges) > 0) {
				t.Errorf("Range requests %q, want some: %v", d.ranges, tt.wantRanges)
			}
			if tt.wantErr && d.served > 5 {
				t.Errorf("server saw %d requests for %s, want at most 5 (bounded retries)", d.served, image)
			}
		})
	}
}

// stallingHandler serves h, but for the first stalls requests of image
// (all when stalls < 0) sends cut bytes of the body and then nothing,
// keeping the connection open until the client gives up or done closes.
// With cut < 0 it stalls before sending the response headers.
type stallingHandler struct {
	h      http.Handler
	cut    int
	stalls int
	done   chan struct{}
	mu     sync.Mutex
	served int
	ranges []string
}

func (s *stallingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, image) {
		s.h.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	s.served++
	stall := s.stalls < 0 || s.served <= s.stalls
	if rg := r.Header.Get("Range"); rg != "" {
		s.ranges = append(s.ranges, rg)
	}
	s.mu.Unlock()
	wait := func() {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	}
	switch {
	case !stall:
		s.h.ServeHTTP(w, r)
	case s.cut < 0:
		wait()
	default:
		s.h.ServeHTTP(&stallWriter{ResponseWriter: w, left: s.cut, wait: wait}, r)
	}
}

type stallWriter struct {
	http.ResponseWriter
	left int
	wait func()
}

func (s *stallWriter) Write(b []byte) (int, error) {
	if len(b) > s.left {
		s.ResponseWriter.Write(b[:s.left])
		s.ResponseWriter.(http.Flusher).Flush()
		s.wait()
		panic(http.ErrAbortHandler)
	}
	s.left -= len(b)
	return s.ResponseWriter.Write(b)
}

func TestStalledServer(t *testing.T) {
	const idle = 100 * time.Millisecond
	for _, tt := range []struct {
		name       string
		cut        int
		stalls     int
		wantErr    bool
		wantRanges bool
	}{
		{name: "resumes after a stalled body", cut: 20000, stalls: 2, wantRanges: true},
		{name: "retries after stalled headers", cut: -1, stalls: 1},
		{name: "gives up on a body that always stalls", cut: 20000, stalls: -1, wantErr: true, wantRanges: true},
		{name: "gives up on headers that never come", cut: -1, stalls: -1, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			s := &stallingHandler{h: mirror.Handler(r.Dir), cut: tt.cut, stalls: tt.stalls, done: make(chan struct{})}
			srv := httptest.NewServer(s)
			defer srv.Close()
			defer close(s.done) // before srv.Close, which waits for handlers
			c, err := repo.New(repo.Options{URL: srv.URL, Keys: []minisign.PublicKey{r.Pub()},
				RetryDelay: time.Millisecond, Attempts: 3, IdleTimeout: idle})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			e := entry(t, idx, image)
			dst := filepath.Join(t.TempDir(), image)
			start := time.Now()
			err = c.Fetch(t.Context(), image, int64(e.GetImageSize()), e.GetImageSha256(), dst, nil)
			elapsed := time.Since(start)
			if tt.wantErr != (err != nil) {
				t.Fatalf("Fetch = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, repo.ErrStalled) {
				t.Errorf("Fetch = %v, want an error wrapping repo.ErrStalled", err)
			}
			// 3 attempts of one idle period each, plus slack for a slow
			// machine; without the watchdog this would never return.
			if limit := 3*idle + 10*time.Second; elapsed > limit {
				t.Errorf("Fetch took %v, want under %v", elapsed, limit)
			}
			if !tt.wantErr {
				b, err := os.ReadFile(dst)
				if err != nil {
					t.Fatal(err)
				}
				if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != e.GetImageSha256() {
					t.Errorf("fetched %s has sha256 %x, want %s", image, got, e.GetImageSha256())
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if tt.wantRanges != (len(s.ranges) > 0) {
				t.Errorf("Range requests %q, want some: %v", s.ranges, tt.wantRanges)
			}
			if tt.wantErr && s.served > 3 {
				t.Errorf("server saw %d requests for %s, want at most 3 (bounded retries)", s.served, image)
			}
		})
	}
}
