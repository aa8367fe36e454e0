package squashfs

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// metaWriter cuts a stream of records (inodes, directory listings, table
// entries) into metadata blocks of 8 KiB, each stored compressed when that
// is smaller, behind a 16-bit length word. Records may straddle blocks.
type metaWriter struct {
	c      *blockCompressor // nil: store uncompressed
	buf    []byte           // the current block, not yet stored
	out    []byte           // the stored blocks
	starts []uint64         // offset in out of each stored block
	tmp    []byte
}

func newMetaWriter(c *blockCompressor) *metaWriter {
	return &metaWriter{c: c, buf: make([]byte, 0, metadataSize)}
}

// ref returns the reference of the next byte written: the offset of its
// block within the table << 16 | its offset in the uncompressed block.
func (m *metaWriter) ref() uint64 {
	return uint64(len(m.out))<<16 | uint64(len(m.buf))
}

// pos returns the position of the next byte in the uncompressed stream.
func (m *metaWriter) pos() uint64 {
	return uint64(len(m.starts))*metadataSize + uint64(len(m.buf))
}

// blockStart returns the table offset of the block with index i (of the
// uncompressed stream's 8 KiB blocks), which must be stored or current.
func (m *metaWriter) blockStart(i uint64) uint64 {
	if i < uint64(len(m.starts)) {
		return m.starts[i]
	}
	return uint64(len(m.out))
}

func (m *metaWriter) write(p []byte) {
	for len(p) > 0 {
		n := copy(m.buf[len(m.buf):metadataSize], p)
		m.buf = m.buf[:len(m.buf)+n]
		p = p[n:]
		if len(m.buf) == metadataSize {
			m.store()
		}
	}
}

// flush stores the last, partial block.
func (m *metaWriter) flush() {
	if len(m.buf) > 0 {
		m.store()
	}
}

func (m *metaWriter) store() {
	m.starts = append(m.starts, uint64(len(m.out)))
	data, word := m.buf, uint16(len(m.buf))|metadataUncomp
	if m.c != nil {
		if z, ok := m.c.compress(m.tmp[:0], m.buf); ok {
			data, word = z, uint16(len(z))
			m.tmp = z
		}
	}
	m.out = binary.LittleEndian.AppendUint16(m.out, word)
	m.out = append(m.out, data...)
	m.buf = m.buf[:0]
}

// idList is the image's table of uids and gids; inodes store an index.
type idList struct {
	index map[uint32]uint16
	list  []uint32
}

func (l *idList) init() { l.index = make(map[uint32]uint16) }

func (l *idList) get(id uint32) (uint16, error) {
	if i, ok := l.index[id]; ok {
		return i, nil
	}
	if len(l.list) == 1<<16-1 {
		return 0, fmt.Errorf("write image: more than %d distinct uids and gids", len(l.list))
	}
	i := uint16(len(l.list))
	l.list = append(l.list, id)
	l.index[id] = i
	return i, nil
}

// treeWriter writes the inode and directory tables.
type treeWriter struct {
	w      *writer
	inodes *metaWriter
	dirs   *metaWriter
	buf    []byte     // the inode being encoded
	list   []byte     // the directory listing being encoded
	index  []dirIndex // its index
}

// dirIndex is an entry of an extended directory inode's index: it tells
// the kernel where a header in a later metadata block starts and the first
// name after it, so a lookup can skip the blocks before.
type dirIndex struct {
	off   uint32 // of the header from the start of the listing
	block uint64 // uncompressed stream block holding the header
	name  string
}

const (
	dirHeaderSize   = 12
	dirEntrySize    = 8
	dirHeaderMaxRun = 256 // entries after one header, as the kernel checks
)

// writeTree numbers the inodes and writes the inode and directory tables.
// Inode numbers follow a post-order walk (children before their
// directory), the order inodes are written in, so a directory's listing
// and inode can refer to everything below it. The root comes last and
// gets the highest number; its parent is inode count + 1, as with
// mksquashfs.
func (w *writer) writeTree() (inodes, dirs *metaWriter, err error) {
	var n uint32
	var number func(d *srcNode) error
	number = func(d *srcNode) error {
		for _, e := range d.children {
			c := e.node
			if c.isDir() {
				if err := number(c); err != nil {
					return err
				}
			} else if c.num == 0 {
				n++
				c.num = n
			}
		}
		if n == 1<<32-2 {
			return fmt.Errorf("write image: too many inodes")
		}
		n++
		d.num = n
		return nil
	}
	if err := number(w.root); err != nil {
		return nil, nil, err
	}
	t := &treeWriter{
		w:      w,
		inodes: newMetaWriter(w.metaComp),
		dirs:   newMetaWriter(w.metaComp),
	}
	if err := t.dir(w.root, w.root.num+1); err != nil {
		return nil, nil, err
	}
	t.inodes.flush()
	t.dirs.flush()
	return t.inodes, t.dirs, nil
}

