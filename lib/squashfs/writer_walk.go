package squashfs

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// srcNode is one inode of the tree being packed. Hard links share one
// srcNode.
type srcNode struct {
	mode     uint32 // st_mode: file type and permission bits
	uid, gid uint32
	mtime    uint32
	nlink    uint32 // names of the node in the tree; directories: 2 + subdirectories
	xattr    uint32 // index into the xattr id table, or noXattr
	size     uint64 // regular files
	rdev     uint64 // devices
	path     string // regular files: where to read the contents
	target   string // symlinks
	holes    bool   // regular files: fewer blocks allocated than the size, so maybe sparse

	children []srcEntry // directories, sorted by name

	// Set by writeData for regular files.
	start   uint64   // image offset of the first stored block
	blocks  []uint32 // size word of each block; 0 is a sparse (all-zero) block
	frag    uint32   // fragment holding the tail, or fragmentNone
	fragOff uint32   // offset of the tail in the fragment
	sparse  uint64   // bytes of the file in sparse blocks

	// Set by writeTree.
	num     uint32 // inode number, 1..inode count
	ref     uint64 // where the inode is: metadata block << 16 | offset
	written bool
}

// srcEntry is one name in a directory.
type srcEntry struct {
	name string
	node *srcNode
}

const noXattr = 0xffffffff

func (n *srcNode) isDir() bool { return n.mode&unix.S_IFMT == unix.S_IFDIR }

// walker reads a tree into srcNodes.
type walker struct {
	w     *writer
	files chan<- *srcNode
	links map[fileKey]*srcNode // nodes whose source has more than one link
	names []byte               // listxattr buffer
	value []byte               // getxattr buffer
	kv    []byte               // encoded xattr set
	link  []byte               // readlink buffer
	keys  []string
}

// walk reads the tree at dir: names, inodes and xattrs, not file contents.
// It sends the regular files with contents to files, in walk order.
func (w *writer) walk(dir string, files chan<- *srcNode) error {
	wk := &walker{
		w:     w,
		files: files,
		links: make(map[fileKey]*srcNode),
		names: make([]byte, 4096),
		value: make([]byte, 4096),
		link:  make([]byte, 4096),
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("write image of %s: not a directory", dir)
	}
	root, err := wk.node(&st, dir, -1, "")
	if err != nil {
		return err
	}
	w.root = root
	return wk.dir(root, dir)
}

// dir reads the entries of the directory d at path, then recurses.
func (wk *walker) dir(d *srcNode, path string) error {
	if wk.w.stop.Load() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	// Bytewise order, which the kernel's lookup relies on.
	slices.Sort(names)
	fd := int(f.Fd())
	d.children = make([]srcEntry, 0, len(names))
	subdirs := 0
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			f.Close()
			return fmt.Errorf("lstat %s/%s: %w", path, name, err)
		}
		key := fileKey{uint64(st.Dev), st.Ino}
		if key == wk.w.skip {
			continue // the image being written
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir && st.Nlink > 1 {
			if n, ok := wk.links[key]; ok {
				n.nlink++
				d.children = append(d.children, srcEntry{name, n})
				continue
			}
		}
		n, err := wk.node(&st, path+"/"+name, fd, name)
		if err != nil {
			f.Close()
			return err
		}
		if !isDir && st.Nlink > 1 {
			wk.links[key] = n
		}
		if isDir {
			subdirs++
		}
		d.children = append(d.children, srcEntry{name, n})
	}
	f.Close()
	d.nlink = uint32(2 + subdirs)
	for _, e := range d.children {
		if e.node.isDir() {
			if err := wk.dir(e.node, path+"/"+e.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// node makes the srcNode for the entry at path, whose lstat is st. dirfd
// and name locate it relative to its directory (dirfd -1 for the root).
func (wk *walker) node(st *unix.Stat_t, path string, dirfd int, name string) (*srcNode, error) {
	w := wk.w
	n := &srcNode{
		mode:  st.Mode,
		uid:   st.Uid,
		gid:   st.Gid,
		mtime: clampUnixTime(st.Mtim.Sec),
		nlink: 1,
		frag:  fragmentNone,
	}
	if w.hasEpoch && n.mtime > w.epoch {
		n.mtime = w.epoch
	}
	w.newest = max(w.newest, n.mtime)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.size = uint64(st.Size)
		n.holes = st.Blocks*512 < st.Size
		if n.size > 0 {
			n.path = path
		}
	case unix.S_IFLNK:
		t, err := wk.readlink(dirfd, name, path)
		if err != nil {
			return nil, err
		}
		n.target = t
	case unix.S_IFCHR, unix.S_IFBLK:
		n.rdev = st.Rdev
	case unix.S_IFDIR, unix.S_IFIFO, unix.S_IFSOCK:
	default:
		return nil, fmt.Errorf("write image: %s: unknown file type %#o", path, st.Mode&unix.S_IFMT)
	}
	x, err := wk.readXattrs(path)
	if err != nil {
		return nil, err
	}
	n.xattr = x
	if n.path != "" {
		wk.files <- n // complete: the data writer may start on it
	}
	return n, nil
}

func (wk *walker) readlink(dirfd int, name, path string) (string, error) {
	for {
		var (
			n   int
			err error
		)
		if dirfd >= 0 {
			n, err = unix.Readlinkat(dirfd, name, wk.link)
		} else {
			n, err = unix.Readlink(path, wk.link)
		}
		if err != nil {
			return "", fmt.Errorf("readlink %s: %w", path, err)
		}
		if n < len(wk.link) {
			return string(wk.link[:n]), nil
		}
		wk.link = make([]byte, 2*len(wk.link))
	}
}

// readXattrs reads the xattrs of path into the image's xattr table and
// returns their id, or noXattr.
func (wk *walker) readXattrs(path string) (uint32, error) {
	var (
		n   int
		err error
	)
	for {
		n, err = unix.Llistxattr(path, wk.names)
		if !errors.Is(err, unix.ERANGE) {
			break
		}
		size, err := unix.Llistxattr(path, nil)
		if err != nil {
			return 0, fmt.Errorf("listxattr %s: %w", path, err)
		}
		wk.names = make([]byte, size+1024)
	}
	if errors.Is(err, unix.ENOTSUP) || n == 0 {
		return noXattr, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listxattr %s: %w", path, err)
	}
	keys := wk.keys[:0]
	for b := wk.names[:n]; len(b) > 0; {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			keys = append(keys, string(b[:i]))
		}
		b = b[min(i+1, len(b)):]
	}
	slices.Sort(keys) // listxattr's order depends on the file system
	wk.keys = keys
	kv := wk.kv[:0]
	count := uint32(0)
	for _, key := range keys {
		typ, short, ok := xattrType(key)
		if !ok {
			continue // not representable in squashfs, e.g. system.posix_acl_access
		}
		v, err := wk.getxattr(path, key)
		if err != nil {
			return 0, err
		}
		kv = appendXattr(kv, typ, short, v)
		count++
	}
	wk.kv = kv
	if count == 0 {
		return noXattr, nil
	}
	return wk.w.xattrs.add(kv, count), nil
}

func (wk *walker) getxattr(path, key string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, key, wk.value)
		if err == nil {
			return wk.value[:n], nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, key, err)
		}
		size, err := unix.Lgetxattr(path, key, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, key, err)
		}
		wk.value = make([]byte, size+1024)
	}
}
