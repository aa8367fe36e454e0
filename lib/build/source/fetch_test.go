package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// server serves content at /good, wrong bytes at /bad and 404 elsewhere,
// and counts requests.
func server(t *testing.T, content []byte) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		switch r.URL.Path {
		case "/good", "/debian/pool/main/h/hello/hello.deb":
			w.Write(content)
		case "/bad":
			w.Write([]byte("not it"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchMirrors(t *testing.T) {
	content := []byte("the source tarball")
	srv, n := server(t, content)
	f := &Fetcher{CacheDir: t.TempDir()}
	p, err := f.Fetch(t.Context(), "pkgs/x/build.textproto", t.TempDir(), sum(content),
		[]string{srv.URL + "/missing", srv.URL + "/bad", srv.URL + "/good"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != string(content) {
		t.Fatalf("cached file = %q, %v", b, err)
	}
	if p != f.CachePath(sum(content)) {
		t.Errorf("path %s, want %s", p, f.CachePath(sum(content)))
	}
	if got := n.Load(); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
	// A cache hit needs no network.
	srv.Close()
	if _, err := f.Fetch(t.Context(), "pkgs/x/build.textproto", "", sum(content), []string{srv.URL + "/good"}); err != nil {
		t.Fatalf("cache hit: %v", err)
	}
	if got := cacheEntries(t, f.CacheDir); len(got) != 1 || got[0] != sum(content) {
		t.Errorf("cache holds %q, want only the file", got)
	}
}

func TestFetchWrongHash(t *testing.T) {
	srv, _ := server(t, []byte("x"))
	f := &Fetcher{CacheDir: t.TempDir()}
	want := sum([]byte("something else"))
	_, err := f.Fetch(t.Context(), "pkgs/x/build.textproto", "", want, []string{srv.URL + "/bad"})
	var he *HashError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want a HashError", err)
	}
	for _, s := range []string{"pkgs/x/build.textproto", srv.URL + "/bad", want, sum([]byte("not it"))} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if got := cacheEntries(t, f.CacheDir); len(got) != 0 {
		t.Errorf("a failed download left %q in the cache", got)
	}
}

func TestFetchMissing(t *testing.T) {
	srv, _ := server(t, []byte("x"))
	f := &Fetcher{CacheDir: t.TempDir()}
	_, err := f.Fetch(t.Context(), "pkgs/x/build.textproto", t.TempDir(), sum([]byte("x")),
		[]string{srv.URL + "/missing", "no-such-file.tar.gz"})
	if err == nil {
		t.Fatal("Fetch succeeded")
	}
	for _, s := range []string{"pkgs/x/build.textproto", "404", "no-such-file.tar.gz"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if got := cacheEntries(t, f.CacheDir); len(got) != 0 {
		t.Errorf("a failed download left %q in the cache", got)
	}
}

func TestFetchLocalAndArchive(t *testing.T) {
	content := []byte("local bytes")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "src.tar"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{CacheDir: t.TempDir()}
	if _, err := f.Fetch(t.Context(), "r", dir, sum(content), []string{"src.tar"}); err != nil {
		t.Fatalf("local file relative to the recipe: %v", err)
	}

	deb := []byte("a deb")
	srv, _ := server(t, deb)
	f = &Fetcher{CacheDir: t.TempDir(), ArchiveURIs: []string{srv.URL + "/elsewhere", srv.URL + "/debian/"}}
	if _, err := f.Fetch(t.Context(), "r", dir, sum(deb), []string{"debian:pool/main/h/hello/hello.deb"}); err != nil {
		t.Fatalf("debian: path: %v", err)
	}
	f = &Fetcher{CacheDir: t.TempDir()}
	if _, err := f.Fetch(t.Context(), "r", dir, sum(deb), []string{"debian-src:pool/x"}); err == nil || !strings.Contains(err.Error(), "no Debian archive") {
		t.Errorf("without apt sources: err = %v, want no Debian archive", err)
	}
}
