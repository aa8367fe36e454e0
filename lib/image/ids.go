package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// ids derives UUIDs from a seed, or makes random ones without.
type ids struct{ seed uint64 }

func newIDs(seed uint64) *ids { return &ids{seed: seed} }

// uuid returns a version 4 UUID for purpose: random, or a hash of the
// seed and purpose.
func (s *ids) uuid(purpose string) string {
	var b [16]byte
	if s.seed == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
	} else {
		h := sha256.New()
		binary.Write(h, binary.LittleEndian, s.seed)
		io.WriteString(h, purpose)
		copy(b[:], h.Sum(nil))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// offsetWriter writes at an offset of w.
type offsetWriter struct {
	w   io.WriterAt
	off int64
}

func (o *offsetWriter) WriteAt(p []byte, off int64) (int, error) { return o.w.WriteAt(p, o.off+off) }

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
