package install_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// stallingWriter passes the first n bytes of a response, then waits
// until release is closed (or the request ends).
type stallingWriter struct {
	http.ResponseWriter
	n       int
	stalled chan<- struct{}
	release <-chan struct{}
	done    <-chan struct{}
}

func (w *stallingWriter) Write(b []byte) (int, error) {
	if w.n <= 0 || len(b) <= w.n {
		w.n -= len(b)
		return w.ResponseWriter.Write(b)
	}
	k, err := w.ResponseWriter.Write(b[:w.n])
	w.n = 0
	if err != nil {
		return k, err
	}
	w.ResponseWriter.(http.Flusher).Flush()
	select {
	case w.stalled <- struct{}{}:
	default:
	}
	select {
	case <-w.release:
	case <-w.done:
	}
	m, err := w.ResponseWriter.Write(b[k:])
	return k + m, err
}

// stallServer serves r, stalling the response for file (after 4 KiB)
// until release is closed. stalled receives once the stall began.
func stallServer(t *testing.T, r *mirrortest.Repo, file string) (url string, stalled <-chan struct{}, release func()) {
	t.Helper()
	st := make(chan struct{}, 1)
	rel := make(chan struct{})
	h := mirror.Handler(r.Dir)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, file) {
			w = &stallingWriter{ResponseWriter: w, n: 4096, stalled: st, release: rel, done: req.Context().Done()}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return srv.URL, st, release
}

// startStalled starts in.Install(names) and waits until the mirror
// stalls; the returned channel gets the install's error.
func startStalled(t *testing.T, in *install.Installer, names []string, stalled <-chan struct{}) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := in.Install(t.Context(), names)
		errc <- err
	}()
	select {
	case <-stalled:
	case err := <-errc:
		t.Fatalf("Install(%v) ended before the mirror stalled: %v", names, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the mirror never stalled")
	}
	return errc
}

// TestNoLockWhileDownloading attacks the lock with a mirror that stalls
// in the middle of an image: while one install waits for it, another
// install, gc and a plain Lock must get the store lock at once (the old
// installer held it for the whole download). The stalled install then
// completes.
func TestNoLockWhileDownloading(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, shell, help)
	url, stalled, release := stallServer(t, r, "shell-amd64-5-3.squashfs")
	pub := r.PubFile(t)
	root := t.TempDir()

	slow := newInstaller(t, root, nil, []string{pub}, url)
	errc := startStalled(t, slow, []string{"shell"}, stalled)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var logs bytes.Buffer
	other := newInstaller(t, root, &logs, []string{pub}, url)
	start := time.Now()
	if got, err := other.Install(ctx, []string{"help"}); err != nil || !cmp.Equal(got, []string{"help-amd64-1-1"}) {
		t.Fatalf("Install(help) during a stalled download = %v, %v", got, err)
	}
	if _, err := other.GC(ctx); err != nil {
		t.Fatalf("GC during a stalled download: %v", err)
	}
	l, err := other.Store().Lock(ctx, nil)
	if err != nil {
		t.Fatalf("Lock during a stalled download: %v", err)
	}
	l.Unlock()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("install, gc and lock took %v during a stalled download, want well under 3s", d)
	}
	if strings.Contains(logs.String(), "waiting for the lock") {
		t.Errorf("another install waited for the lock: %q", logs.String())
	}

	release()
	if err := <-errc; err != nil {
		t.Fatalf("the stalled Install(shell): %v", err)
	}
	if diff := cmp.Diff([]string{"help-amd64-1-1", "libc-amd64-1-2", "shell-amd64-5-3"}, list(t, slow)); diff != "" {
		t.Errorf("store mismatch (-want +got):\n%s", diff)
	}
}

// TestRecheckUnderLock: a dependency that was in the store when a slow
// install began, and that a remove and gc deleted during its download,
// is fetched once the install holds the lock; the install completes
// whole.
func TestRecheckUnderLock(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, shell)
	url, stalled, release := stallServer(t, r, "shell-amd64-5-3.squashfs")
	pub := r.PubFile(t)
	root := t.TempDir()
	var logs bytes.Buffer
	slow := newInstaller(t, root, &logs, []string{pub}, url)
	if _, err := slow.Install(t.Context(), []string{"libc"}); err != nil {
		t.Fatal(err)
	}
	errc := startStalled(t, slow, []string{"shell"}, stalled)
	other := newInstaller(t, root, nil, []string{pub}, url)
	if got, err := other.Remove(t.Context(), []string{"libc"}); err != nil || !cmp.Equal(got, []string{"libc-amd64-1-2"}) {
		t.Fatalf("Remove(libc) during the download = %v, %v", got, err)
	}
	release()
	if err := <-errc; err != nil {
		t.Fatalf("the stalled Install(shell): %v", err)
	}
	if diff := cmp.Diff([]string{"libc-amd64-1-2", "shell-amd64-5-3"}, list(t, slow)); diff != "" {
		t.Errorf("store mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "went from the store during the download") {
		t.Errorf("log %q does not say that libc was fetched late", logs.String())
	}
}
