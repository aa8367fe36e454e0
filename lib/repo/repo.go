// Package repo is the client of a distri repository (docs/repository.md):
// it fetches the index and its signature and verifies them, and fetches
// package files, checking every byte against the size and sha256 the
// signed index gives.
//
// A repository is an http:// or https:// URL, or a local folder (a path
// or a file:// URL); either way its files are under pkg/.
//
// # Transport
//
// Requests carry Accept-Encoding: zstd, gzip and are decoded by their
// Content-Encoding (Go's own transparent gzip is off, so the encoded bytes
// can be resumed), except from a server on this machine (localhost, a
// loopback address), which is asked for identity ([AutoEncodings]):
// compression saves bytes on a network, and decoding costs CPU time.
// Loopback has no network to save, and zstd decoding (about 1 GB/s of
// output per core here) would be the largest cost of an install: on this
// project's 2-core benchmark machine identity took an install of 104
// packages (158 MiB, 54 MiB as zstd) from about 0.52 s to 0.34 s. A local
// folder is read as it is. [Options.Encodings] overrides the rule. A connection that fails mid-body is resumed with a
// Range request for the rest of the same representation, guarded by
// If-Range on its ETag; a server that answers with anything but that
// range restarts the file. Each file gets a bounded number of attempts.
//
// A server that stops sending without closing the connection counts as a
// failed connection once nothing has arrived for Options.IdleTimeout
// (waiting for the response headers included): the request is cancelled
// and resumed or retried like any other ([ErrStalled]).
//
// A server that trickles (less than Options.MinRate, 1 KiB/s, averaged
// over Options.RateWindow, 30 s) fails the same way ([ErrTooSlow]): an
// idle timer alone is reset by every byte, and a byte every 20 s would
// hold an install for days.
//
// # Limits
//
// A mirror is not trusted; only the key that signs the index is. So the
// index is verified before a byte of it is parsed, and what a server
// sends before that costs bounded memory, whatever it sends:
//
//   - index.minisig is at most [MaxSignatureSize] (4 KiB), and a
//     signature by a key that is not trusted ends the fetch of the index;
//   - the decoded index is at most Options.MaxIndexSize (256 MiB); up to
//     8 MiB of it is held in memory, the rest in an unlinked temporary
//     file until the signature over all of it holds, and only then is it
//     read and parsed;
//   - a Content-Encoding that was not asked for is refused ([ErrEncoding]),
//     so identity means no decoder runs; a zstd frame's window is at most
//     [MaxZstdWindow] (8 MiB), the memory its decoder holds; gzip's is
//     32 KiB;
//   - a package file is written to disk, never past the size the signed
//     index gives, and decoded output counts against that size;
//   - response headers are at most 64 KiB; sizes a server announces
//     (Content-Length, a zstd frame's content size) only presize a buffer
//     up to what it may hold anyway.
//
// A bounded index that is signed is trusted to be parsed whole in
// memory; a decompression bomb sent as the index ends at the size limit
// (disk, not memory) with an [ErrTooLarge] error. The hostile-mirror test
// runs distri-install against such servers and bounds its peak RSS.
//
// # Durability
//
// [Repo.Fetch] does not fsync: it starts the writeback of what it wrote
// as the bytes arrive (every 4 MiB, with sync_file_range(2) on Linux), so
// the disk works while the network does, and leaves the fsync to the
// caller, which can then sync many files at once (lib/store's
// Txn.Commit does) instead of waiting for each file in turn. On this
// project's 2-core benchmark machine that took an install of 104
// packages (158 MiB) from 1.1-2.0 s to 0.4-0.9 s.
package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/pb"
)

// Files of a repository, relative to its pkg/ folder.
const (
	IndexFile     = "index"
	SignatureFile = "index.minisig"
)

// maxIndexSize bounds what is read as an index or signature.
const maxIndexSize = 1 << 30

