package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// Inode is a reference to an inode: the offset of the metadata block
// holding it, relative to the inode table, shifted left by 16, ORed with
// the inode's offset inside the inflated block. It is what directory
// entries store and what a FUSE server can hand out as a node id (it fits
// in 48 bits for any image under 4 GiB of metadata).
type Inode uint64

func (ino Inode) String() string { return fmt.Sprintf("%#x", uint64(ino)) }

// Reader reads a SquashFS 4.0 image. It is safe for concurrent use by
// many goroutines: all state after NewReader is read-only or guarded by
// the caches' locks.
//
// It reads what mksquashfs 4.x writes with gzip, xz, lz4, zstd or no
// compression: fragments, sparse files, hard links, every inode type
// (1-14), xattrs with out-of-line values, directory indexes (skipped: a
// listing is parsed whole and cached), compressor options and export
// tables (ignored). LZO and legacy LZMA images, and xz blocks using BCJ
// filters (mksquashfs -Xbcj), are reported as unsupported.
//
// Decisions:
//   - Every length and offset read from the image is checked against
//     the image size and its table bounds before use, and memory grows
//     only with data actually read, so a corrupt image yields an error,
//     never a panic, a hang or a huge allocation. Messages say what and
//     where: "squashfs: inode 0x1a2b: bad type 77".
//   - Caches (metadata blocks, fragment blocks, data blocks, parsed block
//     lists, parsed directory listings) are small LRUs bounded by bytes;
//     concurrent misses of one key load it once. A metadata block that
//     fails to inflate is remembered as failed.
//   - Uncompressed data is read straight into the caller's buffer;
//     Extract copies runs of uncompressed blocks with copy_file_range.
//   - Symlinks are never followed by Lookup/LookupPath; FS follows them
//     only within the image.
type Reader struct {
	r      io.ReaderAt
	file   *os.File  // r, when it is a file: lets Extract copy in the kernel
	closer io.Closer // set by Open
	size   int64     // bytes of the image we may read: the superblock's bytes_used
	sb     superblock
	dec    decompressor

	inodeEnd int64 // inode table metadata lies in [InodeTableStart, inodeEnd)
	dirEnd   int64 // directory table metadata lies in [DirTableStart, dirEnd)

	ids       []uint32
	fragIndex []int64 // image offsets of the fragment table's metadata blocks

	xattrStart int64   // image offset of the xattr key/value metadata blocks
	xattrIndex []int64 // image offsets of the xattr id table's metadata blocks
	xattrCount uint32

	meta   *lruCache[int64, *metaBlock]  // inflated metadata blocks by image offset
	frags  *lruCache[int64, []byte]      // inflated fragment blocks by image offset
	blocks *lruCache[int64, []byte]      // inflated data blocks by image offset (small reads)
	files  *lruCache[Inode, *fileInfo]   // parsed block lists
	dirs   *lruCache[Inode, *dirListing] // parsed directory listings
	bufs   sync.Pool                     // of *[]byte, block-sized scratch
}

// Stat describes an inode, in the terms of stat(2).
type Stat struct {
	Ino   uint32      // inode number, unique in the image; e.g. 42
	Mode  fs.FileMode // type and permission bits; e.g. fs.ModeDir|fs.ModeSticky|0o777
	Uid   uint32      // e.g. 0
	Gid   uint32      // e.g. 0
	Size  int64       // file: bytes of data; symlink: target length; directory: listing size as the kernel reports it
	Mtime time.Time   // whole seconds
	Nlink uint32      // e.g. 2 for a hard-linked file
	Rdev  uint64      // device nodes: major and minor number as unix.Mkdev packs them; otherwise 0
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name  string      // e.g. "bash"
	Inode Inode       // the entry's inode reference
	Ino   uint32      // the entry's inode number
	Type  fs.FileMode // type bits only: 0 for a regular file, fs.ModeDir, fs.ModeSymlink, …
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string // full name with its namespace; e.g. "security.capability"
	Value []byte
}

// Cache bounds, per Reader: a FUSE server holds one Reader per package,
// hundreds of them. Metadata blocks are 8 KiB each; data and fragment
// blocks are one block size (128 KiB by default). Fragments are read in
// roughly directory order, so a few blocks serve many small files.
const (
	metaCacheBytes  = 2 << 20
	fragCacheBlocks = 8
	dataCacheBlocks = 4
	fileCacheBytes  = 2 << 20
	dirCacheBytes   = 4 << 20
)

