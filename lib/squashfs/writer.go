package squashfs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// WriterOptions configure WriteDir. The zero value writes an uncompressed
// image with 128 KiB blocks.
type WriterOptions struct {
	// Compression of data and metadata blocks: None (the default) stores
	// every block uncompressed, so that reading never decompresses;
	// Gzip (zlib streams, as squashfs defines "gzip") or Zstd compress.
	// A block that compression does not shrink is stored uncompressed.
	Compression Compression

	// Level is the compressor level, e.g. 3 for zstd or 6 for gzip. 0
	// picks mksquashfs's defaults: 15 for zstd and 9 for gzip. zstd levels
	// map onto klauspost/compress's four: 1-2 fastest, 3-5 default, 6-9
	// better, 10-22 best compression.
	Level int

	// BlockSize is the data block size, a power of two from 4 KiB to 1 MiB.
	// 0 means DefaultBlockSize (128 KiB).
	BlockSize uint32

	// SourceDateEpoch, if non-zero, is the image's time stamp and clamps
	// every mtime above it (https://reproducible-builds.org/specs/source-date-epoch/).
	// If zero, the image's time stamp is the newest mtime in the tree.
	SourceDateEpoch time.Time

	// Jobs is the number of parallel compression workers; 0 means
	// runtime.GOMAXPROCS(0). It changes speed, never the output.
	Jobs int
}

// WriteDir writes an image of the tree at dir into out, replacing the
// file's previous contents (out may also be a block device). The image
// depends only on the tree: the same tree always gives byte-identical
// images.
//
// Entries are stored sorted by name. File contents, mode bits (setuid,
// setgid and sticky included), owners, mtimes, symlink targets, device
// numbers and xattrs in the user., trusted. and security. namespaces are
// kept; other xattrs (e.g. system.posix_acl_access) cannot be represented
// in squashfs and are dropped, as mksquashfs does. Hard links within the
// tree stay hard links. If out lies inside dir, it is left out of the image.
func WriteDir(out *os.File, dir string, opts WriterOptions) error {
	w, err := newWriter(out, opts)
	if err != nil {
		return err
	}
	defer w.close()
	if w.truncate {
		if err := out.Truncate(0); err != nil {
			return fmt.Errorf("truncate %s: %w", out.Name(), err)
		}
	}
	// The walk runs ahead of the data writer: files are stored in the
	// order the walk finds them, which depends on the tree only.
	files := make(chan *srcNode, 4096)
	walked := make(chan error, 1)
	go func() {
		walked <- w.walk(dir, files)
		close(files)
	}()
	err = w.writeData(files)
	if err != nil {
		w.stop.Store(true)
		for range files {
		}
	}
	if werr := <-walked; werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	return w.finish()
}

// Writer decisions:
//
//   - Uncompressed images have no fragments: a file's tail is a short
//     block. The image is no larger (nothing is padded), and reading a
//     small file touches only its own bytes instead of a shared fragment
//     block in the kernel's small fragment cache.
//   - Compressed images pack tails into fragment blocks, as mksquashfs
//     does. Blocks are compressed in parallel and written in the order
//     they were read, so Jobs never changes the image.
//   - Inodes are numbered and written in post-order: a directory's
//     children come before its listing and its inode. Every reference
//     then points backwards, and the tables are written in one pass
//     although compressed block sizes are unknown in advance.
//   - A directory listing gets a new header after 256 entries, where the
//     inode metadata block changes, where an inode number is beyond int16
//     of the header's, and where the listing enters a new metadata block.
//     Headers of the last kind get a directory index entry.
//   - Holes (SEEK_DATA/SEEK_HOLE) are not read and become sparse blocks,
//     like all-zero blocks. Files with sparse blocks get extended inodes,
//     whose sparse count keeps st_blocks right.
//   - Xattrs are sorted by name; each distinct set is stored once, values
//     inline.
//   - Not done: deduplication of identical files, the NFS export table,
//     compressor options. copy_file_range(2) for uncompressed data was
//     measured slower than read and write on ext4 and tmpfs.

// writer holds the state of one WriteDir call. walk reads the tree into
// memory, and writeData stores file contents right after the superblock as
// the walk finds them. Then finish writes the metadata tables behind the
// data, and the superblock.
type writer struct {
	out       *os.File
	blockSize uint32
	blockLog  uint16
	jobs      int
	codec     *blockCodec      // nil: store every block uncompressed
	metaComp  *blockCompressor // compresses metadata; nil if codec is
	epoch     uint32           // clamp for mtimes if hasEpoch
	hasEpoch  bool

	skip     fileKey // the output file, if it lies inside the tree
	truncate bool    // out is a regular file (not e.g. a block device)

	stop atomic.Bool // writeData failed: the walk may stop

	// Set by walk.
	root   *srcNode
	newest uint32 // newest mtime in the tree

	// Set by writeData.
	dataEnd uint64       // image offset right behind the data blocks
	frags   []fragRecord // fragment table

	ids    idList
	xattrs xattrSets
}

// fileKey identifies a source file, to find hard links.
type fileKey struct{ dev, ino uint64 }

