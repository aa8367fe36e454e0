package squashfs

import (
	"encoding/binary"
	"fmt"
)

// On-disk constants of SquashFS 4.0. Everything is little-endian.
// Reference: the kernel's fs/squashfs/squashfs_fs.h and squashfs-tools'
// squashfs_fs.h; the format is described at
// https://dr-emann.github.io/squashfs/squashfs.html.
const (
	Magic = 0x73717368 // "hsqs" read as a little-endian uint32

	superblockSize = 96

	metadataSize      = 8192    // uncompressed size of a metadata block
	metadataUncomp    = 1 << 15 // bit in a metadata block's length word: stored uncompressed
	dataUncomp        = 1 << 24 // bit in a data block size word: stored uncompressed
	fragmentNone      = 0xffffffff
	invalidTableStart = 0xffffffffffffffff

	// DefaultBlockSize is the data block size images get unless told
	// otherwise (the same as mksquashfs's default).
	DefaultBlockSize = 128 << 10
)

// Superblock flags.
const (
	flagNoInodeComp = 0x0001 // inodes are stored uncompressed
	flagNoDataComp  = 0x0002
	flagCheck       = 0x0004 // unused
	flagNoFragComp  = 0x0008
	flagNoFragments = 0x0010
	flagAlwaysFrag  = 0x0020
	flagDuplicates  = 0x0040 // data was deduplicated
	flagExportable  = 0x0080 // an NFS export (lookup) table is present
	flagNoXattrComp = 0x0100
	flagNoXattrs    = 0x0200
	flagCompOpt     = 0x0400 // compressor options follow the superblock
	flagNoIDComp    = 0x0800
)

// Compression identifies a compressor, as stored in the superblock.
type Compression uint16

// Compressors. The writer produces None, Gzip and Zstd; the reader reads
// all of these except LZO.
const (
	None Compression = 0 // not a real squashfs id: the writer stores Gzip's id with every "uncompressed" bit set
	Gzip Compression = 1
	LZMA Compression = 2
	LZO  Compression = 3
	XZ   Compression = 4
	LZ4  Compression = 5
	Zstd Compression = 6
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case LZMA:
		return "lzma"
	case LZO:
		return "lzo"
	case XZ:
		return "xz"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint16(c))
}

// Inode types. Basic types are 1-7, their extended forms 8-14.
const (
	inodeDir       = 1
	inodeFile      = 2
	inodeSymlink   = 3
	inodeBlockDev  = 4
	inodeCharDev   = 5
	inodeFifo      = 6
	inodeSocket    = 7
	inodeLDir      = 8
	inodeLFile     = 9
	inodeLSymlink  = 10
	inodeLBlockDev = 11
	inodeLCharDev  = 12
	inodeLFifo     = 13
	inodeLSocket   = 14
)

// superblock is the 96-byte header at offset 0 of every image.
type superblock struct {
	Magic             uint32
	InodeCount        uint32
	ModTime           uint32
	BlockSize         uint32
	FragmentCount     uint32
	Compression       uint16
	BlockLog          uint16
	Flags             uint16
	IDCount           uint16
	VersionMajor      uint16
	VersionMinor      uint16
	RootInode         uint64 // inode reference: block offset << 16 | offset within the block
	BytesUsed         uint64
	IDTableStart      uint64
	XattrIDTableStart uint64
	InodeTableStart   uint64
	DirTableStart     uint64
	FragTableStart    uint64
	ExportTableStart  uint64
}

func (sb *superblock) marshal() []byte {
	b := make([]byte, superblockSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], sb.Magic)
	le.PutUint32(b[4:], sb.InodeCount)
	le.PutUint32(b[8:], sb.ModTime)
	le.PutUint32(b[12:], sb.BlockSize)
	le.PutUint32(b[16:], sb.FragmentCount)
	le.PutUint16(b[20:], sb.Compression)
	le.PutUint16(b[22:], sb.BlockLog)
	le.PutUint16(b[24:], sb.Flags)
	le.PutUint16(b[26:], sb.IDCount)
	le.PutUint16(b[28:], sb.VersionMajor)
	le.PutUint16(b[30:], sb.VersionMinor)
	le.PutUint64(b[32:], sb.RootInode)
	le.PutUint64(b[40:], sb.BytesUsed)
	le.PutUint64(b[48:], sb.IDTableStart)
	le.PutUint64(b[56:], sb.XattrIDTableStart)
	le.PutUint64(b[64:], sb.InodeTableStart)
	le.PutUint64(b[72:], sb.DirTableStart)
	le.PutUint64(b[80:], sb.FragTableStart)
	le.PutUint64(b[88:], sb.ExportTableStart)
	return b
}

func (sb *superblock) unmarshal(b []byte) error {
	if len(b) < superblockSize {
		return fmt.Errorf("superblock: short read (%d bytes)", len(b))
	}
	le := binary.LittleEndian
	*sb = superblock{
		Magic:             le.Uint32(b[0:]),
		InodeCount:        le.Uint32(b[4:]),
		ModTime:           le.Uint32(b[8:]),
		BlockSize:         le.Uint32(b[12:]),
		FragmentCount:     le.Uint32(b[16:]),
		Compression:       le.Uint16(b[20:]),
		BlockLog:          le.Uint16(b[22:]),
		Flags:             le.Uint16(b[24:]),
		IDCount:           le.Uint16(b[26:]),
		VersionMajor:      le.Uint16(b[28:]),
		VersionMinor:      le.Uint16(b[30:]),
		RootInode:         le.Uint64(b[32:]),
		BytesUsed:         le.Uint64(b[40:]),
		IDTableStart:      le.Uint64(b[48:]),
		XattrIDTableStart: le.Uint64(b[56:]),
		InodeTableStart:   le.Uint64(b[64:]),
		DirTableStart:     le.Uint64(b[72:]),
		FragTableStart:    le.Uint64(b[80:]),
		ExportTableStart:  le.Uint64(b[88:]),
	}
	if sb.Magic != Magic {
		return fmt.Errorf("superblock: bad magic %#x, not a squashfs image", sb.Magic)
	}
	if sb.VersionMajor != 4 || sb.VersionMinor != 0 {
		return fmt.Errorf("superblock: unsupported version %d.%d (want 4.0)", sb.VersionMajor, sb.VersionMinor)
	}
	if sb.BlockSize < 4096 || sb.BlockSize > 1<<20 || sb.BlockSize&(sb.BlockSize-1) != 0 || 1<<sb.BlockLog != sb.BlockSize {
		return fmt.Errorf("superblock: bad block size %d (log %d)", sb.BlockSize, sb.BlockLog)
	}
	return nil
}

// xattr name prefixes as stored in an xattr key's type field. Bit 0x100
// in the type means the value is stored out of line (a reference).
const (
	xattrUser     = 0
	xattrTrusted  = 1
	xattrSecurity = 2
	xattrOOL      = 0x100
)

var xattrPrefixes = [...]string{"user.", "trusted.", "security."}

// ParseCompression parses a compressor name as the writer takes it:
// none, gzip or zstd.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "none", "":
		return None, nil
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	}
	return None, fmt.Errorf("unknown compression %q (want none, gzip or zstd)", s)
}
