package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// checkServer runs the requests every repository server must answer
// alike: distri-mirror serve and nginx as docs/repository.md sets it up.
func checkServer(t *testing.T, base, repo string) {
	image := "pkg/hello-amd64-2.12-9.squashfs"
	orig, err := os.ReadFile(filepath.Join(repo, image))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(t *testing.T, path string, hdr map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", base+"/"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, tt := range []struct {
		name         string
		hdr          map[string]string
		wantStatus   int
		wantEncoding string
	}{
		{name: "identity", wantStatus: 200},
		{name: "gzip", hdr: map[string]string{"Accept-Encoding": "gzip"}, wantStatus: 200, wantEncoding: "gzip"},
		{name: "zstd preferred", hdr: map[string]string{"Accept-Encoding": "zstd, gzip"}, wantStatus: 200, wantEncoding: "zstd"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, image, tt.hdr)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Errorf("Content-Encoding %q, want %q", got, tt.wantEncoding)
			}
			if got := resp.Header.Get("Vary"); !strings.Contains(got, "Accept-Encoding") {
				t.Errorf("Vary %q, want Accept-Encoding", got)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "body")
			switch tt.wantEncoding {
			case "gzip":
				p += ".gz"
			case "zstd":
				p += ".zst"
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.wantEncoding != "" {
				b = decompress(t, p)
			}
			if !bytes.Equal(b, orig) {
				t.Errorf("body (%d bytes decoded) differs from %s (%d bytes)", len(b), image, len(orig))
			}
		})
	}

	t.Run("range of zstd", func(t *testing.T) {
		zst, err := os.ReadFile(filepath.Join(repo, image+".zst"))
		if err != nil {
			t.Fatal(err)
		}
		full := get(t, image, map[string]string{"Accept-Encoding": "zstd"})
		etag := full.Header.Get("ETag")
		resp := get(t, image, map[string]string{"Accept-Encoding": "zstd", "Range": "bytes=10-", "If-Range": etag})
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", resp.StatusCode)
		}
		b, _ := io.ReadAll(resp.Body)
		if !bytes.Equal(b, zst[10:]) {
			t.Errorf("range bytes differ from %s.zst[10:]", image)
		}
	})
	t.Run("range identity", func(t *testing.T) {
		resp := get(t, image, map[string]string{"Range": "bytes=5-9"})
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, orig[5:10]) {
			t.Errorf("status %d body %q, want 206 %q", resp.StatusCode, b, orig[5:10])
		}
	})
	t.Run("if-none-match", func(t *testing.T) {
		for _, ae := range []string{"", "zstd"} {
			etag := get(t, image, map[string]string{"Accept-Encoding": ae}).Header.Get("ETag")
			if etag == "" {
				t.Fatalf("no ETag (Accept-Encoding %q)", ae)
			}
			resp := get(t, image, map[string]string{"Accept-Encoding": ae, "If-None-Match": etag})
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match %s (Accept-Encoding %q): status %d, want 304", etag, ae, resp.StatusCode)
			}
		}
	})
	t.Run("if-modified-since", func(t *testing.T) {
		lm := get(t, image, nil).Header.Get("Last-Modified")
		if lm == "" {
			t.Fatal("no Last-Modified")
		}
		if resp := get(t, image, map[string]string{"If-Modified-Since": lm}); resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-Modified-Since: status %d, want 304", resp.StatusCode)
		}
	})
	t.Run("dotfiles hidden", func(t *testing.T) {
		if resp := get(t, "pkg/.index-cache", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET pkg/.index-cache: status %d, want 404", resp.StatusCode)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if resp := get(t, "pkg/nope-amd64-1-1.squashfs", map[string]string{"Accept-Encoding": "zstd"}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
}

func TestHandler(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	srv := httptest.NewServer(mirror.Handler(r.Dir))
	defer srv.Close()
	checkServer(t, srv.URL, r.Dir)
}

func TestNginx(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	checkServer(t, mirrortest.Nginx(t, r.Dir), r.Dir)
}

func TestServe(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	ctx, cancel := context.WithCancel(t.Context())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- mirror.Serve(ctx, mirror.ServeOptions{Repo: r.Dir, Listen: "127.0.0.1:0", Ready: func(u string) { urls <- u }})
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("Serve = %v before ready", err)
	}
	resp, err := http.Get(url + "/pkg/index.minisig")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET index.minisig: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// TestHandlerSymlinksStayInside attacks the server with symlinks in the
// repository that point out of it (absolute and relative, to a file and
// to a folder): none is followed. A symlink inside the repository still
// works.
func TestHandlerSymlinksStayInside(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Join(r.Dir, "pkg"), outside)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"pkg/abs-file":   filepath.Join(outside, "secret"),
		"pkg/rel-file":   filepath.Join(rel, "secret"),
		"pkg/abs-dir":    outside,
		"pkg/rel-dir":    rel,
		"pkg/inside.bin": "index.minisig",
	} {
		if err := os.Symlink(target, filepath.Join(r.Dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(mirror.Handler(r.Dir))
	defer srv.Close()
	for _, p := range []string{"pkg/abs-file", "pkg/rel-file", "pkg/abs-dir/secret", "pkg/rel-dir/secret", "pkg/abs-dir/", "pkg/rel-dir/"} {
		resp, err := http.Get(srv.URL + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || bytes.Contains(body, []byte("secret")) {
			t.Errorf("GET %s = %s %q, want no access out of the repository", p, resp.Status, body)
		}
	}
	resp, err := http.Get(srv.URL + "/pkg/inside.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET a symlink inside the repository = %s, want 200", resp.Status)
	}
}

// TestServeTimeouts attacks distri-mirror serve with a client that opens
// a connection and sends nothing, and one that asks for a large file and
// stops reading: the server drops both.
func TestServeTimeouts(t *testing.T) {
	r := mirrortest.NewRepo(t, testPkgs...)
	// 256 MiB, sparse: more than any socket buffers hold.
	big, err := os.Create(filepath.Join(r.Dir, "pkg", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	big.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	urls := make(chan string, 1)
	go mirror.Serve(ctx, mirror.ServeOptions{
		Repo: r.Dir, Listen: "127.0.0.1:0", Ready: func(u string) { urls <- u },
		ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
	})
	addr := strings.TrimPrefix(<-urls, "http://")

	t.Run("silent client", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("read from a connection that sent nothing returned data")
		} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("the server kept a silent connection open for 5s")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("silent connection closed after %v", d)
		}
	})
	t.Run("client stops reading", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /pkg/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(2 * time.Second) // read nothing: the server's writes stall
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after 12s (%d bytes read)", n)
		}
		if n >= 256<<20 {
			t.Errorf("read the whole %d bytes, want the server to give up on the stalled response", n)
		}
	})
}
