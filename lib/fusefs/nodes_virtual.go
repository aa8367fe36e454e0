package fusefs

import (
	"context"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Extended attributes of the virtual nodes.
const (
	// XattrStore on /ro names the store it serves, e.g. /roimg.
	XattrStore = "user.distri.store"
	// XattrOwner on an exchange directory lists, one per line and
	// sorted, the packages that have entries below it. (Exchange entries
	// themselves are symlinks, which cannot carry user.* attributes; their
	// owner is the first component of their target, see [Owner].)
	XattrOwner = "user.distri.owner"
)

// rootNode is /ro: the exchange directories, one directory per package,
// and the .ctl symlink to the control socket.
type rootNode struct {
	fs.Inode
	srv  *Server
	list listCache
}

var (
	_ fs.NodeLookuper       = (*rootNode)(nil)
	_ fs.NodeOpendirHandler = (*rootNode)(nil)
	_ fs.NodeGetattrer      = (*rootNode)(nil)
	_ fs.NodeStatfser       = (*rootNode)(nil)
	_ fs.NodeGetxattrer     = (*rootNode)(nil)
	_ fs.NodeListxattrer    = (*rootNode)(nil)
)

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t := n.srv.tree.Load()
	if name == ctlName && n.srv.opts.CtlSocket != "" {
		target := n.srv.opts.CtlSocket
		linkAttr(&out.Attr, ctlIno, target, t.root.mtime)
		return n.NewInode(ctx, &linkNode{target: target}, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: ctlIno}), 0
	}
	e, ok := t.root.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	if img := t.pkgs[name]; img != nil {
		return newPkgRoot(ctx, &n.Inode, img, out)
	}
	d := t.dirs[name]
	dirAttr(&out.Attr, e.ino, d)
	return n.NewInode(ctx, &xdirNode{srv: n.srv, path: name}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: e.ino}), 0
}

