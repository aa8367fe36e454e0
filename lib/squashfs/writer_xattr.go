package squashfs

import (
	"encoding/binary"
	"strings"
)

// xattrSets is the image's xattr table under construction. Each distinct
// set of xattrs is stored once, as key/value pairs in metadata blocks, and
// gets one entry in the xattr id table; inodes refer to that entry.
type xattrSets struct {
	kv   *metaWriter       // the key/value pairs of all sets
	byKV map[string]uint32 // encoded set → id
	ids  []xattrID
}

// xattrID is an entry of the xattr id table.
type xattrID struct {
	ref   uint64 // where the set's pairs start: kv block << 16 | offset
	count uint32 // number of pairs
	size  uint32 // bytes of the pairs as stored
}

func (x *xattrSets) init(c *blockCompressor) {
	x.kv = newMetaWriter(c)
	x.byKV = make(map[string]uint32)
}

// add returns the id of the set whose encoded pairs are kv, storing the
// set if it is new.
func (x *xattrSets) add(kv []byte, count uint32) uint32 {
	if id, ok := x.byKV[string(kv)]; ok {
		return id
	}
	id := uint32(len(x.ids))
	x.ids = append(x.ids, xattrID{ref: x.kv.ref(), count: count, size: uint32(len(kv))})
	x.kv.write(kv)
	x.byKV[string(kv)] = id
	return id
}

// write appends the key/value blocks, the id table blocks and the xattr
// table header with the id blocks' offsets to t, and returns the header's
// offset (the superblock's XattrIDTableStart). The kernel requires the
// header's offset list to end the image.
func (x *xattrSets) write(t *tableWriter, c *blockCompressor) uint64 {
	x.kv.flush()
	kvStart := t.pos
	t.add(x.kv.out)

	m := newMetaWriter(c)
	var e [16]byte
	for _, id := range x.ids {
		binary.LittleEndian.PutUint64(e[0:], id.ref)
		binary.LittleEndian.PutUint32(e[8:], id.count)
		binary.LittleEndian.PutUint32(e[12:], id.size)
		m.write(e[:])
	}
	m.flush()
	base := t.pos
	t.add(m.out)

	at := t.pos
	binary.LittleEndian.PutUint64(e[0:], kvStart)
	binary.LittleEndian.PutUint32(e[8:], uint32(len(x.ids)))
	binary.LittleEndian.PutUint32(e[12:], 0)
	t.add(e[:])
	for _, s := range m.starts {
		binary.LittleEndian.PutUint64(e[:8], base+s)
		t.add(e[:8])
	}
	return at
}

// xattrType splits an xattr name into squashfs's prefix type and the rest
// of the name. ok is false for namespaces squashfs cannot store.
func xattrType(name string) (typ uint16, short string, ok bool) {
	for i, p := range xattrPrefixes {
		if rest, found := strings.CutPrefix(name, p); found && rest != "" {
			return uint16(i), rest, true
		}
	}
	return 0, "", false
}

// appendXattr appends one key/value pair, value stored inline.
func appendXattr(b []byte, typ uint16, name string, value []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
	return append(b, value...)
}