// Options says which repository to use and how.
type Options struct {
	// URL is the repository: http://host:port/path, https://…, file:///srv/distri
	// or a local folder such as repo/.
	URL string
	// Keys are the trusted public keys; the index must be signed by one.
	Keys []minisign.PublicKey
	// Client makes the HTTP requests; nil means one made by [NewClient].
	// Share one between repositories to reuse connections.
	Client *http.Client
	// Attempts is how often one file is tried (the first try included)
	// before failing; 0 means 5.
	Attempts int
	// RetryDelay is the wait before the first retry, doubled after each;
	// 0 means 100ms.
	RetryDelay time.Duration
	// IdleTimeout is how long a request may receive nothing (no response
	// headers, no body bytes) before it is abandoned as stalled and
	// resumed or retried; 0 means 30s.
	IdleTimeout time.Duration
	// MinRate is the slowest a response body may arrive, in bytes per
	// second averaged over RateWindow: a request that receives less in
	// a window is abandoned as too slow ([ErrTooSlow]) and resumed or
	// retried. 0 means 1024; negative means no minimum.
	MinRate int64
	// RateWindow is the window MinRate is averaged over; 0 means 30s.
	RateWindow time.Duration
	// MaxIndexSize bounds the decoded index; 0 means
	// [DefaultMaxIndexSize].
	MaxIndexSize int64
	// TempDir holds an index larger than 8 MiB until it is verified;
	// empty means [os.TempDir].
	TempDir string
	// Encodings are the transport encodings asked for, preferred first
	// ("zstd", "gzip"); an empty list asks for identity. nil means
	// [AutoEncodings] of the URL.
	Encodings []string
	// Trust says what the index's signed trusted comment must say
	// (repository name, expiry, rollback check; freshness.go).
	Trust Trust
}

// Compressed are the transport encodings a repository client asks for
// where the bytes cross a network.
var Compressed = []string{"zstd", "gzip"}

// AutoEncodings returns the transport encodings to ask a repository at
// u for: none (identity) when u's host is this machine (localhost, a
// loopback address), else [Compressed]. See Transport in the package doc.
func AutoEncodings(u *url.URL) []string {
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return []string{}
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return []string{}
	}
	return Compressed
}

// Repo is a repository client.
type Repo struct {
	opts   Options
	base   *url.URL // nil for a local folder
	local  string   // the local folder's pkg/
	accept string   // the Accept-Encoding header
}

// NewClient returns an HTTP client for repositories: it keeps up to
// conns idle connections per host, and does not decode gzip by itself.
func NewClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	t.MaxIdleConnsPerHost = max(conns, 2)
	t.ResponseHeaderTimeout = 60 * time.Second
	t.MaxResponseHeaderBytes = 64 << 10 // a repository sends a few headers
	return &http.Client{Transport: t}
}

// New returns a client for the repository opts.URL.
func New(opts Options) (*Repo, error) {
	if len(opts.Keys) == 0 {
		return nil, fmt.Errorf("repository %s: no trusted public key", opts.URL)
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 100 * time.Millisecond
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.MinRate == 0 {
		opts.MinRate = 1024
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = 30 * time.Second
	}
	if opts.MaxIndexSize <= 0 {
		opts.MaxIndexSize = DefaultMaxIndexSize
	}
	r := &Repo{opts: opts}
	switch {
	case strings.HasPrefix(opts.URL, "http://"), strings.HasPrefix(opts.URL, "https://"):
		u, err := url.Parse(strings.TrimSuffix(opts.URL, "/") + "/pkg/")
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", opts.URL, err)
		}
		r.base = u
		if r.opts.Encodings == nil {
			r.opts.Encodings = AutoEncodings(u)
		}
		r.accept = "identity"
		if len(r.opts.Encodings) > 0 {
			r.accept = strings.Join(r.opts.Encodings, ", ")
		}
		if r.opts.Client == nil {
			r.opts.Client = NewClient(8)
		}
	case strings.HasPrefix(opts.URL, "file://"):
		r.local = filepath.Join(strings.TrimPrefix(opts.URL, "file://"), "pkg")
	case strings.Contains(opts.URL, "://"):
		return nil, fmt.Errorf("repository %s: unsupported scheme (want http, https, file or a path)", opts.URL)
	default:
		r.local = filepath.Join(opts.URL, "pkg")
	}
	return r, nil
}

// String returns the repository's URL as given.
func (r *Repo) String() string { return r.opts.URL }

