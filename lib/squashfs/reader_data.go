package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"syscall"
)

// fileInfo is a regular file's parsed block list, cached per inode so
// that a FUSE read parses nothing.
type fileInfo struct {
	size       int64
	sizes      []uint32 // the block list: one size word per block outside the fragment
	marks      []int64  // image offset of every 64th block: blockStart sums at most 63 sizes
	frag       uint32   // fragment index of the tail, or fragmentNone
	fragOffset uint32   // the tail's offset in the inflated fragment block
}

const (
	blockSizeMask = dataUncomp - 1 // a size word's length bits
	marksEvery    = 64

	// maxFileBlocks bounds a block list (4 bytes per block in memory):
	// 2 TiB at the default block size, 64 GiB with -b 4096. Metadata
	// inflates well, so without a bound a small corrupt image could
	// describe a block list of many gigabytes.
	maxFileBlocks = 1 << 24
)

// blockStart returns the image offset of block i.
func (f *fileInfo) blockStart(i int) int64 {
	pos := f.marks[i/marksEvery]
	for _, w := range f.sizes[i&^(marksEvery-1) : i] {
		pos += int64(w & blockSizeMask)
	}
	return pos
}

func (r *Reader) fileInfo(ino Inode) (*fileInfo, error) {
	return r.files.get(ino, func() (*fileInfo, int, error) {
		in, err := r.inode(ino)
		if err != nil {
			return nil, 0, err
		}
		if !in.isFile() {
			errno := syscall.EINVAL
			if in.isDir() {
				errno = syscall.EISDIR
			}
			return nil, 0, fmt.Errorf("squashfs: inode %v is not a regular file (%v): %w", ino, in.mode().Type(), errno)
		}
		f, err := r.parseBlockList(in)
		if err != nil {
			return nil, 0, fmt.Errorf("squashfs: file inode %v: %w", ino, err)
		}
		return f, 64 + 4*len(f.sizes) + 8*len(f.marks), nil
	})
}

func (r *Reader) parseBlockList(in *inodeData) (*fileInfo, error) {
	bs := int64(r.sb.BlockSize)
	f := &fileInfo{size: int64(in.size), frag: in.frag, fragOffset: in.fragOffset}
	n := f.size / bs
	if in.frag == fragmentNone {
		if f.size%bs != 0 {
			n++
		}
	} else if f.size%bs == 0 {
		f.frag = fragmentNone // no tail: the fragment is unused
	} else if in.frag >= r.sb.FragmentCount {
		return nil, fmt.Errorf("bad fragment %d (the image has %d)", in.frag, r.sb.FragmentCount)
	}
	if n == 0 {
		return f, nil
	}
	if n > maxFileBlocks {
		return nil, fmt.Errorf("%d blocks, more than the supported %d", n, maxFileBlocks)
	}
	if in.blocksStart > uint64(r.size) {
		return nil, fmt.Errorf("blocks start at %#x, past the image end %#x", in.blocksStart, r.size)
	}
	// Read the list in chunks and grow the slices as it arrives, so that
	// memory follows what the image really holds.
	f.sizes = make([]uint32, 0, min(n, 4096))
	pos := int64(in.blocksStart)
	c := r.cursor(in.tail, r.inodeEnd)
	var scratch [4 * 512]byte
	for i := int64(0); i < n; {
		k := min(n-i, 512)
		b, err := c.read(int(k)*4, scratch[:])
		if err != nil {
			return nil, fmt.Errorf("block list: %w", err)
		}
		for j := range int(k) {
			w := binary.LittleEndian.Uint32(b[4*j:])
			l := int64(w & blockSizeMask)
			if w&^(dataUncomp|blockSizeMask) != 0 || l > bs {
				return nil, fmt.Errorf("block %d: bad size word %#x", i, w)
			}
			if i%marksEvery == 0 {
				f.marks = append(f.marks, pos)
			}
			pos += l
			if pos > r.size {
				return nil, fmt.Errorf("block %d runs past the image end", i)
			}
			f.sizes = append(f.sizes, w)
			i++
		}
	}
	return f, nil
}

