package squashfs

import (
	"encoding/binary"
	"fmt"
)

// maxXattrValue is Linux's XATTR_SIZE_MAX.
const maxXattrValue = 64 << 10

// readXattrIndex reads the xattr id table header: the start of the
// key/value metadata blocks, the number of ids and the index of the id
// table's blocks.
func (r *Reader) readXattrIndex() error {
	start := int64(r.sb.XattrIDTableStart)
	var hdr [16]byte
	if err := r.readFull(hdr[:], start); err != nil {
		return err
	}
	kv := binary.LittleEndian.Uint64(hdr[0:])
	r.xattrCount = binary.LittleEndian.Uint32(hdr[8:])
	if kv < superblockSize || kv >= uint64(start) {
		return fmt.Errorf("key/value table at %#x, not before the id table at %#x", kv, start)
	}
	r.xattrStart = int64(kv)
	if r.xattrCount == 0 {
		return nil
	}
	n := (int64(r.xattrCount) + 511) / 512
	var err error
	r.xattrIndex, err = r.readTableIndex(start+16, int(n))
	return err
}

// Xattrs returns the extended attributes of ino, in image order, with
// full names ("user.mime_type"). Values stored out of line (mksquashfs
// shares a value that several inodes have) are resolved.
func (r *Reader) Xattrs(ino Inode) ([]Xattr, error) {
	in, err := r.inode(ino)
	if err != nil {
		return nil, err
	}
	if in.xattr == inodeNoXattr {
		return nil, nil
	}
	xs, err := r.xattrs(in.xattr)
	if err != nil {
		return nil, fmt.Errorf("squashfs: inode %v: xattrs %d: %w", ino, in.xattr, err)
	}
	return xs, nil
}

func (r *Reader) xattrs(id uint32) ([]Xattr, error) {
	if id >= r.xattrCount {
		return nil, fmt.Errorf("id beyond the %d in the table", r.xattrCount)
	}
	end := int64(r.sb.XattrIDTableStart)
	var scratch [256]byte
	b, err := r.tableEntry(r.xattrIndex, end, uint64(id), 16, scratch[:])
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	ref := le.Uint64(b[0:])
	count := le.Uint32(b[8:])
	c, err := r.xattrCursor(ref)
	if err != nil {
		return nil, err
	}
	var xs []Xattr
	for i := range count {
		b, err := c.read(4, scratch[:])
		if err != nil {
			return nil, err
		}
		typ, nameLen := le.Uint16(b[0:]), int(le.Uint16(b[2:]))
		prefix := typ &^ xattrOOL
		if int(prefix) >= len(xattrPrefixes) {
			return nil, fmt.Errorf("xattr %d: bad type %#x", i, typ)
		}
		name, err := c.read(nameLen, scratch[:])
		if err != nil {
			return nil, err
		}
		x := Xattr{Name: xattrPrefixes[prefix] + string(name)}
		if x.Value, err = r.xattrValue(&c); err != nil {
			return nil, fmt.Errorf("xattr %q: %w", x.Name, err)
		}
		if typ&xattrOOL != 0 {
			// The value is a reference to where the value really is.
			if len(x.Value) != 8 {
				return nil, fmt.Errorf("xattr %q: out-of-line reference of %d bytes", x.Name, len(x.Value))
			}
			oc, err := r.xattrCursor(le.Uint64(x.Value))
			if err != nil {
				return nil, fmt.Errorf("xattr %q: %w", x.Name, err)
			}
			if x.Value, err = r.xattrValue(&oc); err != nil {
				return nil, fmt.Errorf("xattr %q: %w", x.Name, err)
			}
		}
		xs = append(xs, x)
	}
	return xs, nil
}

// xattrCursor returns a cursor at ref, a reference into the xattr
// key/value table (block offset << 16 | offset).
func (r *Reader) xattrCursor(ref uint64) (metaCursor, error) {
	end := int64(r.sb.XattrIDTableStart)
	block, off := ref>>16, int(ref&0xffff)
	if block >= uint64(end-r.xattrStart) || off >= metadataSize {
		return metaCursor{}, fmt.Errorf("reference %#x outside the key/value table", ref)
	}
	return r.cursor(metaPos{block: r.xattrStart + int64(block), off: off}, end), nil
}

// xattrValue reads a value: a 32-bit length and the bytes.
func (r *Reader) xattrValue(c *metaCursor) ([]byte, error) {
	var scratch [4]byte
	b, err := c.read(4, scratch[:])
	if err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxXattrValue {
		return nil, fmt.Errorf("value of %d bytes", n)
	}
	v, err := c.read(int(n), nil)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), v...), nil
}