func (t *treeWriter) dir(d *srcNode, parent uint32) error {
	for _, e := range d.children {
		c := e.node
		if c.isDir() {
			if err := t.dir(c, d.num); err != nil {
				return err
			}
		} else if !c.written {
			if err := t.inode(c); err != nil {
				return err
			}
		}
	}
	return t.dirInode(d, parent)
}

// header starts encoding an inode of type typ.
func (t *treeWriter) header(n *srcNode, typ uint16) error {
	uid, err := t.w.ids.get(n.uid)
	if err != nil {
		return err
	}
	gid, err := t.w.ids.get(n.gid)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	b := t.buf[:0]
	b = le.AppendUint16(b, typ)
	b = le.AppendUint16(b, uint16(n.mode&0o7777))
	b = le.AppendUint16(b, uid)
	b = le.AppendUint16(b, gid)
	b = le.AppendUint32(b, n.mtime)
	b = le.AppendUint32(b, n.num)
	t.buf = b
	return nil
}

func (t *treeWriter) emit(n *srcNode) {
	n.ref = t.inodes.ref()
	n.written = true
	t.inodes.write(t.buf)
}

// inode writes the inode of anything but a directory.
func (t *treeWriter) inode(n *srcNode) error {
	le := binary.LittleEndian
	ext := n.xattr != noXattr
	typ := basicType(n.mode)
	switch typ {
	case inodeFile:
		ext = ext || n.nlink > 1 || n.size > 1<<32-1 || n.start > 1<<32-1 || n.sparse > 0
		if ext {
			typ = inodeLFile
		}
		if err := t.header(n, typ); err != nil {
			return err
		}
		if ext {
			t.buf = le.AppendUint64(t.buf, n.start)
			t.buf = le.AppendUint64(t.buf, n.size)
			t.buf = le.AppendUint64(t.buf, n.sparse)
			t.buf = le.AppendUint32(t.buf, n.nlink)
			t.buf = le.AppendUint32(t.buf, n.frag)
			t.buf = le.AppendUint32(t.buf, n.fragOff)
			t.buf = le.AppendUint32(t.buf, n.xattr)
		} else {
			t.buf = le.AppendUint32(t.buf, uint32(n.start))
			t.buf = le.AppendUint32(t.buf, n.frag)
			t.buf = le.AppendUint32(t.buf, n.fragOff)
			t.buf = le.AppendUint32(t.buf, uint32(n.size))
		}
		for _, s := range n.blocks {
			t.buf = le.AppendUint32(t.buf, s)
		}
	case inodeSymlink:
		if ext {
			typ = inodeLSymlink
		}
		if err := t.header(n, typ); err != nil {
			return err
		}
		t.buf = le.AppendUint32(t.buf, n.nlink)
		t.buf = le.AppendUint32(t.buf, uint32(len(n.target)))
		t.buf = append(t.buf, n.target...)
		if ext {
			t.buf = le.AppendUint32(t.buf, n.xattr)
		}
	case inodeBlockDev, inodeCharDev:
		if ext {
			typ += inodeLDir - inodeDir
		}
		if err := t.header(n, typ); err != nil {
			return err
		}
		t.buf = le.AppendUint32(t.buf, n.nlink)
		t.buf = le.AppendUint32(t.buf, encodeDev(n.rdev))
		if ext {
			t.buf = le.AppendUint32(t.buf, n.xattr)
		}
	case inodeFifo, inodeSocket:
		if ext {
			typ += inodeLDir - inodeDir
		}
		if err := t.header(n, typ); err != nil {
			return err
		}
		t.buf = le.AppendUint32(t.buf, n.nlink)
		if ext {
			t.buf = le.AppendUint32(t.buf, n.xattr)
		}
	}
	t.emit(n)
	return nil
}

// encodeDev encodes a device number as the kernel's new_encode_dev does,
// the form squashfs stores: minor's low byte, 12 bits of major, the rest
// of minor.
func encodeDev(rdev uint64) uint32 {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	return minor&0xff | major<<8&0xfff00 | (minor&^0xff)<<12
}