// ReadAt reads from the regular file ino at offset off, with the
// semantics of io.ReaderAt: fewer than len(p) bytes come with io.EOF at
// the end of the file. Sparse blocks read as zeros. For an uncompressed
// block the bytes go straight from the image into p.
func (r *Reader) ReadAt(ino Inode, p []byte, off int64) (int, error) {
	f, err := r.fileInfo(ino)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("squashfs: read inode %v: negative offset %d: %w", ino, off, syscall.EINVAL)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(len(p)) > f.size-off {
		p = p[:f.size-off]
	}
	bs := int64(r.sb.BlockSize)
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i, in := pos/bs, pos%bs
		var k int
		if i < int64(len(f.sizes)) {
			k, err = r.readBlock(f, int(i), p[n:], in)
		} else {
			k, err = r.readTail(f, p[n:], in)
		}
		if err != nil {
			return n, fmt.Errorf("squashfs: read inode %v at offset %d: %w", ino, pos, err)
		}
		n += k
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// readBlock copies block i of f from offset in into p, as much as fits.
func (r *Reader) readBlock(f *fileInfo, i int, p []byte, in int64) (int, error) {
	bs := int64(r.sb.BlockSize)
	blockLen := min(bs, f.size-int64(i)*bs)
	k := int(min(int64(len(p)), blockLen-in))
	w := f.sizes[i]
	l := int64(w & blockSizeMask)
	switch {
	case l == 0: // sparse
		clear(p[:k])
	case w&dataUncomp != 0:
		if l < in+int64(k) {
			return 0, fmt.Errorf("block %d: stored %d bytes, want %d", i, l, blockLen)
		}
		// Uncompressed blocks lie back to back: extend the read over
		// the following ones, one system call for all.
		for j := i + 1; l == blockLen && k < len(p) && j < len(f.sizes); j++ {
			wj := f.sizes[j]
			lj := min(bs, f.size-int64(j)*bs)
			if wj&dataUncomp == 0 || int64(wj&blockSizeMask) != lj {
				break
			}
			k += int(min(int64(len(p)-k), lj))
		}
		if err := r.readFull(p[:k], f.blockStart(i)+in); err != nil {
			return 0, fmt.Errorf("block %d: %w", i, err)
		}
	default:
		data, err := r.blocks.get(f.blockStart(i), func() ([]byte, int, error) {
			out := make([]byte, blockLen, blockLen+decompressSlack)
			if err := r.inflateBlock(out, f.blockStart(i), l); err != nil {
				return nil, 0, err
			}
			return out, len(out), nil
		})
		if err != nil {
			return 0, fmt.Errorf("block %d: %w", i, err)
		}
		if int64(len(data)) != blockLen {
			return 0, fmt.Errorf("block %d: %d bytes, want %d", i, len(data), blockLen)
		}
		copy(p[:k], data[in:])
	}
	return k, nil
}

// inflateBlock reads the compressed block of l bytes at image offset pos
// and inflates it into out, which it must fill exactly.
func (r *Reader) inflateBlock(out []byte, pos, l int64) error {
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	src := (*bp)[:l]
	if err := r.readFull(src, pos); err != nil {
		return err
	}
	m, err := r.dec.decompress(out, src)
	if err != nil {
		return fmt.Errorf("block at %#x: %w", pos, err)
	}
	if m != len(out) {
		return fmt.Errorf("block at %#x inflates to %d bytes, want %d", pos, m, len(out))
	}
	return nil
}

// readTail copies the part of f's tail from offset in into p.
func (r *Reader) readTail(f *fileInfo, p []byte, in int64) (int, error) {
	if f.frag == fragmentNone {
		return 0, fmt.Errorf("offset %d beyond the block list", in)
	}
	bs := int64(r.sb.BlockSize)
	tailLen := f.size % bs
	k := int(min(int64(len(p)), tailLen-in))
	data, err := r.fragment(f.frag)
	if err != nil {
		return 0, err
	}
	if uint64(f.fragOffset)+uint64(tailLen) > uint64(len(data)) {
		return 0, fmt.Errorf("fragment %d: tail of %d bytes at offset %d, the block has %d", f.frag, tailLen, f.fragOffset, len(data))
	}
	copy(p[:k], data[int64(f.fragOffset)+in:])
	return k, nil
}

// fragment returns fragment block i, inflated.
func (r *Reader) fragment(i uint32) ([]byte, error) {
	if i >= r.sb.FragmentCount {
		return nil, fmt.Errorf("fragment %d: the image has %d", i, r.sb.FragmentCount)
	}
	var scratch [16]byte
	b, err := r.tableEntry(r.fragIndex, int64(r.sb.FragTableStart), uint64(i), 16, scratch[:])
	if err != nil {
		return nil, fmt.Errorf("fragment %d: %w", i, err)
	}
	start := binary.LittleEndian.Uint64(b)
	w := binary.LittleEndian.Uint32(b[8:])
	l := int64(w & blockSizeMask)
	if w&^(dataUncomp|blockSizeMask) != 0 || l == 0 || l > int64(r.sb.BlockSize) || start > uint64(r.size-l) {
		return nil, fmt.Errorf("fragment %d: bad entry: %d bytes (%#x) at %#x", i, l, w, start)
	}
	data, err := r.frags.get(int64(start), func() ([]byte, int, error) {
		if w&dataUncomp != 0 {
			out := make([]byte, l)
			return out, len(out), r.readFull(out, int64(start))
		}
		bp := r.bufs.Get().(*[]byte)
		defer r.bufs.Put(bp)
		src := (*bp)[:l]
		if err := r.readFull(src, int64(start)); err != nil {
			return nil, 0, err
		}
		out := make([]byte, r.sb.BlockSize, int(r.sb.BlockSize)+decompressSlack)
		m, err := r.dec.decompress(out, src)
		if err != nil {
			return nil, 0, fmt.Errorf("block at %#x: %w", start, err)
		}
		return out[:m], len(out), nil
	})
	if err != nil {
		return nil, fmt.Errorf("fragment %d: %w", i, err)
	}
	return data, nil
}
