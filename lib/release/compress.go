package release

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// CompressOptions says how to compress.
type CompressOptions struct {
	// Level is the zstd encoder level; 0 means zstd.SpeedBetterCompression
	// (docs/release.md has the measurements behind the choice).
	Level zstd.EncoderLevel
	// Window is the window size in bytes (a power of two): matches reach
	// this far back. 0 means 8 MiB, klauspost's largest default.
	Window int
	// Concurrency is how many goroutines compress sections of the input
	// at once; 0 means GOMAXPROCS, and fewer than 2 means 2: klauspost
	// splits the input into fixed sections only with 2 or more (with 1
	// its output differs), and so the output does not depend on it.
	Concurrency int
}

// CompressStats describes one compression.
type CompressStats struct {
	In      int64 // bytes of input, holes included, e.g. 8 GiB
	Data    int64 // bytes in data extents (SEEK_DATA), e.g. 400 MiB
	Out     int64 // bytes written
	Elapsed time.Duration
}

// Compress writes the zstd compression of the file src to dst.
//
// The output is a sequence of zstd frames, which decoders concatenate:
// each run of data (holes shorter than [MinHole] included) is one frame
// from the klauspost encoder, and each hole of at least MinHole bytes
// (found with SEEK_DATA and SEEK_HOLE) is a frame of RLE blocks written
// here, 4 bytes per 128 KiB, without reading the hole or running the
// encoder over it: feeding an 8 GiB image's holes to the encoder as
// zeros took about 5 s per GiB on the development VM.
func Compress(dst io.Writer, src string, opts CompressOptions) (CompressStats, error) {
	start := time.Now()
	f, err := os.Open(src)
	if err != nil {
		return CompressStats{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return CompressStats{}, err
	}
	if !fi.Mode().IsRegular() {
		return CompressStats{}, fmt.Errorf("compress %s: not a regular file", src)
	}
	if opts.Level == 0 {
		opts.Level = zstd.SpeedDefault
	}
	if opts.Window == 0 {
		opts.Window = 8 << 20
	}
	exts, err := extents(f, fi.Size())
	if err != nil {
		return CompressStats{}, fmt.Errorf("compress %s: %w", src, err)
	}
	cw := &countWriter{w: dst}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(opts.Level),
		zstd.WithWindowSize(opts.Window),
		zstd.WithEncoderConcurrency(concurrency(opts.Concurrency)),
		zstd.WithConcurrentBlocks(true),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true))
	if err != nil {
		return CompressStats{}, fmt.Errorf("compress %s: %w", src, err)
	}
	defer enc.Close()
	st := CompressStats{In: fi.Size()}
	var off int64
	for _, e := range exts {
		if e.start > off {
			if err := writeZeroFrame(cw, e.start-off); err != nil {
				return CompressStats{}, fmt.Errorf("compress %s: %w", src, err)
			}
		}
		enc.Reset(cw)
		n, err := enc.ReadFrom(io.NewSectionReader(f, e.start, e.end-e.start))
		if err == nil && n != e.end-e.start {
			err = fmt.Errorf("read %d of %d bytes at %d (file changed while compressing?)", n, e.end-e.start, e.start)
		}
		if err == nil {
			err = enc.Close()
		}
		if err != nil {
			return CompressStats{}, fmt.Errorf("compress %s: %w", src, err)
		}
		st.Data += n
		off = e.end
	}
	if off < fi.Size() || len(exts) == 0 && fi.Size() == 0 {
		if err := writeZeroFrame(cw, fi.Size()-off); err != nil {
			return CompressStats{}, fmt.Errorf("compress %s: %w", src, err)
		}
	}
	st.Out = cw.n
	st.Elapsed = time.Since(start)
	return st, nil
}

func concurrency(n int) int {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return max(n, 2)
}

// MinHole is the smallest hole [Compress] writes as RLE blocks; shorter
// holes go through the encoder with the data around them, so an image
// with many small extents does not become many small frames.
const MinHole = 1 << 20

type extent struct{ start, end int64 }

// extents returns the data extents of f, holes shorter than MinHole
// merged into the data around them. On a file system without SEEK_DATA
// (EINVAL), the whole file is one extent.
func extents(f *os.File, size int64) ([]extent, error) {
	fd := int(f.Fd())
	var exts []extent
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // no data after off
			break
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return []extent{{0, size}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("seek data at %d: %w", off, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole at %d: %w", start, err)
		}
		start, end = min(start, size), min(end, size)
		if end <= start {
			break
		}
		if n := len(exts); n > 0 && start-exts[n-1].end < MinHole {
			exts[n-1].end = end
		} else if n == 0 && start < MinHole {
			exts = append(exts, extent{0, end})
		} else {
			exts = append(exts, extent{start, end})
		}
		off = end
	}
	if n := len(exts); n > 0 && size-exts[n-1].end < MinHole {
		exts[n-1].end = size
	}
	return exts, nil
}

// rleBlock is the largest block zstd allows (Block_Maximum_Size).
const rleBlock = 128 << 10

// writeZeroFrame writes a zstd frame (RFC 8878 section 3.1.1) that
// decodes to n zero bytes: a header with a 128 KiB window and no content
// size or checksum, then RLE blocks of up to 128 KiB of the byte 0.
func writeZeroFrame(w io.Writer, n int64) error {
	const (
		blockRLE = 1 << 1
		last     = 1
	)
	b := make([]byte, 0, 6+4*min(n/rleBlock+1, 4096))
	// Magic; Frame_Header_Descriptor 0 (no single segment, no checksum,
	// no dictionary, no content size); Window_Descriptor: exponent 7,
	// 2^(10+7) = 128 KiB.
	b = append(b, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 7<<3)
	for {
		sz := min(n, rleBlock)
		n -= sz
		h := uint32(sz)<<3 | blockRLE
		if n == 0 {
			h |= last
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
		if n == 0 || len(b) >= cap(b)-4 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if n == 0 {
			return nil
		}
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
