package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A metaBlock is one inflated metadata block. Its data is shared through
// the cache and must not be modified.
type metaBlock struct {
	data []byte
	next int64 // image offset of the block that follows on disk
	err  error // the block is corrupt: cached so it is inflated only once
}

// metaBlock returns the metadata block at image offset pos, which must lie
// wholly before end (the start of whatever follows the table).
func (r *Reader) metaBlock(pos, end int64) (*metaBlock, error) {
	if pos < 0 || pos >= end || pos > r.size-3 {
		return nil, fmt.Errorf("metadata block at %#x: outside its table (ends at %#x)", pos, end)
	}
	b, err := r.meta.get(pos, func() (*metaBlock, int, error) {
		b, err := r.loadMetaBlock(pos)
		if err != nil {
			return nil, 0, err
		}
		return b, cap(b.data) + 64, nil
	})
	if err != nil {
		return nil, err
	}
	if b.err != nil {
		return nil, b.err
	}
	// Checked here rather than in the loader: the cache is shared by all
	// tables, and a corrupt reference may reach a cached block from the
	// wrong one.
	if b.next > end {
		return nil, fmt.Errorf("metadata block at %#x: runs past its table end %#x", pos, end)
	}
	return b, nil
}

func (r *Reader) loadMetaBlock(pos int64) (*metaBlock, error) {
	// One read for the length word and the largest possible block: it
	// saves a system call per block.
	raw := make([]byte, min(2+metadataSize, r.size-pos))
	if err := r.readFull(raw, pos); err != nil {
		return nil, fmt.Errorf("metadata block at %#x: %w", pos, err)
	}
	hdr := binary.LittleEndian.Uint16(raw)
	n := int(hdr &^ metadataUncomp)
	if n == 0 || n > metadataSize || 2+n > len(raw) {
		return &metaBlock{err: fmt.Errorf("metadata block at %#x: bad length %d", pos, n)}, nil
	}
	raw = raw[2 : 2+n]
	b := &metaBlock{data: raw, next: pos + 2 + int64(n)}
	if hdr&metadataUncomp == 0 {
		out := make([]byte, metadataSize, metadataSize+decompressSlack)
		m, err := r.dec.decompress(out, raw)
		if err != nil {
			return &metaBlock{err: fmt.Errorf("metadata block at %#x: %w", pos, err)}, nil
		}
		if m == 0 {
			return &metaBlock{err: fmt.Errorf("metadata block at %#x: empty", pos)}, nil
		}
		b.data = out[:m]
	}
	return b, nil
}

// readFull reads len(p) bytes at image offset off, reporting a short read
// as a truncated image.
func (r *Reader) readFull(p []byte, off int64) error {
	if off < 0 || off > r.size || int64(len(p)) > r.size-off {
		return fmt.Errorf("read %d bytes at %#x: beyond the image end %#x", len(p), off, r.size)
	}
	n, err := r.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %#x: %w", len(p), off, err)
}

// metaPos is a position in a metadata table: the image offset of a block
// and an offset within its inflated data.
type metaPos struct {
	block int64
	off   int
}

// A metaCursor reads a byte stream that continues from one metadata block
// into the next, as inodes, directory listings and lookup tables do.
type metaCursor struct {
	r   *Reader
	pos metaPos
	end int64 // blocks must lie before end
	blk *metaBlock
}

func (r *Reader) cursor(pos metaPos, end int64) metaCursor {
	return metaCursor{r: r, pos: pos, end: end}
}

// where returns the current position, normalised to the start of the next
// block when the current one is used up.
func (c *metaCursor) where() metaPos {
	if c.blk != nil && c.pos.off == len(c.blk.data) {
		return metaPos{block: c.blk.next}
	}
	return c.pos
}

func (c *metaCursor) load() error {
	if c.blk != nil {
		if c.pos.off < len(c.blk.data) {
			return nil
		}
		// Used up: move on. next always lies past the block, so a
		// cursor can't loop.
		c.pos = metaPos{block: c.blk.next}
		c.blk = nil
	}
	b, err := c.r.metaBlock(c.pos.block, c.end)
	if err != nil {
		return err
	}
	if c.pos.off >= len(b.data) {
		return fmt.Errorf("offset %d beyond the %d bytes of the metadata block at %#x", c.pos.off, len(b.data), c.pos.block)
	}
	c.blk = b
	return nil
}

// read returns the next n bytes. When they lie in one block the result
// aliases the cache and must not be modified or kept; otherwise they are
// assembled in scratch (grown as needed).
func (c *metaCursor) read(n int, scratch []byte) ([]byte, error) {
	if err := c.load(); err != nil {
		return nil, err
	}
	if d := c.blk.data[c.pos.off:]; n <= len(d) {
		c.pos.off += n
		return d[:n], nil
	}
	out := scratch[:0]
	for len(out) < n {
		if err := c.load(); err != nil {
			return nil, err
		}
		d := c.blk.data[c.pos.off:]
		k := min(n-len(out), len(d))
		out = append(out, d[:k]...)
		c.pos.off += k
	}
	return out, nil
}

// skip advances by n bytes.
func (c *metaCursor) skip(n int) error {
	for n > 0 {
		if err := c.load(); err != nil {
			return err
		}
		k := min(n, len(c.blk.data)-c.pos.off)
		c.pos.off += k
		n -= k
	}
	return nil
}

var errShortTable = errors.New("lookup table too short")

// readTableIndex reads the n block pointers of a lookup table (id,
// fragment or xattr id table) at image offset start. The blocks they
// point at must lie before start, as in every image mksquashfs writes and
// as the kernel requires.
func (r *Reader) readTableIndex(start int64, n int) ([]int64, error) {
	if start < superblockSize || start > r.size || int64(n) > (r.size-start)/8 {
		return nil, fmt.Errorf("index at %#x of %d blocks: %w", start, n, errShortTable)
	}
	// Read in chunks: when the image size is unknown, n comes unchecked
	// from the superblock, and memory should follow what really is there.
	idx := make([]int64, 0, min(n, 512))
	var raw [8 * 512]byte
	for len(idx) < n {
		k := min(n-len(idx), 512)
		if err := r.readFull(raw[:8*k], start+8*int64(len(idx))); err != nil {
			return nil, err
		}
		for i := range k {
			p := binary.LittleEndian.Uint64(raw[8*i:])
			if p >= uint64(start) {
				return nil, fmt.Errorf("index at %#x: block %d at %#x lies past the index", start, len(idx), p)
			}
			idx = append(idx, int64(p))
		}
	}
	return idx, nil
}

// tableEntry returns entry i of a lookup table whose entries are size
// bytes long (a power of two dividing the metadata block size).
func (r *Reader) tableEntry(index []int64, end int64, i uint64, size int, scratch []byte) ([]byte, error) {
	perBlock := uint64(metadataSize / size)
	b := i / perBlock
	if b >= uint64(len(index)) {
		return nil, fmt.Errorf("entry %d: %w", i, errShortTable)
	}
	c := r.cursor(metaPos{block: index[b], off: int(i%perBlock) * size}, end)
	return c.read(size, scratch)
}