// Index fetches the index and its signature, verifies the signature
// against the trusted keys, and returns the index.
func (r *Repo) Index(ctx context.Context) (*pb.Index, error) {
	var out pb.Index
	if err := r.verifiedIndex(ctx, &out, proto.UnmarshalOptions{}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Summary is [Repo.Index] without what each package provides, which is
// most of a large index: what an installer needs, parsed in a fraction
// of the time.
func (r *Repo) Summary(ctx context.Context) (*pb.IndexSummary, error) {
	var out pb.IndexSummary
	if err := r.verifiedIndex(ctx, &out, proto.UnmarshalOptions{DiscardUnknown: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// verifiedIndex fetches the index and its signature at once, verifies
// the signature over the whole index, and only then parses the index
// into m: nothing of an index is parsed before it is known to be signed
// by a trusted key. Both files are bounded (see Limits in the package
// doc); an index larger than [spoolMemory] is held in a temporary file
// until it is verified.
func (r *Repo) verifiedIndex(ctx context.Context, m proto.Message, uo proto.UnmarshalOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigBuf := newSpool(MaxSignatureSize, MaxSignatureSize, "")
	idx := newSpool(r.opts.MaxIndexSize, spoolMemory, r.opts.TempDir)
	defer idx.close()
	var sig minisign.Signature
	var sigErr error
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		if sigErr = r.fetch(ctx, SignatureFile, sigBuf); sigErr == nil {
			sig, sigErr = minisign.ParseSignature(sigBuf.b)
		}
		if sigErr == nil && !slices.ContainsFunc(r.opts.Keys, func(k minisign.PublicKey) bool { return k.ID == sig.KeyID }) {
			sigErr = fmt.Errorf("%w: signed with key %s, which is not trusted", minisign.ErrVerify, sig.KeyID)
		}
		if sigErr != nil {
			cancel() // the index cannot verify: do not fetch it
		}
	}()
	err := r.fetch(ctx, IndexFile, idx)
	<-fetched
	if sigErr != nil {
		return fmt.Errorf("repository %s: %s: %w", r, SignatureFile, sigErr)
	}
	if err != nil {
		return fmt.Errorf("repository %s: %s: %w", r, IndexFile, err)
	}
	rd, err := idx.reader()
	if err != nil {
		return fmt.Errorf("repository %s: %s: %w", r, IndexFile, err)
	}
	if _, err := minisign.VerifySignature(rd, sig, r.opts.Keys...); err != nil {
		return fmt.Errorf("repository %s: %s: %w", r, IndexFile, err)
	}
	// The index is verified: sig, its trusted comment and the index's
	// bytes are authentic from here on. What the trusted comment must say
	// is checked here, before anything of the index is used.
	if _, err := r.opts.Trust.Check(sig.TrustedComment); err != nil { // freshness.go
		return fmt.Errorf("repository %s: %s: %w", r, IndexFile, err)
	}
	b, err := idx.bytes()
	if err != nil {
		return fmt.Errorf("repository %s: %s: %w", r, IndexFile, err)
	}
	if err := uo.Unmarshal(b, m); err != nil {
		return fmt.Errorf("repository %s: %s: %w", r, IndexFile, err)
	}
	return nil
}

// DigestError says a fetched file is not what the signed index says.
type DigestError struct {
	File       string // e.g. hello-amd64-2.12-9.squashfs
	WantSize   int64
	GotSize    int64 // -1: more than WantSize
	WantSHA256 string
	GotSHA256  string // empty when the size was already wrong
}

func (e *DigestError) Error() string {
	if e.GotSHA256 == "" || e.GotSize != e.WantSize {
		got := strconv.FormatInt(e.GotSize, 10)
		if e.GotSize < 0 {
			got = "more than " + strconv.FormatInt(e.WantSize, 10)
		}
		return fmt.Sprintf("%s: got %s bytes, the signed index says %d (sha256 %s)", e.File, got, e.WantSize, e.WantSHA256)
	}
	return fmt.Sprintf("%s: sha256 is %s, the signed index says %s", e.File, e.GotSHA256, e.WantSHA256)
}

// Fetch writes the repository's file name (e.g.
// hello-amd64-2.12-9.squashfs) to dst, a new file, and checks that it
// has size bytes with the given sha256 (lowercase hex). progress, if not
// nil, is called with the number of bytes written as they arrive
// (negative when a retry starts the file over). Fetch starts writing the
// file back to disk but does not wait for it: fsync it before relying on
// it surviving a crash (see Durability in the package doc). On error the
// file is removed.
func (r *Repo) Fetch(ctx context.Context, name string, size int64, sha string, dst string, progress func(int64)) (err error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(dst)
		}
	}()
	if err := preallocate(f, size); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	v := &verifier{w: f, h: sha256.New(), limit: size, progress: progress}
	if err := r.fetch(ctx, name, v); err != nil {
		if errors.Is(err, errTooLong) {
			return &DigestError{File: name, WantSize: size, GotSize: -1}
		}
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); v.n != size || got != sha {
		return &DigestError{File: name, WantSize: size, GotSize: v.n, WantSHA256: sha, GotSHA256: got}
	}
	v.writeback()
	if err := f.Close(); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	return nil
}

// verifier hashes and counts what it writes and refuses to write past
// limit. It starts the writeback of every writebackChunk bytes written.
type verifier struct {
	w        *os.File
	h        hash.Hash
	n, limit int64
	flushed  int64 // bytes whose writeback has been started
	progress func(int64)
}

// writebackChunk is how many bytes a fetch writes before it asks the
// kernel to start writing them to disk.
const writebackChunk = 4 << 20

// writeback starts writing what was written since the last call to disk.
func (v *verifier) writeback() {
	if v.n > v.flushed {
		startWriteback(v.w, v.flushed, v.n-v.flushed)
		v.flushed = v.n
	}
}

var errTooLong = errors.New("longer than the index says")

func (v *verifier) Write(p []byte) (int, error) {
	if v.n+int64(len(p)) > v.limit {
		return 0, errTooLong
	}
	n, err := v.w.Write(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n-v.flushed >= writebackChunk {
		v.writeback()
	}
	if v.progress != nil && n > 0 {
		v.progress(int64(n))
	}
	return n, err
}

// reset starts over, for a retry that cannot resume.
func (v *verifier) reset() error {
	if v.progress != nil && v.n > 0 {
		v.progress(-v.n)
	}
	v.n, v.flushed = 0, 0
	v.h.Reset()
	if err := v.w.Truncate(0); err != nil {
		return err
	}
	if err := preallocate(v.w, v.limit); err != nil {
		return err
	}
	_, err := v.w.Seek(0, io.SeekStart)
	return err
}

// sink is where a fetch writes: a [verifier] or a [spool]. reset starts
// it over, for a retry that cannot resume.
type sink interface {
	io.Writer
	reset() error
}

// fetch copies the file name to w, retrying as the package doc says.
func (r *Repo) fetch(ctx context.Context, name string, w sink) error {
	if r.base == nil {
		return r.copyLocal(name, w)
	}
	return r.fetchHTTP(ctx, name, w)
}

func (r *Repo) fetchHTTP(ctx context.Context, name string, w sink) error {
	var err error
	delay := r.opts.RetryDelay
	attempts := r.opts.Attempts
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if rerr := w.reset(); rerr != nil {
				return rerr
			}
		}
		var used int
		used, err = r.try(ctx, name, w, attempts-attempt)
		attempt += used
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, errTooLong) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrEncoding) ||
			errors.Is(err, errNotFound) || attempt >= attempts {
			return err
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay *= 2
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// copyLocal copies a file of a local repository through a copy buffer.
// The bytes must pass through this process to be hashed anyway:
// copy_file_range(2) would save a copy only where the file system shares
// extents (btrfs, XFS), and the hash would then read the copy back.
func (r *Repo) copyLocal(name string, w io.Writer) error {
	f, err := os.Open(filepath.Join(r.local, name))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// Hide f's WriteTo, which would copy through a 32 KiB buffer.
	_, err = io.CopyBuffer(w, struct{ io.Reader }{f}, *buf)
	return err
}

var errNotFound = errors.New("not found")

// try makes one GET of name (plus Range resumptions, up to resumes of
// them) and decodes it into w. It returns how many resumptions it used.
func (r *Repo) try(ctx context.Context, name string, w io.Writer, resumes int) (int, error) {
	u := r.base.ResolveReference(&url.URL{Path: name})
	body := &resumer{ctx: ctx, r: r, url: u.String(), resumes: resumes}
	resp, wd, err := body.get(nil)
	if err != nil {
		return 0, err
	}
	body.resp, body.watch = resp, wd
	body.etag = resp.Header.Get("ETag")
	body.encoding = resp.Header.Get("Content-Encoding")
	defer func() {
		body.watch.stop()
		body.resp.Body.Close()
	}()
	if !r.asked(body.encoding) {
		return body.used, fmt.Errorf("GET %s: %w: Content-Encoding %q, asked for %s", body.url, ErrEncoding, body.encoding, r.accept)
	}
	var src io.Reader = body
	switch body.encoding {
	case "", "identity":
		presize(w, resp.ContentLength)
	case "zstd":
		if sp, ok := w.(*spool); ok {
			// Read the frame header for the decoded size, so that an
			// index is read into one buffer of the right size instead
			// of one that doubles: for a large index, growing costs
			// more than decoding.
			head := make([]byte, zstd.HeaderMaxSize)
			n, err := io.ReadFull(body, head)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				return body.used, fmt.Errorf("GET %s: %w", body.url, err)
			}
			var h zstd.Header
			if h.Decode(head[:n]) == nil && h.HasFCS {
				presize(sp, int64(h.FrameContentSize))
			}
			src = io.MultiReader(bytes.NewReader(head[:n]), body)
		}
		d, err := getDecoder(src)
		if err != nil {
			return body.used, fmt.Errorf("GET %s: %w", body.url, err)
		}
		defer putDecoder(d)
		src = d
	case "gzip":
		g, err := gzip.NewReader(body)
		if err != nil {
			return body.used, fmt.Errorf("GET %s: %w", body.url, err)
		}
		src = g
	default:
		return body.used, fmt.Errorf("GET %s: unsupported Content-Encoding %q", body.url, body.encoding)
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(w, src, *buf); err != nil {
		if errors.Is(err, zstd.ErrWindowSizeExceeded) {
			// Not a transient failure: do not try again.
			err = fmt.Errorf("%w: zstd window over %d MiB: %w", ErrTooLarge, MaxZstdWindow>>20, err)
		}
		return body.used, err
	}
	return body.used, nil
}

// copyBufferSize is the size of the buffers bodies are copied through:
// large enough to make few read and write calls (a tenth of the system
// time of 32 KiB ones for an install from loopback), small enough to stay
// in the CPU's cache between the write and the hash.
const copyBufferSize = 256 << 10

var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, copyBufferSize)
	return &b
}}

