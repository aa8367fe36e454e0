package squashfs

import "errors"

// lz4Decompressor inflates LZ4 blocks (the raw block format, not frames),
// which is what squashfs-tools writes (LZ4_LEGACY). The format is
// described in https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md:
// a sequence is a token (literal length, match length), optional length
// extension bytes, literals, a 2-byte little-endian match offset and
// optional match length extension bytes. The last sequence has literals
// only.
type lz4Decompressor struct{}

var (
	errLZ4Truncated = errors.New("lz4: truncated block")
	errLZ4Overflow  = errors.New("lz4: block inflates beyond the buffer")
	errLZ4Offset    = errors.New("lz4: match offset out of range")
)

func (lz4Decompressor) decompress(dst, src []byte) (int, error) {
	si, di := 0, 0
	for {
		if si >= len(src) {
			return di, errLZ4Truncated
		}
		token := src[si]
		si++

		lit := int(token >> 4)
		if lit == 15 {
			n, used, ok := lz4Length(src[si:])
			if !ok {
				return di, errLZ4Truncated
			}
			lit += n
			si += used
		}
		if lit > len(src)-si {
			return di, errLZ4Truncated
		}
		if lit > len(dst)-di {
			return di, errLZ4Overflow
		}
		copy(dst[di:], src[si:si+lit])
		si += lit
		di += lit
		if si == len(src) {
			return di, nil // the last sequence carries literals only
		}

		if len(src)-si < 2 {
			return di, errLZ4Truncated
		}
		offset := int(src[si]) | int(src[si+1])<<8
		si += 2
		if offset == 0 || offset > di {
			return di, errLZ4Offset
		}
		ml := int(token & 15)
		if ml == 15 {
			n, used, ok := lz4Length(src[si:])
			if !ok {
				return di, errLZ4Truncated
			}
			ml += n
			si += used
		}
		ml += 4 // minimum match length
		if ml > len(dst)-di {
			return di, errLZ4Overflow
		}
		// The match may overlap the bytes it produces (offset < ml), which
		// repeats a pattern. Copy in steps of at most offset bytes so each
		// step reads only bytes that are already written.
		for ml > 0 {
			n := copy(dst[di:di+min(offset, ml)], dst[di-offset:])
			di += n
			ml -= n
		}
	}
}

// lz4Length decodes a length extension: bytes of 255 continue it, any
// other byte ends it. It returns the sum, the bytes consumed and whether
// the extension was complete. The sum cannot overflow: every 255 costs an
// input byte.
func lz4Length(b []byte) (n, used int, ok bool) {
	for used < len(b) {
		c := b[used]
		used++
		n += int(c)
		if c != 255 {
			return n, used, true
		}
	}
	return n, used, false
}
