package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"
)

// A decompressor inflates one metadata or data block. Output longer than
// len(dst) is an error: dst is sized to the most the block may hold (8 KiB
// for metadata, the block size for data), which bounds the memory a
// hostile image can make us use. Capacity past len(dst) is scratch the
// decompressor may scribble on. Implementations are safe for concurrent
// use.
type decompressor interface {
	decompress(dst, src []byte) (int, error)
}

// decompressSlack is the spare capacity to give decompression buffers:
// with 32 bytes past the largest output, klauspost/compress's zstd
// decoder uses its fast copy loops instead of the bounds-exact ones.
const decompressSlack = 64

// newDecompressor returns the decompressor for c. opts are the compressor
// options stored after the superblock (nil when absent).
func newDecompressor(c Compression, opts []byte, blockSize int) (decompressor, error) {
	switch c {
	case None:
		return noDecompressor{}, nil
	case Gzip:
		return &zlibDecompressor{}, nil
	case XZ:
		return xzDecompressor{}, nil
	case LZ4:
		// squashfs-tools stores the LZ4 format version in the options;
		// only version 1 (LZ4_LEGACY, raw blocks) exists.
		if len(opts) >= 4 {
			if v := binary.LittleEndian.Uint32(opts); v != 1 {
				return nil, fmt.Errorf("squashfs: unsupported lz4 format version %d (%w)", v, errors.ErrUnsupported)
			}
		}
		return lz4Decompressor{}, nil
	case Zstd:
		d, err := zstd.NewReader(nil,
			// Decodes running at once; each decoder keeps buffers of a
			// block size, so don't scale with big machines.
			zstd.WithDecoderConcurrency(min(runtime.GOMAXPROCS(0), 8)),
			zstd.WithDecoderLowmem(false), // ~7% faster per block
			zstd.WithDecoderMaxMemory(uint64(max(blockSize, metadataSize))),
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd: %w", err)
		}
		return zstdDecompressor{d}, nil
	case LZMA, LZO:
		return nil, fmt.Errorf("squashfs: unsupported compression %s (%w)", c, errors.ErrUnsupported)
	}
	return nil, fmt.Errorf("squashfs: unknown compression id %d", uint16(c))
}

// noDecompressor is used for images whose compressor id is 0: every block
// must carry its "uncompressed" bit.
type noDecompressor struct{}

func (noDecompressor) decompress(dst, src []byte) (int, error) {
	return 0, errors.New("compressed block in an image without a compressor")
}

// zlibDecompressor handles squashfs "gzip", which is a zlib stream.
// Readers are pooled: allocating the inflate state per block is
// measurable.
type zlibDecompressor struct {
	pool sync.Pool // of *zlibState
}

type zlibState struct {
	br bytes.Reader
	zr io.ReadCloser
}

func (z *zlibDecompressor) decompress(dst, src []byte) (int, error) {
	st, _ := z.pool.Get().(*zlibState)
	if st == nil {
		st = &zlibState{}
	}
	st.br.Reset(src)
	var err error
	if st.zr == nil {
		st.zr, err = zlib.NewReader(&st.br)
	} else {
		err = st.zr.(zlib.Resetter).Reset(&st.br, nil)
	}
	if err != nil {
		return 0, fmt.Errorf("zlib: %w", err)
	}
	n, err := readAllInto(st.zr, dst)
	if err != nil {
		return n, fmt.Errorf("zlib: %w", err)
	}
	z.pool.Put(st)
	return n, nil
}

// readAllInto reads r to EOF into dst and fails if r holds more than
// len(dst) bytes.
func readAllInto(r io.Reader, dst []byte) (int, error) {
	n, err := io.ReadFull(r, dst)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return n, nil
	case err != nil:
		return n, err
	}
	// dst is full: the stream must end here.
	var one [1]byte
	m, err := r.Read(one[:])
	for m == 0 && err == nil {
		m, err = r.Read(one[:])
	}
	if m > 0 {
		return n, fmt.Errorf("block inflates to more than %d bytes", len(dst))
	}
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

type zstdDecompressor struct{ d *zstd.Decoder }

func (z zstdDecompressor) decompress(dst, src []byte) (int, error) {
	// The decoder writes at most cap(dst) bytes (WithDecodeAllCapLimit),
	// so a block that inflates too far ends up in the slack or fails.
	out, err := z.d.DecodeAll(src, dst[:0])
	if err != nil {
		return 0, fmt.Errorf("zstd: %w", err)
	}
	if len(out) > len(dst) {
		return 0, fmt.Errorf("zstd: block inflates to more than %d bytes", len(dst))
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		copy(dst, out)
	}
	return len(out), nil
}

// xzDecompressor parses the xz container itself and hands the LZMA2 data
// to github.com/ulikunitz/xz/lzma. Doing so lets us cap the dictionary at
// len(dst) (a block never refers further back than its own start), where
// xz.NewReader would allocate whatever the stream header asks for, up to
// 4 GiB. The check and index after the LZMA2 data are not verified.
type xzDecompressor struct{}