func (n *rootNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	t := n.srv.tree.Load()
	ld, _ := n.list.get(t, func() (listDir, syscall.Errno) {
		list := make([]fuse.DirEntry, 0, len(t.root.names)+1)
		if n.srv.opts.CtlSocket != "" {
			list = append(list, fuse.DirEntry{Name: ctlName, Mode: syscall.S_IFLNK, Ino: ctlIno})
		}
		return newListDir(rootIno, rootIno, appendEntries(list, &t.root)), 0
	})
	return &rootDir{listDir: ld, root: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// rootDir is an open /ro. Its Lookup fills in the entries of a
// READDIRPLUS: for a package whose image is not open yet it returns no
// attributes (go-fuse then sends the entry without them), so listing /ro
// opens no image. A stat of /ro/<full> opens it.
type rootDir struct {
	listDir
	root *rootNode
}

var _ fs.FileLookuper = (*rootDir)(nil)

func (d *rootDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if img := d.root.srv.tree.Load().pkgs[name]; img != nil && !img.opened() {
		return nil, syscall.ENOENT
	}
	return d.root.Lookup(ctx, name, out)
}

func (n *rootNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	t := n.srv.tree.Load()
	dirAttr(&out.Attr, rootIno, &t.root)
	return 0
}

func (n *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.srv.statfs(out)
}

func (n *rootNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != XattrStore {
		return 0, noXattr(attr)
	}
	return copyXattr(dest, n.srv.opts.Store)
}

func (n *rootNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return copyXattr(dest, XattrStore+"\x00")
}

// appendEntries adds the listing of d to list.
func appendEntries(list []fuse.DirEntry, d *xdir) []fuse.DirEntry {
	for _, name := range d.names {
		e := d.entries[name]
		mode := uint32(syscall.S_IFLNK)
		if e.dir {
			mode = syscall.S_IFDIR
		}
		list = append(list, fuse.DirEntry{Name: name, Mode: mode, Ino: e.ino})
	}
	return list
}

func copyXattr(dest []byte, v string) (uint32, syscall.Errno) {
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// xdirNode is an exchange directory, e.g. /ro/lib/pkgconfig. It holds
// only its path and reads its listing from the current tree, so the same
// node (and the kernel's inode) serves every rescan for which the
// directory exists.
type xdirNode struct {
	fs.Inode
	srv  *Server
	path string // e.g. lib/pkgconfig
	list listCache
}

var (
	_ fs.NodeLookuper       = (*xdirNode)(nil)
	_ fs.NodeOpendirHandler = (*xdirNode)(nil)
	_ fs.NodeGetattrer      = (*xdirNode)(nil)
	_ fs.NodeStatfser       = (*xdirNode)(nil)
	_ fs.NodeGetxattrer     = (*xdirNode)(nil)
	_ fs.NodeListxattrer    = (*xdirNode)(nil)
)

func (n *xdirNode) dir() (*tree, *xdir) {
	t := n.srv.tree.Load()
	return t, t.dirs[n.path]
}

func (n *xdirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, d := n.dir()
	if d == nil {
		return nil, syscall.ENOENT
	}
	e, ok := d.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	if e.dir {
		p := n.path + "/" + name
		dirAttr(&out.Attr, e.ino, t.dirs[p])
		return n.NewInode(ctx, &xdirNode{srv: n.srv, path: p}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: e.ino}), 0
	}
	linkAttr(&out.Attr, e.ino, e.target, d.mtime)
	return n.NewInode(ctx, &linkNode{target: e.target, mtime: d.mtime}, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: e.ino}), 0
}

func (n *xdirNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	t, d := n.dir()
	if d == nil {
		return nil, 0, syscall.ENOENT
	}
	parentIno := uint64(rootIno)
	if pp := path.Dir(n.path); pp != "." {
		if pd := t.dirs[pp]; pd != nil {
			parentIno = pd.ino
		}
	}
	ld, _ := n.list.get(t, func() (listDir, syscall.Errno) {
		return newListDir(d.ino, parentIno, appendEntries(make([]fuse.DirEntry, 0, len(d.names)), d)), 0
	})
	return &ld, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

func (n *xdirNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	_, d := n.dir()
	if d == nil {
		return syscall.ENOENT
	}
	dirAttr(&out.Attr, d.ino, d)
	return 0
}

func (n *xdirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.srv.statfs(out)
}

func (n *xdirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	_, d := n.dir()
	if d == nil {
		return 0, syscall.ENOENT
	}
	if attr != XattrOwner || len(d.owners) == 0 {
		return 0, noXattr(attr)
	}
	return copyXattr(dest, strings.Join(d.owners, "\n"))
}

func (n *xdirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	_, d := n.dir()
	if d == nil || len(d.owners) == 0 {
		return 0, 0
	}
	return copyXattr(dest, XattrOwner+"\x00")
}

// linkNode is a virtual symlink: an exchange entry or .ctl. Its target
// never changes; a changed target is a new node with a new inode number.
type linkNode struct {
	fs.Inode
	target string
	mtime  time.Time
}

var (
	_ fs.NodeReadlinker = (*linkNode)(nil)
	_ fs.NodeGetattrer  = (*linkNode)(nil)
	_ fs.NodeGetxattrer = (*linkNode)(nil)
)

func (n *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(n.target), 0
}

func (n *linkNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, noXattr(attr)
}

func (n *linkNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	linkAttr(&out.Attr, n.StableAttr().Ino, n.target, n.mtime)
	return 0
}

// statfs reports the images' total size as used space and the store
// file system's available space as free: df /ro says how much is
// installed and how much more fits.
func (s *Server) statfs(out *fuse.StatfsOut) syscall.Errno {
	const bsize = 4096
	t := s.tree.Load()
	var free uint64
	var st unix.Statfs_t
	if err := unix.Statfs(s.opts.Store, &st); err == nil {
		free = st.Bavail * uint64(st.Bsize) / bsize
	}
	used := uint64(t.bytes+bsize-1) / bsize
	out.Blocks = used + free
	out.Bfree = free
	out.Bavail = free
	out.Files = uint64(len(t.names) + t.nvirtual)
	out.Bsize = bsize
	out.Frsize = bsize
	out.NameLen = 255
	return 0
}
