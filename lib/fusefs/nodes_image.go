package fusefs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"path"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/squashfs"
)

// imageNode is a file, directory or symlink inside a package image:
// /ro/<full>/ and everything below it.
type imageNode struct {
	fs.Inode
	img *image
	sq  squashfs.Inode // unused for the package root, which is resolved when the image is opened
	// root marks /ro/<full> itself, whose inode number is fixed
	// before the image is opened (see image.gen).
	root bool
	// path is the node's path in img, e.g. out/bin/bash (root: ""). It
	// is what the kernel's mount of the image is asked to open for
	// passthrough, and what runtime unions are keyed by.
	path string
	size int64 // of a regular file
	// pin: OnAdd holds the image open until OnForget (package roots
	// and the top entries of runtime union plugins); pinned: it does.
	pin, pinned bool
}

var (
	_ fs.NodeLookuper       = (*imageNode)(nil)
	_ fs.NodeOpendirHandler = (*imageNode)(nil)
	_ fs.NodeGetattrer      = (*imageNode)(nil)
	_ fs.NodeReadlinker     = (*imageNode)(nil)
	_ fs.NodeOpener         = (*imageNode)(nil)
	_ fs.NodeReader         = (*imageNode)(nil)
	_ fs.NodeFlusher        = (*imageNode)(nil)
	_ fs.NodeOnAdder        = (*imageNode)(nil)
	_ fs.NodeOnForgetter    = (*imageNode)(nil)
	_ fs.NodeGetxattrer     = (*imageNode)(nil)
	_ fs.NodeListxattrer    = (*imageNode)(nil)
	_ fs.NodeStatfser       = (*imageNode)(nil)
)

// newPkgRoot returns the node of /ro/<full>, opening the image.
func newPkgRoot(ctx context.Context, parent *fs.Inode, img *image, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n := &imageNode{img: img, root: true, pin: true}
	if errno := n.getattr(&out.Attr); errno != 0 {
		return nil, errno
	}
	return parent.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: img.rootIno()}), 0
}

func (n *imageNode) srv() *Server { return n.img.srv }

// inode returns the node's squashfs inode.
func (n *imageNode) inode(r *squashfs.Reader) squashfs.Inode {
	if n.root {
		return r.Root()
	}
	return n.sq
}

func (n *imageNode) getattr(out *fuse.Attr) syscall.Errno {
	r, errno := n.img.acquire()
	if errno != 0 {
		return errno
	}
	defer n.img.release()
	st, err := r.Stat(n.inode(r))
	if err != nil {
		return n.img.fail("stat /"+n.path, err)
	}
	imageAttr(out, n.img, st)
	if n.root {
		out.Ino = n.img.rootIno()
	}
	return 0
}

func (n *imageNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return n.getattr(&out.Attr)
}

func (n *imageNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r, errno := n.img.acquire()
	if errno != 0 {
		return nil, errno
	}
	defer n.img.release()
	p := path.Join(n.path, name)
	sq, err := r.Lookup(n.inode(r), name)
	if err == nil {
		return n.child(ctx, n.img, r, sq, p, out)
	}
	if !errors.Is(err, iofs.ErrNotExist) {
		return nil, n.img.fail("lookup /"+p, err)
	}
	// A runtime union: plugins' entries of the same directory, in
	// priority order, behind the host's own.
	for _, plug := range n.srv().tree.Load().unionPlugins(n.img.full, n.path) {
		if ch, errno := n.pluginLookup(ctx, plug, name, out); errno == 0 {
			return ch, 0
		}
	}
	return nil, syscall.ENOENT
}

func (n *imageNode) pluginLookup(ctx context.Context, plug *image, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r, errno := plug.acquire()
	if errno != 0 {
		return nil, errno
	}
	defer plug.release()
	dir, err := r.LookupPath(n.path)
	if err != nil {
		return nil, syscall.ENOENT
	}
	sq, err := r.Lookup(dir, name)
	if err != nil {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, plug, r, sq, path.Join(n.path, name), out)
}

