package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/repo"
)

// trickleWriter sends the body chunk bytes at a time, one chunk every
// interval.
type trickleWriter struct {
	http.ResponseWriter
	ctx      context.Context
	chunk    int
	interval time.Duration
}

func (w *trickleWriter) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		c := min(len(b), w.chunk)
		m, err := w.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		b = b[c:]
		select {
		case <-w.ctx.Done():
			return n, w.ctx.Err()
		case <-time.After(w.interval):
		}
	}
	return n, nil
}

// TestTricklingServer attacks the client with a server that sends a
// little now and then, never idle long enough for the idle timeout: the
// minimum rate must end it. A steady server above the rate must pass.
func TestTricklingServer(t *testing.T) {
	const window = 200 * time.Millisecond
	for _, tt := range []struct {
		name     string
		chunk    int
		interval time.Duration
		wantErr  error
	}{
		// 500 B/s, under the 4 KiB/s minimum; the old client would take
		// 10 minutes for the 300 KiB image.
		{name: "trickle", chunk: 10, interval: 20 * time.Millisecond, wantErr: repo.ErrTooSlow},
		// 400 KB/s.
		{name: "steady", chunk: 8 << 10, interval: 20 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			h := mirror.Handler(r.Dir)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if strings.HasSuffix(req.URL.Path, image) {
					w = &trickleWriter{ResponseWriter: w, ctx: req.Context(), chunk: tt.chunk, interval: tt.interval}
				}
				h.ServeHTTP(w, req)
			}))
			defer srv.Close()
			const attempts = 3
			c, err := repo.New(repo.Options{URL: srv.URL, Keys: []minisign.PublicKey{r.Pub()}, Encodings: []string{},
				RetryDelay: time.Millisecond, Attempts: attempts, IdleTimeout: 5 * time.Second,
				MinRate: 4 << 10, RateWindow: window})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			e := entry(t, idx, image)
			dst := filepath.Join(t.TempDir(), image)
			// Without a minimum rate the trickle would outlast this.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err = c.Fetch(ctx, image, int64(e.GetImageSize()), e.GetImageSha256(), dst, nil)
			elapsed := time.Since(start)
			t.Logf("Fetch took %v: %v", elapsed, err)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
				}
				// One window per attempt, plus slack for a slow machine.
				if limit := attempts*window + 5*time.Second; elapsed > limit {
					t.Errorf("Fetch took %v, want under %v", elapsed, limit)
				}
				if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed fetch left %s: %v", dst, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != e.GetImageSha256() {
				t.Errorf("fetched %s has sha256 %x, want %s", image, got, e.GetImageSha256())
			}
		})
	}
}