// decoders are zstd decoders for reuse: a new one allocates its window.
// They decode synchronously, in the goroutine that reads (one per file
// fetched at once, up to Jobs), and skip the frame's xxhash checksum:
// the sha256 of the decoded bytes is checked against the signed index.
var decoders sync.Pool

func getDecoder(r io.Reader) (*zstd.Decoder, error) {
	if d, ok := decoders.Get().(*zstd.Decoder); ok {
		if err := d.Reset(r); err != nil {
			return nil, err
		}
		return d, nil
	}
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.IgnoreChecksum(true), zstd.WithDecoderMaxWindow(MaxZstdWindow))
}

func putDecoder(d *zstd.Decoder) {
	if d.Reset(nil) == nil {
		decoders.Put(d)
	}
}

// resumer is the body of one representation of a file. When the
// connection fails or stalls it asks for the rest with a Range request.
type resumer struct {
	ctx      context.Context
	r        *Repo
	url      string
	resp     *http.Response
	watch    *watchdog // of resp
	etag     string
	encoding string
	off      int64 // bytes of the representation read so far
	resumes  int   // resumptions left
	used     int
	pending  error
}

// get makes a request for the file with the extra headers hdr, and
// returns the response with the watchdog of its body.
func (b *resumer) get(hdr http.Header) (*http.Response, *watchdog, error) {
	ctx, w := newWatchdog(b.ctx, b.r.opts.IdleTimeout, b.r.opts.MinRate, b.r.opts.RateWindow)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		w.stop()
		return nil, nil, err
	}
	req.Header.Set("Accept-Encoding", b.r.accept)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := b.r.opts.Client.Do(req)
	if err != nil {
		w.stop()
		return nil, nil, w.explain(err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && hdr == nil, resp.StatusCode == http.StatusPartialContent && hdr != nil:
		w.kick(0)
		w.startBody()
		return resp, w, nil
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		w.stop()
		return nil, nil, fmt.Errorf("GET %s: %s: %w", b.url, resp.Status, errNotFound)
	}
	resp.Body.Close()
	w.stop()
	return nil, nil, fmt.Errorf("GET %s: %s", b.url, resp.Status)
}

