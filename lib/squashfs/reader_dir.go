package squashfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"
)

// dirListing is a parsed directory, cached per inode: FUSE reads a big
// directory in many ReadDir calls and looks names up one by one.
type dirListing struct {
	entries []DirEntry
	sorted  bool // by name, as mksquashfs writes them: Lookup may bisect
}

// maxDirHeaderEntries is the most entries a directory header may count
// (the kernel rejects more).
const maxDirHeaderEntries = 256

func (r *Reader) listing(ino Inode) (*dirListing, error) {
	return r.dirs.get(ino, func() (*dirListing, int, error) {
		in, err := r.inode(ino)
		if err != nil {
			return nil, 0, err
		}
		if !in.isDir() {
			return nil, 0, fmt.Errorf("squashfs: inode %v: %w", ino, syscall.ENOTDIR)
		}
		l, err := r.parseListing(in)
		if err != nil {
			return nil, 0, fmt.Errorf("squashfs: directory inode %v: %w", ino, err)
		}
		cost := 64
		for _, e := range l.entries {
			cost += len(e.Name) + 48
		}
		return l, cost, nil
	})
}

// parseListing reads a directory's listing: runs of entries, each run
// preceded by a header naming the inode metadata block its entries live
// in and a base inode number.
func (r *Reader) parseListing(in *inodeData) (*dirListing, error) {
	l := &dirListing{sorted: true}
	if in.size <= 3 { // the size counts 3 bytes for "." and ".."
		return l, nil
	}
	remaining := int64(in.size) - 3
	if uint64(in.dirBlock) >= uint64(r.dirEnd)-r.sb.DirTableStart {
		return nil, fmt.Errorf("listing at %#x outside the directory table", in.dirBlock)
	}
	c := r.cursor(metaPos{block: int64(r.sb.DirTableStart) + int64(in.dirBlock), off: int(in.dirOffset)}, r.dirEnd)
	le := binary.LittleEndian
	var scratch [256]byte
	for remaining > 0 {
		if remaining < 12 {
			return nil, fmt.Errorf("listing ends inside a header")
		}
		b, err := c.read(12, scratch[:])
		if err != nil {
			return nil, err
		}
		remaining -= 12
		count := uint64(le.Uint32(b[0:])) + 1
		start := le.Uint32(b[4:])
		base := le.Uint32(b[8:])
		if count > maxDirHeaderEntries {
			return nil, fmt.Errorf("directory header counts %d entries", count)
		}
		for range count {
			if remaining < 8 {
				return nil, fmt.Errorf("listing ends inside an entry")
			}
			b, err := c.read(8, scratch[:])
			if err != nil {
				return nil, err
			}
			offset := le.Uint16(b[0:])
			delta := int16(le.Uint16(b[2:]))
			typ := le.Uint16(b[4:])
			nameLen := int(le.Uint16(b[6:])) + 1
			remaining -= 8
			if nameLen > 256 || int64(nameLen) > remaining {
				return nil, fmt.Errorf("entry name of %d bytes", nameLen)
			}
			nb, err := c.read(nameLen, scratch[:])
			if err != nil {
				return nil, err
			}
			remaining -= int64(nameLen)
			name := string(nb)
			if !validName(name) {
				return nil, fmt.Errorf("bad entry name %q", name)
			}
			if typ < inodeDir || typ > inodeSocket {
				return nil, fmt.Errorf("entry %q: bad type %d", name, typ)
			}
			if n := len(l.entries); n > 0 && l.entries[n-1].Name >= name {
				l.sorted = false
			}
			l.entries = append(l.entries, DirEntry{
				Name:  name,
				Inode: Inode(uint64(start)<<16 | uint64(offset)),
				Ino:   uint32(int64(base) + int64(delta)),
				Type:  typeMode(typ),
			})
		}
	}
	return l, nil
}

// validName reports whether name is usable as a path component. An image
// naming an entry "..", or "a/b", could make Extract write outside its
// destination.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// ReadDir calls fn for the entries of the directory dir from position
// offset (0-based) on, in listing order, until fn returns false. A FUSE
// server passes the position of the last entry it sent plus one as the
// next offset. "." and ".." are not listed.
func (r *Reader) ReadDir(dir Inode, offset int, fn func(DirEntry) bool) error {
	l, err := r.listing(dir)
	if err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("squashfs: readdir inode %v: negative offset %d: %w", dir, offset, syscall.EINVAL)
	}
	if offset >= len(l.entries) {
		return nil
	}
	for _, e := range l.entries[offset:] {
		if !fn(e) {
			break
		}
	}
	return nil
}

// Lookup returns the inode of the entry name in the directory dir. The
// error wraps fs.ErrNotExist when there is no such entry and
// syscall.ENOTDIR when dir is not a directory.
func (r *Reader) Lookup(dir Inode, name string) (Inode, error) {
	e, err := r.lookup(dir, name)
	return e.Inode, err
}

func (r *Reader) lookup(dir Inode, name string) (DirEntry, error) {
	l, err := r.listing(dir)
	if err != nil {
		return DirEntry{}, err
	}
	if l.sorted {
		if i, ok := slices.BinarySearchFunc(l.entries, name, func(e DirEntry, name string) int {
			return strings.Compare(e.Name, name)
		}); ok {
			return l.entries[i], nil
		}
	} else {
		for _, e := range l.entries {
			if e.Name == name {
				return e, nil
			}
		}
	}
	return DirEntry{}, fmt.Errorf("squashfs: lookup %q in inode %v: %w", name, dir, fs.ErrNotExist)
}

// LookupPath resolves the slash-separated path p relative to the root
// ("" and "." are the root; leading and doubled slashes are ignored). It
// does not follow symlinks: a symlink as the last component is returned
// as is, and a symlink before it is an error wrapping syscall.ENOTDIR,
// because resolving it needs a policy for absolute targets that the
// caller has (the FUSE server, FS) and this package has not. ".." is
// rejected.
func (r *Reader) LookupPath(p string) (Inode, error) {
	ino := r.Root()
	typ := fs.ModeDir
	var walked string
	for comp := range strings.SplitSeq(p, "/") {
		if comp == "" || comp == "." {
			continue
		}
		if comp == ".." {
			return 0, fmt.Errorf("squashfs: lookup %q: \"..\" not supported: %w", p, fs.ErrInvalid)
		}
		if typ == fs.ModeSymlink {
			return 0, fmt.Errorf("squashfs: lookup %q: %q is a symlink, which LookupPath does not follow: %w", p, walked, syscall.ENOTDIR)
		}
		if typ != fs.ModeDir {
			return 0, fmt.Errorf("squashfs: lookup %q: %q is not a directory: %w", p, walked, syscall.ENOTDIR)
		}
		e, err := r.lookup(ino, comp)
		if err != nil {
			return 0, fmt.Errorf("lookup %q: %w", p, err)
		}
		ino, typ = e.Inode, e.Type
		walked = strings.TrimPrefix(walked+"/"+comp, "/")
	}
	return ino, nil
}
