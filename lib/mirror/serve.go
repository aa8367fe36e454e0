package mirror

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
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
//     served; directories get a listing;
//   - every file is opened through an [os.Root] of repo: a symlink in
//     the repository is followed only while it stays inside it (one to
//     /etc/shadow, or ../../home, answers 404), so whoever can put a
//     symlink into the repository cannot publish the server's files.
func Handler(repo string) http.Handler {
	return &handler{root: repo}
}

type handler struct {
	root string
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
	root, err := os.OpenRoot(h.root)
	if err != nil {
		http.Error(w, "repository not available", http.StatusInternalServerError)
		return
	}
	defer root.Close()
	p := strings.TrimPrefix(upath, "/")
	if p == "" {
		p = "."
	}
	fi, err := root.Stat(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if fi.IsDir() {
		http.FileServerFS(root.FS()).ServeHTTP(w, r)
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
		if sfi, err := root.Stat(p + enc.suffix); err == nil && sfi.Mode().IsRegular() {
			send, encoding, fi = p+enc.suffix, enc.name, sfi
			break
		}
	}
	f, err := root.Open(send)
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
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's header; 0 means 30s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a kept-alive connection without a request for
	// this long; 0 means 2 minutes.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose client has not taken any
	// of the response for this long (it is a deadline per write, not
	// for the whole response: a large image over a slow but moving link
	// is fine); 0 means 1 minute.
	WriteTimeout time.Duration
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
		Handler:           writeDeadline(Handler(opts.Repo), cmp.Or(opts.WriteTimeout, time.Minute)),
		ReadHeaderTimeout: cmp.Or(opts.ReadHeaderTimeout, 30*time.Second),
		IdleTimeout:       cmp.Or(opts.IdleTimeout, 2*time.Minute),
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

// writeDeadline gives every write of a response d to make progress: a
// client that stops reading (slowloris in reverse) loses its connection
// instead of holding a goroutine and an open file forever.
func writeDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
