package squashfs

import (
	"fmt"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// blockCodec holds what the compressors of one image share.
type blockCodec struct {
	kind  Compression
	level int
	zstd  *zstd.Encoder // EncodeAll is safe for concurrent use
}

func newCodec(kind Compression, level int, blockSize uint32, jobs int) (*blockCodec, error) {
	c := &blockCodec{kind: kind, level: level}
	switch kind {
	case Zstd:
		if c.level == 0 {
			c.level = 15 // mksquashfs's default
		}
		if c.level < 1 || c.level > 22 {
			return nil, fmt.Errorf("squashfs: zstd level %d out of range 1-22", c.level)
		}
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.level)),
			zstd.WithEncoderConcurrency(jobs+1), // the workers and the metadata writer
			// A block is one frame that declares its size; the kernel
			// sizes its decompression window from the block size.
			zstd.WithSingleSegment(true),
			zstd.WithWindowSize(int(blockSize)),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd: %w", err)
		}
		c.zstd = enc
	case Gzip:
		if c.level == 0 {
			c.level = 9 // mksquashfs's default
		}
		if c.level < 1 || c.level > 9 {
			return nil, fmt.Errorf("squashfs: gzip level %d out of range 1-9", c.level)
		}
	}
	return c, nil
}

func (c *blockCodec) close() {
	if c.zstd != nil {
		c.zstd.Close()
	}
}

// blockCompressor compresses blocks; each goroutine has its own.
type blockCompressor struct {
	c  *blockCodec
	zw *zlib.Writer
	sw sliceWriter
}

func (c *blockCodec) newCompressor() *blockCompressor {
	b := &blockCompressor{c: c}
	if c.kind == Gzip {
		// squashfs's "gzip" is a zlib stream (RFC 1950), as the kernel's
		// zlib_inflate expects.
		b.zw, _ = zlib.NewWriterLevel(&b.sw, c.level) // the level is checked
	}
	return b
}

// compress compresses src into dst's storage. ok is false if that does not
// make it smaller, and then the block is to be stored as it is.
func (b *blockCompressor) compress(dst, src []byte) (z []byte, ok bool) {
	if b.c.kind == Zstd {
		z = b.c.zstd.EncodeAll(src, dst[:0])
	} else {
		b.sw.b = dst[:0]
		b.zw.Reset(&b.sw)
		// Writes into a slice cannot fail.
		b.zw.Write(src)
		b.zw.Close()
		z = b.sw.b
	}
	return z, len(z) < len(src)
}

// sliceWriter is an io.Writer appending to a slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