// child makes the node for inode sq (at path p) of img.
func (n *imageNode) child(ctx context.Context, img *image, r *squashfs.Reader, sq squashfs.Inode, p string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	st, err := r.Stat(sq)
	if err != nil {
		return nil, img.fail("stat /"+p, err)
	}
	imageAttr(&out.Attr, img, st)
	ch := &imageNode{img: img, sq: sq, path: p, size: st.Size, pin: img != n.img}
	return n.NewInode(ctx, ch, fs.StableAttr{Mode: typeBits(st.Mode), Ino: img.ino(st.Ino)}), 0
}

func (n *imageNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	r, errno := n.img.acquire()
	if errno != 0 {
		return nil, 0, errno
	}
	defer n.img.release()
	self := n.StableAttr().Ino
	parent := self
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	var list []fuse.DirEntry
	add := func(img *image) func(e squashfs.DirEntry) bool {
		return func(e squashfs.DirEntry) bool {
			list = append(list, fuse.DirEntry{Name: e.Name, Mode: typeBits(e.Type), Ino: img.ino(e.Ino)})
			return true
		}
	}
	if err := r.ReadDir(n.inode(r), 0, add(n.img)); err != nil {
		return nil, 0, n.img.fail("readdir /"+n.path, err)
	}
	if plugs := n.srv().tree.Load().unionPlugins(n.img.full, n.path); len(plugs) > 0 {
		list = n.appendPlugins(list, plugs)
	}
	ld := newListDir(self, parent, list)
	return &ld, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// appendPlugins adds the entries of the union plugins' directories to
// list, skipping names already listed: a name is listed once, for the
// entry Lookup finds.
func (n *imageNode) appendPlugins(list []fuse.DirEntry, plugs []*image) []fuse.DirEntry {
	seen := make(map[string]bool, len(list))
	for _, e := range list {
		seen[e.Name] = true
	}
	for _, plug := range plugs {
		r, errno := plug.acquire()
		if errno != 0 {
			continue
		}
		if dir, err := r.LookupPath(n.path); err == nil {
			r.ReadDir(dir, 0, func(e squashfs.DirEntry) bool {
				if !seen[e.Name] {
					seen[e.Name] = true
					list = append(list, fuse.DirEntry{Name: e.Name, Mode: typeBits(e.Type), Ino: plug.ino(e.Ino)})
				}
				return true
			})
		}
		plug.release()
	}
	return list
}

func (n *imageNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	r, errno := n.img.acquire()
	if errno != 0 {
		return nil, errno
	}
	defer n.img.release()
	target, err := r.Readlink(n.inode(r))
	if err != nil {
		return nil, n.img.fail("readlink /"+n.path, err)
	}
	return []byte(target), 0
}

func (n *imageNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	r, errno := n.img.acquire()
	if errno != 0 {
		return 0, errno
	}
	defer n.img.release()
	xs, err := r.Xattrs(n.inode(r))
	if err != nil {
		return 0, n.img.fail("xattrs /"+n.path, err)
	}
	return getxattr(xs, attr, dest)
}

func (n *imageNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	r, errno := n.img.acquire()
	if errno != 0 {
		return 0, errno
	}
	defer n.img.release()
	xs, err := r.Xattrs(n.inode(r))
	if err != nil {
		return 0, n.img.fail("xattrs /"+n.path, err)
	}
	return listxattr(xs, dest)
}

func (n *imageNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.srv().statfs(out)
}

// passthroughMinSize is the size from which files are passed through to
// the kernel. A smaller file is read in one request anyway, and passing it
// through costs more than that request: an open on the kernel's mount of
// the image (a path walk that, cold, reads the image's metadata a second
// time, through the loop device) and the backing file's registration.
const passthroughMinSize = 128 << 10

// Open opens a regular file, if the daemon is asked at all. By default
// it is not: the first Open answers ENOSYS, and from then on the kernel
// opens files without a round trip to the daemon (FUSE no-open support),
// reads go to [imageNode.Read], and the page cache is kept across opens
// (the kernel's default for no-open).
//
// With passthrough, the kernel reads a large file from its own mount of
// the image and the daemon sees no reads at all; a small one is read by
// the daemon and kept in the page cache. Either way the open file holds
// the image open, so it keeps working after its package is removed.
func (n *imageNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	srv := n.srv()
	if srv.openMode(); !srv.openFiles {
		return nil, 0, syscall.ENOSYS
	}
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	r, errno := n.img.acquire()
	if errno != 0 {
		return nil, 0, errno
	}
	if n.size >= passthroughMinSize && srv.passthrough {
		if fd, ok := n.img.kernelFile(n.path); ok {
			return &kernelFile{img: n.img, fd: fd}, fuse.FOPEN_NOFLUSH, 0
		}
	}
	// NOFLUSH: nothing to do at close(2), so the kernel need not wait
	// for us there.
	return &readerFile{img: n.img, r: r, sq: n.inode(r), path: n.path}, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

// Read answers a read of a file opened without an OPEN request (f is
// nil), or passes it to the open file.
func (n *imageNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if fr, ok := f.(fs.FileReader); ok {
		return fr.Read(ctx, dest, off)
	}
	r, errno := n.img.acquire()
	if errno != 0 {
		return nil, errno
	}
	defer n.img.release()
	m, err := r.ReadAt(n.inode(r), dest, off)
	if err != nil && err != io.EOF {
		return nil, n.img.fail("read /"+n.path, err)
	}
	return fuse.ReadResultData(dest[:m]), 0
}

// Flush answers ENOSYS, once: a read-only file has nothing to flush, and
// the kernel stops sending FLUSH at every close(2) of a file opened
// without an OPEN request (opened files say FOPEN_NOFLUSH instead).
func (n *imageNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// OnAdd pins the image of a package root or of a runtime union plugin's
// entry for as long as the kernel knows the node. Without OPEN requests
// the daemon does not see which files are open, but the kernel knows
// the node of an open file, and so every directory above it up to the
// package root: while it does, the image stays open, also after its
// package left the store. When the package is removed, rescan
// invalidates every node of it the kernel knows, so it forgets them as
// soon as nothing uses them any more (see [Server.forgetImage]).
func (n *imageNode) OnAdd(ctx context.Context) {
	if n.pin {
		if _, errno := n.img.acquire(); errno == 0 {
			n.pinned = true
		}
	}
}

// OnForget releases what OnAdd pinned.
func (n *imageNode) OnForget() {
	if n.pinned {
		n.pinned = false
		n.img.release()
	}
}

// kernelFile is an open file backed by the kernel's mount of the image.
// go-fuse registers its fd as the FUSE passthrough backing file; Read is
// used only when the kernel refuses the registration.
type kernelFile struct {
	img *image
	fd  int
}

var (
	_ fs.FilePassthroughFder = (*kernelFile)(nil)
	_ fs.FileReader          = (*kernelFile)(nil)
	_ fs.FileReleaser        = (*kernelFile)(nil)
)

func (f *kernelFile) PassthroughFd() (int, bool) { return f.fd, true }

func (f *kernelFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(uintptr(f.fd), off, len(dest)), 0
}

func (f *kernelFile) Release(ctx context.Context) syscall.Errno {
	unix.Close(f.fd)
	f.img.release()
	return 0
}

// readerFile is an open file whose reads the daemon answers.
type readerFile struct {
	img  *image
	r    *squashfs.Reader
	sq   squashfs.Inode
	path string
}

var (
	_ fs.FileReader   = (*readerFile)(nil)
	_ fs.FileReleaser = (*readerFile)(nil)
)

func (f *readerFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.r.ReadAt(f.sq, dest, off)
	if err != nil && err != io.EOF {
		return nil, f.img.fail("read /"+f.path, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *readerFile) Release(ctx context.Context) syscall.Errno {
	f.img.release()
	return 0
}