func (xzDecompressor) decompress(dst, src []byte) (int, error) {
	data, dict, err := xzBlockData(src)
	if err != nil {
		return 0, fmt.Errorf("xz: %w", err)
	}
	if data == nil {
		return 0, nil // a stream without blocks
	}
	if err := checkLZMA2(data, len(dst)); err != nil {
		return 0, fmt.Errorf("xz: %w", err)
	}
	dict = min(dict, int64(len(dst)))
	dict = max(dict, lzma.MinDictCap)
	lr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("xz: %w", err)
	}
	n, err := readAllInto(lr, dst)
	if err != nil {
		return n, fmt.Errorf("xz: %w", err)
	}
	return n, nil
}

// xzBlockData returns the LZMA2 data of the first block of the xz stream
// in b and its dictionary size. It returns nil data for a stream with no
// blocks. See https://tukaani.org/xz/xz-file-format.txt §2 and §3.
func xzBlockData(b []byte) (data []byte, dict int64, err error) {
	const streamHeaderSize = 12
	if len(b) < streamHeaderSize+1 || string(b[:6]) != "\xfd7zXZ\x00" {
		return nil, 0, errors.New("bad stream header")
	}
	b = b[streamHeaderSize:]
	if b[0] == 0 {
		return nil, 0, nil // index indicator: no blocks
	}
	hdrSize := (int(b[0]) + 1) * 4
	if len(b) < hdrSize {
		return nil, 0, errors.New("truncated block header")
	}
	hdr := b[1 : hdrSize-4] // without the size byte and the CRC32
	data = b[hdrSize:]
	flags := hdr[0]
	if flags&0x3c != 0 {
		return nil, 0, fmt.Errorf("reserved block flags %#x", flags)
	}
	hdr = hdr[1:]
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if !present {
			continue
		}
		_, n := binary.Uvarint(hdr)
		if n <= 0 {
			return nil, 0, errors.New("bad size in block header")
		}
		hdr = hdr[n:]
	}
	nfilters := int(flags&3) + 1
	for i := range nfilters {
		id, n := binary.Uvarint(hdr)
		if n <= 0 {
			return nil, 0, errors.New("bad filter id")
		}
		hdr = hdr[n:]
		size, n := binary.Uvarint(hdr)
		if n <= 0 || size > uint64(len(hdr)-n) {
			return nil, 0, errors.New("bad filter properties")
		}
		props := hdr[n : n+int(size)]
		hdr = hdr[n+int(size):]
		if i < nfilters-1 || id != 0x21 {
			// mksquashfs -Xbcj adds branch/call/jump filters, which
			// ulikunitz/xz does not implement.
			return nil, 0, fmt.Errorf("unsupported filter %#x (%w)", id, errors.ErrUnsupported)
		}
		if len(props) != 1 || props[0] > 40 {
			return nil, 0, errors.New("bad LZMA2 properties")
		}
		p := props[0]
		if p == 40 {
			dict = 1<<32 - 1
		} else {
			dict = int64(2|p&1) << (p/2 + 11)
		}
	}
	return data, dict, nil
}

// checkLZMA2 walks the chunk headers of LZMA2 data before it is decoded.
// ulikunitz/xz accepts lc+lp up to 12, which LZMA2 forbids (the limit is
// 4), and sets up a literal coder of 0x300<<(lc+lp) probabilities at
// every chunk that resets the state: a few hundred bytes of hostile input
// would cost gigabytes of memory writes. The walk also rejects data that
// declares more output than the block may hold.
func checkLZMA2(b []byte, max int) error {
	total := 0
	for len(b) > 0 {
		c := b[0]
		switch {
		case c == 0: // end of data
			return nil
		case c == 1 || c == 2: // uncompressed chunk
			if len(b) < 3 {
				return errors.New("lzma2: truncated chunk header")
			}
			n := (int(b[1])<<8 | int(b[2])) + 1
			total += n
			if total > max || 3+n > len(b) {
				return errors.New("lzma2: chunk beyond the block")
			}
			b = b[3+n:]
		case c >= 0x80: // LZMA chunk
			hdr := 5
			if c >= 0xc0 { // with new properties
				hdr = 6
			}
			if len(b) < hdr {
				return errors.New("lzma2: truncated chunk header")
			}
			unpacked := (int(c&0x1f)<<16 | int(b[1])<<8 | int(b[2])) + 1
			packed := (int(b[3])<<8 | int(b[4])) + 1
			if hdr == 6 {
				p := b[5]
				lc, lp := int(p%9), int(p/9%5)
				if p >= 9*5*5 || lc+lp > 4 {
					return fmt.Errorf("lzma2: bad properties %#x", p)
				}
			}
			total += unpacked
			if total > max || hdr+packed > len(b) {
				return errors.New("lzma2: chunk beyond the block")
			}
			b = b[hdr+packed:]
		default:
			return fmt.Errorf("lzma2: bad chunk control byte %#x", c)
		}
	}
	return errors.New("lzma2: no end marker")
}