func (b *resumer) Read(p []byte) (int, error) {
	if b.pending != nil {
		err := b.pending
		b.pending = nil
		if err2 := b.resume(err); err2 != nil {
			return 0, err2
		}
	}
	n, err := b.resp.Body.Read(p)
	b.off += int64(n)
	if n > 0 {
		b.watch.kick(n)
	}
	if err == nil || err == io.EOF {
		return n, err
	}
	err = b.watch.explain(err)
	if n > 0 {
		b.pending = err
		return n, nil
	}
	if err2 := b.resume(err); err2 != nil {
		return 0, err2
	}
	return b.Read(p)
}

// resume replaces the failed response with one for the rest.
func (b *resumer) resume(cause error) error {
	if b.ctx.Err() != nil {
		return b.ctx.Err()
	}
	if b.resumes <= 0 || b.etag == "" {
		return fmt.Errorf("GET %s: %w", b.url, cause)
	}
	b.resumes--
	b.used++
	b.resp.Body.Close()
	if err := sleep(b.ctx, b.r.opts.RetryDelay); err != nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	hdr.Set("If-Range", b.etag)
	resp, w, err := b.get(hdr)
	if err != nil {
		return fmt.Errorf("resume after %v: %w", cause, err)
	}
	start, ok := rangeStart(resp.Header.Get("Content-Range"))
	if !ok || start != b.off || resp.Header.Get("Content-Encoding") != b.encoding || resp.Header.Get("ETag") != b.etag {
		resp.Body.Close()
		w.stop()
		return fmt.Errorf("GET %s: resume after %v: the server sent another representation", b.url, cause)
	}
	b.watch.stop()
	b.resp, b.watch = resp, w
	return nil
}

