package squashfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
)

// inodeData is a parsed inode: the common header and the fields of every
// type, basic and extended alike.
type inodeData struct {
	ref    Inode
	typ    uint16 // inodeDir … inodeLSocket
	perm   uint16 // permission bits including setuid, setgid and sticky
	uidIdx uint16
	gidIdx uint16
	mtime  uint32
	ino    uint32
	nlink  uint32
	size   uint64 // file size, symlink target length or directory listing size (+3)
	xattr  uint32 // index into the xattr id table, or inodeNoXattr
	dev    uint32 // device nodes: the squashfs encoding of the device number

	// Directories.
	dirBlock   uint32 // listing start, relative to the directory table
	dirOffset  uint16 // listing offset within that block
	parent     uint32 // parent's inode number
	indexCount uint16 // extended directories: entries in the directory index

	// Regular files.
	blocksStart uint64 // image offset of the first data block
	frag        uint32 // fragment index, or fragmentNone
	fragOffset  uint32 // offset of the tail in the fragment block
	sparse      uint64 // extended files: bytes saved by sparse blocks

	// tail is where the variable part begins: the block list, the
	// directory index or the symlink target.
	tail metaPos
}

const (
	inodeNoXattr = 0xffffffff

	// maxSymlink bounds a symlink target. Linux allows 4095 bytes; the
	// slack is for other systems' images.
	maxSymlink = 64 << 10
)

// inode reads and parses the inode ino refers to.
func (r *Reader) inode(ino Inode) (*inodeData, error) {
	in, err := r.parseInode(ino)
	if err != nil {
		return nil, fmt.Errorf("squashfs: inode %v: %w", ino, err)
	}
	return in, nil
}

func (r *Reader) parseInode(ino Inode) (*inodeData, error) {
	block, off := uint64(ino)>>16, int(ino&0xffff)
	if block >= uint64(r.inodeEnd)-r.sb.InodeTableStart || off >= metadataSize {
		return nil, fmt.Errorf("reference outside the inode table")
	}
	c := r.cursor(metaPos{block: int64(r.sb.InodeTableStart + block), off: off}, r.inodeEnd)
	var scratch [64]byte
	b, err := c.read(16, scratch[:])
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	in := &inodeData{
		ref:    ino,
		typ:    le.Uint16(b[0:]),
		perm:   le.Uint16(b[2:]) & 0o7777,
		uidIdx: le.Uint16(b[4:]),
		gidIdx: le.Uint16(b[6:]),
		mtime:  le.Uint32(b[8:]),
		ino:    le.Uint32(b[12:]),
		xattr:  inodeNoXattr,
		frag:   fragmentNone,
		nlink:  1,
	}
	// body reads the type-specific fixed part.
	body := func(n int) ([]byte, error) { return c.read(n, scratch[:]) }
	switch in.typ {
	case inodeDir:
		if b, err = body(16); err != nil {
			return nil, err
		}
		in.dirBlock = le.Uint32(b[0:])
		in.nlink = le.Uint32(b[4:])
		in.size = uint64(le.Uint16(b[8:]))
		in.dirOffset = le.Uint16(b[10:])
		in.parent = le.Uint32(b[12:])
	case inodeLDir:
		if b, err = body(24); err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b[0:])
		in.size = uint64(le.Uint32(b[4:]))
		in.dirBlock = le.Uint32(b[8:])
		in.parent = le.Uint32(b[12:])
		in.indexCount = le.Uint16(b[16:])
		in.dirOffset = le.Uint16(b[18:])
		in.xattr = le.Uint32(b[20:])
	case inodeFile:
		if b, err = body(16); err != nil {
			return nil, err
		}
		in.blocksStart = uint64(le.Uint32(b[0:]))
		in.frag = le.Uint32(b[4:])
		in.fragOffset = le.Uint32(b[8:])
		in.size = uint64(le.Uint32(b[12:]))
	case inodeLFile:
		if b, err = body(40); err != nil {
			return nil, err
		}
		in.blocksStart = le.Uint64(b[0:])
		in.size = le.Uint64(b[8:])
		in.sparse = le.Uint64(b[16:])
		in.nlink = le.Uint32(b[24:])
		in.frag = le.Uint32(b[28:])
		in.fragOffset = le.Uint32(b[32:])
		in.xattr = le.Uint32(b[36:])
		if in.size > 1<<62 {
			return nil, fmt.Errorf("file size %d too large", in.size)
		}
	case inodeSymlink, inodeLSymlink:
		if b, err = body(8); err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b[0:])
		in.size = uint64(le.Uint32(b[4:]))
		if in.size > maxSymlink {
			return nil, fmt.Errorf("symlink target of %d bytes", in.size)
		}
		in.tail = c.where()
		if in.typ == inodeLSymlink {
			if err := c.skip(int(in.size)); err != nil {
				return nil, err
			}
			if b, err = body(4); err != nil {
				return nil, err
			}
			in.xattr = le.Uint32(b)
		}
		return in, nil
	case inodeBlockDev, inodeCharDev, inodeLBlockDev, inodeLCharDev:
		n := 8
		if in.typ >= inodeLDir {
			n = 12
		}
		if b, err = body(n); err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b[0:])
		in.dev = le.Uint32(b[4:])
		if n == 12 {
			in.xattr = le.Uint32(b[8:])
		}
	case inodeFifo, inodeSocket, inodeLFifo, inodeLSocket:
		n := 4
		if in.typ >= inodeLDir {
			n = 8
		}
		if b, err = body(n); err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b[0:])
		if n == 8 {
			in.xattr = le.Uint32(b[4:])
		}
	default:
		return nil, fmt.Errorf("bad type %d", in.typ)
	}
	in.tail = c.where()
	return in, nil
}

func (in *inodeData) isDir() bool  { return in.typ == inodeDir || in.typ == inodeLDir }
func (in *inodeData) isFile() bool { return in.typ == inodeFile || in.typ == inodeLFile }

func (in *inodeData) isDevice() bool {
	switch in.typ {
	case inodeBlockDev, inodeCharDev, inodeLBlockDev, inodeLCharDev:
		return true
	}
	return false
}

// rdev decodes the device number. squashfs stores Linux's "new" 32-bit
// encoding (new_encode_dev): minor bits 0-7, major bits 8-19, minor bits
// 8-19 in bits 20-31.
func (in *inodeData) rdev() uint64 {
	major := (in.dev >> 8) & 0xfff
	minor := in.dev&0xff | (in.dev>>12)&0xfff00
	return mkdev(major, minor)
}

// mkdev packs a device number like glibc's makedev and unix.Mkdev on
// Linux. It is spelt out so that the reader builds on every platform.
func mkdev(major, minor uint32) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return ma&0xfffff000<<32 | ma&0xfff<<8 | mi&0xffffff00<<12 | mi&0xff
}

// typeMode maps an inode type (basic or extended) to fs.FileMode type bits.
func typeMode(typ uint16) fs.FileMode {
	if typ >= inodeLDir {
		typ -= inodeLDir - inodeDir
	}
	switch typ {
	case inodeDir:
		return fs.ModeDir
	case inodeSymlink:
		return fs.ModeSymlink
	case inodeBlockDev:
		return fs.ModeDevice
	case inodeCharDev:
		return fs.ModeDevice | fs.ModeCharDevice
	case inodeFifo:
		return fs.ModeNamedPipe
	case inodeSocket:
		return fs.ModeSocket
	}
	return 0
}

func (in *inodeData) mode() fs.FileMode {
	m := typeMode(in.typ) | fs.FileMode(in.perm&0o777)
	if in.perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if in.perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
