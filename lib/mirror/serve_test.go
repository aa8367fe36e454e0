package mirror_test

import (
	"bytes"
	"context"
	"io"
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