// basicType returns the basic inode type for a file mode, which is also
// the type stored in directory entries.
func basicType(mode uint32) uint16 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return inodeDir
	case unix.S_IFREG:
		return inodeFile
	case unix.S_IFLNK:
		return inodeSymlink
	case unix.S_IFBLK:
		return inodeBlockDev
	case unix.S_IFCHR:
		return inodeCharDev
	case unix.S_IFIFO:
		return inodeFifo
	}
	return inodeSocket
}

// dirInode writes the listing of d to the directory table, then d's inode.
//
// The listing is a run of headers, each followed by up to 256 entries
// whose inodes lie in the same inode metadata block and whose inode
// numbers are within int16 of the header's. A new header also starts
// where the listing crosses into a new directory metadata block, and each
// such header gets an index entry, which lets the kernel's lookup and
// readdir seek instead of scanning the whole listing.
func (t *treeWriter) dirInode(d *srcNode, parent uint32) error {
	le := binary.LittleEndian
	p0 := t.dirs.pos()
	startBlock := t.dirs.blockStart(p0 / metadataSize)
	startOff := uint16(p0 % metadataSize)
	b := t.list[:0]
	idx := t.index[:0]
	lastBlock := p0 / metadataSize
	ch := d.children
	for i := 0; i < len(ch); {
		h := len(b)
		first := ch[i].node
		block, base := first.ref>>16, first.num
		b = append(b, make([]byte, dirHeaderSize)...)
		entryBlock := (p0 + uint64(len(b))) / metadataSize
		count := 0
		for ; i < len(ch) && count < dirHeaderMaxRun; i++ {
			c := ch[i].node
			delta := int64(c.num) - int64(base)
			if c.ref>>16 != block || delta < -1<<15 || delta >= 1<<15 {
				break
			}
			if count > 0 && (p0+uint64(len(b)))/metadataSize != entryBlock {
				break
			}
			name := ch[i].name
			b = le.AppendUint16(b, uint16(c.ref))
			b = le.AppendUint16(b, uint16(int16(delta)))
			b = le.AppendUint16(b, basicType(c.mode))
			b = le.AppendUint16(b, uint16(len(name)-1))
			b = append(b, name...)
			count++
		}
		le.PutUint32(b[h:], uint32(count-1))
		le.PutUint32(b[h+4:], uint32(block))
		le.PutUint32(b[h+8:], base)
		if hb := (p0 + uint64(h)) / metadataSize; hb != lastBlock && len(idx) < 1<<16-1 {
			idx = append(idx, dirIndex{off: uint32(h), block: hb, name: ch[i-count].name})
			lastBlock = hb
		}
	}
	t.dirs.write(b)
	t.list, t.index = b, idx
	size := uint64(len(b)) + 3 // the kernel counts "." and ".." as 3 bytes

	ext := d.xattr != noXattr || len(idx) > 0 || size > 1<<16-1
	typ := uint16(inodeDir)
	if ext {
		typ = inodeLDir
	}
	if err := t.header(d, typ); err != nil {
		return err
	}
	if size > 1<<32-1 {
		return fmt.Errorf("write image: directory listing of %d bytes is too large", size)
	}
	if !ext {
		t.buf = le.AppendUint32(t.buf, uint32(startBlock))
		t.buf = le.AppendUint32(t.buf, d.nlink)
		t.buf = le.AppendUint16(t.buf, uint16(size))
		t.buf = le.AppendUint16(t.buf, startOff)
		t.buf = le.AppendUint32(t.buf, parent)
	} else {
		t.buf = le.AppendUint32(t.buf, d.nlink)
		t.buf = le.AppendUint32(t.buf, uint32(size))
		t.buf = le.AppendUint32(t.buf, uint32(startBlock))
		t.buf = le.AppendUint32(t.buf, parent)
		t.buf = le.AppendUint16(t.buf, uint16(len(idx)))
		t.buf = le.AppendUint16(t.buf, startOff)
		t.buf = le.AppendUint32(t.buf, d.xattr)
		for _, x := range idx {
			t.buf = le.AppendUint32(t.buf, x.off)
			t.buf = le.AppendUint32(t.buf, uint32(t.dirs.blockStart(x.block)))
			t.buf = le.AppendUint32(t.buf, uint32(len(x.name)-1))
			t.buf = append(t.buf, x.name...)
		}
	}
	t.emit(d)
	return nil
}
