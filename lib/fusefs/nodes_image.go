package fusefs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"path"
	"sync/atomic"
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
	// pkg is the package of /ro/<pkg>/ the node is in: img's, or, for an
	// entry a runtime union plugin provides, the host's.
	pkg string
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
	xattrs      atomic.Pointer[[]squashfs.Xattr] // once read
	list        listCache                        // of a directory
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
	n := &imageNode{img: img, pkg: img.full, root: true, pin: true}
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
	srcs := n.srv().tree.Load().unionSources(n.pkg, n.path)
	if srcs == nil {
		return n.lookupIn(ctx, n.img, name, out)
	}
	// A runtime union: the host's entry, else the first plugin's, in
	// priority order. Another plugin that fails is skipped; the host or
	// the node's own image failing fails the lookup.
	for i, img := range srcs {
		ch, errno := n.lookupIn(ctx, img, name, out)
		if errno == 0 || (errno != syscall.ENOENT && (i == 0 || img == n.img)) {
			return ch, errno
		}
	}
	return nil, syscall.ENOENT
}

// lookupIn looks name up in the directory of img at the node's path.
func (n *imageNode) lookupIn(ctx context.Context, img *image, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r, errno := img.acquire()
	if errno != 0 {
		return nil, errno
	}
	defer img.release()
	p := path.Join(n.path, name)
	dir, errno := n.dirIn(img, r)
	if errno != 0 {
		return nil, errno
	}
	sq, err := r.Lookup(dir, name)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil, syscall.ENOENT
		}
		return nil, img.fail("lookup /"+p, err)
	}
	return n.child(ctx, img, r, sq, p, out)
}

// dirIn returns the directory at the node's path in img (read with r):
// the node's own inode, or, for the other images of a runtime union,
// looked up by path (ENOENT where img has no such directory).
func (n *imageNode) dirIn(img *image, r *squashfs.Reader) (squashfs.Inode, syscall.Errno) {
	if img == n.img {
		return n.inode(r), 0
	}
	dir, err := r.LookupPath(n.path)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return dir, syscall.ENOENT
		}
		return dir, img.fail("lookup /"+n.path, err)
	}
	return dir, 0
}

// child makes the node for inode sq (at path p) of img.
func (n *imageNode) child(ctx context.Context, img *image, r *squashfs.Reader, sq squashfs.Inode, p string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	st, err := r.Stat(sq)
	if err != nil {
		return nil, img.fail("stat /"+p, err)
	}
	imageAttr(&out.Attr, img, st)
	ch := &imageNode{img: img, pkg: n.pkg, sq: sq, path: p, size: st.Size, pin: img != n.img}
	return n.NewInode(ctx, ch, fs.StableAttr{Mode: typeBits(st.Mode), Ino: img.ino(st.Ino)}), 0
}

func (n *imageNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	self := n.StableAttr().Ino
	parent := self
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	t := n.srv().tree.Load()
	ld, errno := n.list.get(t, func() (listDir, syscall.Errno) { return n.listing(t, self, parent) })
	if errno != 0 {
		return nil, 0, errno
	}
	return &ld, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// listing lists the directory for t: the image's entries, or a runtime
// union's.
func (n *imageNode) listing(t *tree, self, parent uint64) (listDir, syscall.Errno) {
	srcs := t.unionSources(n.pkg, n.path)
	if srcs == nil {
		srcs = []*image{n.img}
	}
	// A runtime union lists each name once, for the entry Lookup finds:
	// the host's, else the first plugin's.
	var list []fuse.DirEntry
	seen := map[string]bool{}
	for i, img := range srcs {
		r, errno := img.acquire()
		if errno != 0 {
			if i == 0 {
				return listDir{}, errno
			}
			continue
		}
		dir, errno := n.dirIn(img, r)
		if errno == 0 {
			err := r.ReadDir(dir, 0, func(e squashfs.DirEntry) bool {
				if len(srcs) > 1 {
					if seen[e.Name] {
						return true
					}
					seen[e.Name] = true
				}
				list = append(list, fuse.DirEntry{Name: e.Name, Mode: typeBits(e.Type), Ino: img.ino(e.Ino)})
				return true
			})
			if err != nil {
				errno = img.fail("readdir /"+n.path, err)
			}
		}
		img.release()
		if errno != 0 && (img == n.img || (i == 0 && errno != syscall.ENOENT)) {
			return listDir{}, errno
		}
	}
	return newListDir(self, parent, list), 0
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
	xs, errno := n.visibleXattrs()
	if errno != 0 {
		return 0, errno
	}
	return getxattr(xs, attr, dest)
}

func (n *imageNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	xs, errno := n.visibleXattrs()
	if errno != 0 {
		return 0, errno
	}
	return listxattr(xs, dest)
}

// privilegeXattr is the attribute that carries file capabilities, which
// a superseded revision's files do not get (like setuid).
const privilegeXattr = "security.capability"

// visibleXattrs is xattrList without the file capabilities of a
// superseded revision.
func (n *imageNode) visibleXattrs() ([]squashfs.Xattr, syscall.Errno) {
	xs, errno := n.xattrList()
	if errno != 0 || !n.img.superseded.Load() {
		return xs, errno
	}
	var out []squashfs.Xattr
	for _, x := range xs {
		if x.Name != privilegeXattr {
			out = append(out, x)
		}
	}
	return out, 0
}

// xattrList returns the node's extended attributes, read from the image
// once: the kernel does not cache them, and ls -l asks for
// security.selinux of every entry every time.
func (n *imageNode) xattrList() ([]squashfs.Xattr, syscall.Errno) {
	if xs := n.xattrs.Load(); xs != nil {
		return *xs, 0
	}
	r, errno := n.img.acquire()
	if errno != 0 {
		return nil, errno
	}
	defer n.img.release()
	xs, err := r.Xattrs(n.inode(r))
	if err != nil {
		return nil, n.img.fail("xattrs /"+n.path, err)
	}
	n.xattrs.Store(&xs)
	return xs, 0
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