// Open opens the image at path. Close the Reader to close the file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// Close releases the decompressor and closes the file opened by Open (a
// Reader made with NewReader leaves its io.ReaderAt open). The Reader
// must not be used afterwards.
func (r *Reader) Close() error {
	if z, ok := r.dec.(zstdDecompressor); ok {
		z.d.Close()
	}
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// NewReader reads the superblock and lookup tables of the image in ra. If
// ra has a Size method or is an *os.File, the superblock is checked
// against the real size, so a truncated image fails here rather than on
// first use.
func NewReader(ra io.ReaderAt) (*Reader, error) {
	var buf [superblockSize]byte
	if n, err := ra.ReadAt(buf[:], 0); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("squashfs: read superblock: %w", err)
	}
	r := &Reader{r: ra}
	if f, ok := ra.(*os.File); ok {
		r.file = f
	}
	if err := r.sb.unmarshal(buf[:]); err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	sb := &r.sb
	if sb.BytesUsed < superblockSize || sb.BytesUsed > 1<<62 {
		return nil, fmt.Errorf("squashfs: superblock: bad bytes_used %d", sb.BytesUsed)
	}
	r.size = int64(sb.BytesUsed)
	if size, ok := readerSize(ra); ok && size < r.size {
		return nil, fmt.Errorf("squashfs: image truncated: %d bytes, the superblock says %d", size, r.size)
	}
	if err := r.checkLayout(); err != nil {
		return nil, fmt.Errorf("squashfs: superblock: %w", err)
	}

	bs := int(sb.BlockSize)
	r.meta = newLRUCache[int64, *metaBlock](metaCacheBytes)
	r.frags = newLRUCache[int64, []byte](fragCacheBlocks * bs)
	r.blocks = newLRUCache[int64, []byte](dataCacheBlocks * bs)
	r.files = newLRUCache[Inode, *fileInfo](fileCacheBytes)
	r.dirs = newLRUCache[Inode, *dirListing](dirCacheBytes)
	r.bufs.New = func() any { b := make([]byte, bs, bs+decompressSlack); return &b }

	var opts []byte
	if sb.Flags&flagCompOpt != 0 {
		// The options are a metadata block right after the superblock,
		// stored uncompressed. Read them raw: the decompressor they
		// configure doesn't exist yet.
		var hdr [2]byte
		if err := r.readFull(hdr[:], superblockSize); err != nil {
			return nil, fmt.Errorf("squashfs: compressor options: %w", err)
		}
		h := binary.LittleEndian.Uint16(hdr[:])
		n := int(h &^ metadataUncomp)
		if h&metadataUncomp == 0 || n == 0 || n > 64 || superblockSize+2+int64(n) > int64(sb.InodeTableStart) {
			return nil, fmt.Errorf("squashfs: compressor options: bad header %#x", h)
		}
		opts = make([]byte, n)
		if err := r.readFull(opts, superblockSize+2); err != nil {
			return nil, fmt.Errorf("squashfs: compressor options: %w", err)
		}
	}
	dec, err := newDecompressor(Compression(sb.Compression), opts, bs)
	if err != nil {
		return nil, err
	}
	r.dec = dec

	if err := r.readIDs(); err != nil {
		return nil, fmt.Errorf("squashfs: id table: %w", err)
	}
	if sb.FragmentCount > 0 && sb.FragTableStart != invalidTableStart {
		n := (int64(sb.FragmentCount) + 511) / 512
		if r.fragIndex, err = r.readTableIndex(int64(sb.FragTableStart), int(n)); err != nil {
			return nil, fmt.Errorf("squashfs: fragment table: %w", err)
		}
	}
	if sb.XattrIDTableStart != invalidTableStart {
		if err := r.readXattrIndex(); err != nil {
			return nil, fmt.Errorf("squashfs: xattr id table: %w", err)
		}
	}

	st, err := r.Stat(r.Root())
	if err != nil {
		return nil, fmt.Errorf("squashfs: root inode: %w", err)
	}
	if !st.Mode.IsDir() {
		return nil, fmt.Errorf("squashfs: root inode %v is not a directory (%v)", r.Root(), st.Mode)
	}
	return r, nil
}

