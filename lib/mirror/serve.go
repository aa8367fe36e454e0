package mirror

import (
	"context"
	"errors"
	"fmt"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Handler serves the repository folder repo over HTTP, like nginx with
// gzip_static (docs/repository.md):
//
//   - a file X is sent as X.zst with Content-Encoding: zstd, or as X.gz
//     with Content-Encoding: gzip, when the client accepts that encoding
//     and the sibling exists (zstd is preferred); Vary: Accept-Encoding;
//   - Range, If-Range, ETag / If-None-Match and Last-Modified /
//     If-Modified-Since work on the representation sent (as nginx does:
//     a range of a zstd response counts bytes of X.zst);
//   - names starting with "." (the index cache, temporary files) are not
//     served; directories get a listing.
func Handler(repo string) http.Handler {
	return &handler{root: repo, dirs: http.FileServer(http.Dir(repo))}
}

type handler struct {
	root string
	dirs http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	upath := path.Clean("/" + r.URL.Path)
	for _, c := range strings.Split(upath, "/") {
		if strings.HasPrefix(c, ".") {
			http.NotFound(w, r)
			return
		}
	}
	p := filepath.Join(h.root, filepath.FromSlash(upath))
	fi, err := os.Stat(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if fi.IsDir() {
		h.dirs.ServeHTTP(w, r)
		return
	}
	ctype := mime.TypeByExtension(path.Ext(upath))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Vary", "Accept-Encoding")
	send, encoding := p, ""
	accepted := acceptedEncodings(r.Header.Get("Accept-Encoding"))
	for _, enc := range []struct{ name, suffix string }{{"zstd", ".zst"}, {"gzip", ".gz"}} {
		if !accepted[enc.name] {
			continue
		}
		if sfi, err := os.Stat(p + enc.suffix); err == nil && sfi.Mode().IsRegular() {
			send, encoding, fi = p+enc.suffix, enc.name, sfi
			break
		}
	}
	f, err := os.Open(send)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	// A strong ETag per representation, in nginx's form (mtime-size in
	// hex), so If-Range never splices bytes of two encodings.
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().Unix(), fi.Size()))
	w.Header().Set("Content-Type", ctype)
	if encoding != "" {
		w.Header().Set("Content-Encoding", encoding)
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// acceptedEncodings parses an Accept-Encoding header into the encodings
// with a non-zero quality.
func acceptedEncodings(h string) map[string]bool {
	m := map[string]bool{}
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		if name != "" && q > 0 {
			m[name] = true
		}
	}
	return m
}

// ServeOptions says what to serve where.
type ServeOptions struct {
	// Repo is the repository folder, e.g. /srv/distri.
	Repo string
	// Listen is the address to listen on, e.g. 127.0.0.1:7080; port 0
	// picks a free port. Empty means localhost:7080.
	Listen string
	// Ready is called with the server's URL (e.g. http://127.0.0.1:7080)
	// once it accepts connections. nil: not called.
	Ready func(url string)
	// Log receives server errors; nil discards.
	Log *log.Logger
}

// Serve serves the repository until ctx is cancelled, then shuts down
// gracefully (in-flight requests get a few seconds to finish).
func Serve(ctx context.Context, opts ServeOptions) error {
	if fi, err := os.Stat(opts.Repo); err != nil {
		return fmt.Errorf("serve: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("serve %s: not a directory", opts.Repo)
	}
	addr := opts.Listen
	if addr == "" {
		addr = "localhost:7080"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           Handler(opts.Repo),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          opts.Log,
	}
	if srv.ErrorLog == nil {
		srv.ErrorLog = log.New(discard{}, "", 0)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if opts.Ready != nil {
		opts.Ready("http://" + ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
