package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Limits on what a repository sends before any of it is verified. A
// mirror is not trusted (docs/security.md): until the signature holds,
// its bytes must cost this client no more than these.
const (
	// MaxSignatureSize bounds index.minisig. minisign's own files are
	// about 300 bytes plus the trusted comment.
	MaxSignatureSize = 4 << 10
	// DefaultMaxIndexSize is the default of Options.MaxIndexSize, the
	// bound of the decoded index: about 200 times the index of 5000
	// packages, far more than a whole distribution's.
	DefaultMaxIndexSize = 256 << 20
	// MaxZstdWindow bounds the window of a zstd frame, which a decoder
	// holds in memory: 8 MiB is what distri-mirror's encoder and zstd's
	// levels up to 19 use; larger ones (zstd --ultra, --long) are refused.
	MaxZstdWindow = 8 << 20
)

// spoolMemory is how much of an index is held in memory; the rest of a
// larger one goes to a temporary file until it is verified, so that an
// unverified index costs at most this much memory.
const spoolMemory = 8 << 20

// ErrTooLarge says a file is larger than the limit for it.
var ErrTooLarge = errors.New("larger than the limit")

// ErrEncoding says a server sent a Content-Encoding this client did not
// ask for. It is refused, not decoded: a client that asked for identity
// (to save CPU time, or to avoid decoders) must not run one.
var ErrEncoding = errors.New("unrequested encoding")

// asked says whether a response's Content-Encoding was asked for.
func (r *Repo) asked(encoding string) bool {
	return encoding == "" || encoding == "identity" || slices.Contains(r.opts.Encodings, encoding)
}

// spool holds a file of up to max bytes: the first mem bytes in memory,
// the rest (if any) in an unlinked temporary file in dir.
type spool struct {
	max, mem int64
	dir      string
	b        []byte   // the bytes while they fit in memory
	f        *os.File // nil while the bytes fit in memory
	n        int64
}

func newSpool(max, mem int64, dir string) *spool {
	return &spool{max: max, mem: min(mem, max), dir: dir}
}

func (s *spool) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.max)
}

func (s *spool) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.max {
		return 0, s.tooLarge()
	}
	if s.f == nil && s.n+int64(len(p)) > s.mem {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
	} else {
		s.grow(len(p))
		s.b = append(s.b, p...)
		n = len(p)
	}
	s.n += int64(n)
	return n, err
}

// ReadFrom reads into the memory buffer directly, not through a copy
// buffer, while the bytes fit; then through Write. The buffer grows by
// doubling up to mem, never beyond (bytes.Buffer's ReadFrom would double
// it once more to look for the end).
func (s *spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for s.f == nil && int64(len(s.b)) < s.mem {
		if len(s.b) == cap(s.b) {
			s.grow(1)
		}
		room := min(int64(cap(s.b)), s.mem) - int64(len(s.b))
		n, err := r.Read(s.b[len(s.b) : int64(len(s.b))+room])
		s.b = s.b[:len(s.b)+n]
		s.n += int64(n)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	n, err := io.CopyBuffer(struct{ io.Writer }{s}, r, *buf)
	return total + n, err
}

// grow makes room in memory for n more bytes: doubling, but not beyond
// mem (append alone grows large slices by a quarter at a time, which
// allocates several times the final size on the way).
func (s *spool) grow(n int) {
	if len(s.b)+n > cap(s.b) {
		s.b = slices.Grow(s.b, int(min(max(int64(cap(s.b)), 64<<10, int64(n)), s.mem-int64(len(s.b)))))
	}
}

// spill moves the bytes held in memory to a new temporary file.
func (s *spool) spill() error {
	f, err := os.CreateTemp(s.dir, ".distri-index-*")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	if _, err := f.Write(s.b); err != nil {
		f.Close()
		return err
	}
	s.f = f
	s.b = nil
	return nil
}

func (s *spool) reset() error {
	s.n = 0
	s.b = s.b[:0]
	if s.f != nil {
		if err := s.f.Truncate(0); err != nil {
			return err
		}
		_, err := s.f.Seek(0, io.SeekStart)
		return err
	}
	return nil
}

// reader returns the bytes from the start.
func (s *spool) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.b), nil
	}
	return io.NewSectionReader(s.f, 0, s.n), nil
}

// bytes returns the bytes in memory, reading them from the file if
// they were spilled.
func (s *spool) bytes() ([]byte, error) {
	if s.f == nil {
		return s.b, nil
	}
	b := make([]byte, s.n)
	if _, err := s.f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// presize grows w's memory for size more bytes, if w is a spool (what
// the index and its signature are read into) and size is known; never
// beyond what the spool holds in memory, as size comes from the server
// before anything is verified. One byte more lets [spool.ReadFrom] see
// the end without growing the buffer.
func presize(w io.Writer, size int64) {
	if s, ok := w.(*spool); ok && size > 0 && s.f == nil {
		s.b = slices.Grow(s.b, int(min(size+1, s.mem-s.n)))
	}
}
