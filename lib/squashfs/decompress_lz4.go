package squashfs

import (
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// lz4Decompressor inflates LZ4 blocks (the raw block format, not frames),
// which is what squashfs-tools writes (LZ4_LEGACY), with pierrec/lz4's
// block decoder: it checks every length and offset against src and dst
// (a corrupt block is an error, never a read or write out of bounds)
// and has an assembly fast path on amd64 and arm64.
type lz4Decompressor struct{}

func (lz4Decompressor) decompress(dst, src []byte) (int, error) {
	n, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return 0, fmt.Errorf("lz4: %w", err)
	}
	return n, nil
}