func newWriter(out *os.File, opts WriterOptions) (*writer, error) {
	w := &writer{
		out:       out,
		blockSize: opts.BlockSize,
		jobs:      opts.Jobs,
	}
	if w.blockSize == 0 {
		w.blockSize = DefaultBlockSize
	}
	if w.blockSize < 4096 || w.blockSize > 1<<20 || w.blockSize&(w.blockSize-1) != 0 {
		return nil, fmt.Errorf("squashfs: block size %d is not a power of two from 4096 to 1048576", w.blockSize)
	}
	w.blockLog = uint16(bits.TrailingZeros32(w.blockSize))
	if w.jobs <= 0 {
		w.jobs = runtime.GOMAXPROCS(0)
	}
	if !opts.SourceDateEpoch.IsZero() {
		w.hasEpoch = true
		w.epoch = clampUnixTime(opts.SourceDateEpoch.Unix())
	}
	switch opts.Compression {
	case None:
	case Gzip, Zstd:
		c, err := newCodec(opts.Compression, opts.Level, w.blockSize, w.jobs)
		if err != nil {
			return nil, err
		}
		w.codec = c
		w.metaComp = c.newCompressor()
	default:
		return nil, fmt.Errorf("squashfs: writing %v images is not supported (use none, gzip or zstd)", opts.Compression)
	}
	fi, err := out.Stat()
	if err != nil {
		return nil, fmt.Errorf("write image: %w", err)
	}
	w.truncate = fi.Mode().IsRegular()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		w.skip = fileKey{st.Dev, st.Ino}
	}
	w.ids.init()
	w.xattrs.init(w.metaComp)
	return w, nil
}

func (w *writer) close() {
	if w.codec != nil {
		w.codec.close()
	}
}

// clampUnixTime converts a Unix time to squashfs's unsigned 32-bit seconds.
func clampUnixTime(sec int64) uint32 {
	switch {
	case sec < 0:
		return 0
	case sec > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(sec)
}

// finish writes the metadata behind the data, in the order the kernel
// insists on (fs/squashfs/super.c checks each table against the next):
// inode table, directory table, fragment table, id table, xattr table.
// Then it pads the image to 4 KiB and writes the superblock.
func (w *writer) finish() error {
	inodes, dirs, err := w.writeTree()
	if err != nil {
		return err
	}
	sb := superblock{
		Magic:            Magic,
		InodeCount:       w.root.num,
		ModTime:          w.newest,
		BlockSize:        w.blockSize,
		FragmentCount:    uint32(len(w.frags)),
		Compression:      uint16(Gzip),
		BlockLog:         w.blockLog,
		VersionMajor:     4,
		VersionMinor:     0,
		RootInode:        w.root.ref,
		ExportTableStart: invalidTableStart,
	}
	if w.hasEpoch {
		sb.ModTime = w.epoch
	}
	if w.codec != nil {
		sb.Compression = uint16(w.codec.kind)
	} else {
		// What mksquashfs -noI -noD -noF -noX sets, plus the
		// uncompressed id table flag: the gzip id, nothing compressed.
		sb.Flags = flagNoInodeComp | flagNoDataComp | flagNoFragComp | flagNoFragments | flagNoXattrComp | flagNoIDComp
	}

	t := tableWriter{pos: w.dataEnd}
	sb.InodeTableStart = t.pos
	t.add(inodes.out)
	sb.DirTableStart = t.pos
	t.add(dirs.out)

	sb.FragTableStart = t.pos
	if len(w.frags) > 0 {
		m := newMetaWriter(w.metaComp)
		var e [16]byte
		for _, f := range w.frags {
			binary.LittleEndian.PutUint64(e[0:], f.start)
			binary.LittleEndian.PutUint32(e[8:], f.size)
			binary.LittleEndian.PutUint32(e[12:], 0)
			m.write(e[:])
		}
		sb.FragTableStart = t.lookupTable(m)
	}

	ids := newMetaWriter(w.metaComp)
	var e [4]byte
	for _, id := range w.ids.list {
		binary.LittleEndian.PutUint32(e[:], id)
		ids.write(e[:])
	}
	sb.IDCount = uint16(len(w.ids.list))
	sb.IDTableStart = t.lookupTable(ids)

	sb.XattrIDTableStart = invalidTableStart
	if len(w.xattrs.ids) == 0 {
		sb.Flags |= flagNoXattrs
	} else {
		sb.XattrIDTableStart = w.xattrs.write(&t, w.metaComp)
	}
	sb.BytesUsed = t.pos

	// The kernel reads the image in 1 KiB or 4 KiB device blocks.
	if pad := -t.pos & 4095; pad > 0 {
		t.add(make([]byte, pad))
	}
	if err := t.flush(w.out); err != nil {
		return err
	}
	if _, err := w.out.WriteAt(sb.marshal(), 0); err != nil {
		return fmt.Errorf("write superblock: %w", err)
	}
	return nil
}

// tableWriter collects the metadata tables behind the data, then writes
// them with one call.
type tableWriter struct {
	start uint64 // image offset of buf[0]
	pos   uint64 // image offset of the next byte
	buf   []byte
}

func (t *tableWriter) add(b []byte) {
	if t.buf == nil {
		t.start = t.pos
	}
	t.buf = append(t.buf, b...)
	t.pos += uint64(len(b))
}

// lookupTable writes the metadata blocks of m, then the list of their
// image offsets, and returns the list's offset (what the superblock
// points at).
func (t *tableWriter) lookupTable(m *metaWriter) uint64 {
	m.flush()
	base := t.pos
	t.add(m.out)
	at := t.pos
	var e [8]byte
	for _, s := range m.starts {
		binary.LittleEndian.PutUint64(e[:], base+s)
		t.add(e[:])
	}
	return at
}

func (t *tableWriter) flush(out *os.File) error {
	if _, err := out.WriteAt(t.buf, int64(t.start)); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}