// ErrStalled says a server sent nothing for Options.IdleTimeout without
// closing the connection.
var ErrStalled = errors.New("stalled")

// ErrTooSlow says a server sent less than Options.MinRate bytes per
// second over Options.RateWindow: a trickle that an idle timeout alone
// would never end.
var ErrTooSlow = errors.New("too slow")

// watchdog cancels a request that receives nothing for a while, or too
// little for a longer while. The transport's own timeouts do not cover
// a body that stops mid-way, and a deadline for the whole request would
// fail slow but steady downloads; a minimum rate over a window ends a
// server that sends a byte now and then, and bounds how long a file of
// any size can take (its size from the index divided by the rate).
type watchdog struct {
	idle   time.Duration
	timer  *time.Timer
	cancel context.CancelFunc
	why    atomic.Int32 // why it fired: 0 (not), stalled or tooSlow

	minRate  int64 // bytes per second
	minBytes int64 // per window; 0: no minimum
	window   time.Duration
	rate     *time.Timer
	got      atomic.Int64 // bytes received in this window
	slowGot  atomic.Int64 // bytes received in the window that failed
}

const (
	stalled = 1 + iota
	tooSlow
)

// newWatchdog returns a context for one request, cancelled when idle
// passes without a kick, or (once its body started) when a window
// passes with less than minRate bytes per second received.
func newWatchdog(parent context.Context, idle time.Duration, minRate int64, window time.Duration) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancel(parent)
	w := &watchdog{idle: idle, cancel: cancel, window: window, minRate: minRate}
	if minRate > 0 {
		w.minBytes = max(1, int64(float64(minRate)*window.Seconds()))
	}
	w.timer = time.AfterFunc(idle, func() { w.fire(stalled) })
	// Armed by startBody; created here so that the field is set before
	// the timer can run.
	w.rate = time.AfterFunc(time.Hour, w.checkRate)
	w.rate.Stop()
	return ctx, w
}

func (w *watchdog) fire(why int32) {
	w.why.CompareAndSwap(0, why)
	w.cancel()
}

// startBody starts the rate check, once the response headers are in.
func (w *watchdog) startBody() {
	if w.minBytes > 0 {
		w.rate.Reset(w.window)
	}
}

// checkRate ends a window.
func (w *watchdog) checkRate() {
	got := w.got.Swap(0)
	if got < w.minBytes {
		w.slowGot.Store(got)
		w.fire(tooSlow)
		return
	}
	w.rate.Reset(w.window)
}

// kick says n bytes arrived (0: the response headers).
func (w *watchdog) kick(n int) {
	w.got.Add(int64(n))
	w.timer.Reset(w.idle)
}

// stop ends the request's context; call it when done with the response.
func (w *watchdog) stop() {
	w.timer.Stop()
	w.rate.Stop()
	w.cancel()
}

// explain returns err, or an [ErrStalled] or [ErrTooSlow] error if the
// watchdog caused it.
func (w *watchdog) explain(err error) error {
	switch w.why.Load() {
	case stalled:
		return fmt.Errorf("%w: nothing received for %v (%v)", ErrStalled, w.idle, err)
	case tooSlow:
		return fmt.Errorf("%w: %d bytes received in %v, under the minimum of %d bytes/s (%v)", ErrTooSlow, w.slowGot.Load(), w.window, w.minRate, err)
	}
	return err
}

// rangeStart parses the first byte position of "bytes 10-99/100".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