// readerSize returns the size of ra when it can tell.
func readerSize(ra io.ReaderAt) (int64, bool) {
	switch v := ra.(type) {
	case interface{ Size() int64 }:
		return v.Size(), true
	case *os.File:
		fi, err := v.Stat()
		if err == nil && fi.Mode().IsRegular() {
			return fi.Size(), true
		}
		// A block device: only seeking tells its size. Reads use
		// ReadAt, so moving the offset is harmless.
		if n, err := v.Seek(0, io.SeekEnd); err == nil {
			return n, true
		}
	}
	return 0, false
}

// checkLayout validates the table offsets. The kernel expects inode table
// < directory table < the lookup tables, which every writer follows.
func (r *Reader) checkLayout() error {
	sb := &r.sb
	size := uint64(r.size)
	if sb.InodeTableStart < superblockSize || sb.InodeTableStart >= sb.DirTableStart || sb.DirTableStart > size {
		return fmt.Errorf("bad inode table %#x or directory table %#x (image size %#x)", sb.InodeTableStart, sb.DirTableStart, size)
	}
	r.inodeEnd = int64(sb.DirTableStart)
	r.dirEnd = r.size
	for _, t := range []struct {
		name  string
		start uint64
	}{
		{"id", sb.IDTableStart},
		{"fragment", sb.FragTableStart},
		{"export", sb.ExportTableStart},
		{"xattr id", sb.XattrIDTableStart},
	} {
		if t.start == invalidTableStart {
			continue
		}
		if t.name == "fragment" && sb.FragmentCount == 0 {
			continue
		}
		if t.start < sb.DirTableStart || t.start >= size {
			return fmt.Errorf("bad %s table offset %#x (directory table %#x, image size %#x)", t.name, t.start, sb.DirTableStart, size)
		}
		r.dirEnd = min(r.dirEnd, int64(t.start))
	}
	if sb.IDTableStart == invalidTableStart || sb.IDCount == 0 {
		return errors.New("no id table")
	}
	return nil
}

func (r *Reader) readIDs() error {
	n := (int(r.sb.IDCount) + 2047) / 2048
	end := int64(r.sb.IDTableStart)
	index, err := r.readTableIndex(end, n)
	if err != nil {
		return err
	}
	r.ids = make([]uint32, r.sb.IDCount)
	var scratch [4]byte
	for i := range r.ids {
		b, err := r.tableEntry(index, end, uint64(i), 4, scratch[:])
		if err != nil {
			return err
		}
		r.ids[i] = binary.LittleEndian.Uint32(b)
	}
	return nil
}

// Root returns the root directory's inode.
func (r *Reader) Root() Inode { return Inode(r.sb.RootInode) }

// Stat returns the attributes of ino.
func (r *Reader) Stat(ino Inode) (Stat, error) {
	in, err := r.inode(ino)
	if err != nil {
		return Stat{}, err
	}
	return r.stat(in)
}

func (r *Reader) stat(in *inodeData) (Stat, error) {
	if int(in.uidIdx) >= len(r.ids) || int(in.gidIdx) >= len(r.ids) {
		return Stat{}, fmt.Errorf("squashfs: inode %v: uid/gid index %d/%d beyond the %d ids", in.ref, in.uidIdx, in.gidIdx, len(r.ids))
	}
	st := Stat{
		Ino:   in.ino,
		Mode:  in.mode(),
		Uid:   r.ids[in.uidIdx],
		Gid:   r.ids[in.gidIdx],
		Size:  int64(in.size),
		Mtime: time.Unix(int64(in.mtime), 0),
		Nlink: in.nlink,
	}
	if in.isDevice() {
		st.Rdev = in.rdev()
	}
	return st, nil
}

// Readlink returns the target of the symlink ino.
func (r *Reader) Readlink(ino Inode) (string, error) {
	in, err := r.inode(ino)
	if err != nil {
		return "", err
	}
	if in.typ != inodeSymlink && in.typ != inodeLSymlink {
		return "", fmt.Errorf("squashfs: readlink inode %v: %w", ino, syscall.EINVAL)
	}
	c := r.cursor(in.tail, r.inodeEnd)
	b, err := c.read(int(in.size), nil)
	if err != nil {
		return "", fmt.Errorf("squashfs: readlink inode %v: %w", ino, err)
	}
	return string(b), nil
}
