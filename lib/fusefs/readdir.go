package fusefs

import (
	"context"
	"hash/fnv"
	"slices"
	"sort"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Directories are read without OPENDIR requests where the kernel
// supports that (FUSE 7.29, Linux 5.1): the first OPENDIR is answered
// with ENOSYS, after which the kernel opens directories by itself, keeps
// their listings in its cache (FOPEN_CACHE_DIR is its default then) and
// sends READDIR(PLUS) without a handle. Walking a package then costs no
// round trips once its listings are cached, where it cost an OPENDIR
// and a RELEASEDIR per directory before.
//
// Each handle-less READDIR is answered from a listing made for it
// (the node's OpendirHandle, as for an OPENDIR), so the offset that the
// kernel passes on from one READDIR to the next must mean the same in
// the next listing, even across a rescan that changed the directory. An
// entry's offset is therefore a hash of its name, and a listing is sorted
// by it: reading on after a rescan skips no name that is still there and
// repeats none, as POSIX asks of a directory that changes while it is
// read.

// rawFS is the node file system with handle-less directory reads.
type rawFS struct {
	fuse.RawFileSystem
	srv *Server
}

func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if r.srv.fuse.KernelSettings().Flags64()&fuse.CAP_NO_OPENDIR_SUPPORT != 0 {
		return fuse.ENOSYS
	}
	return r.RawFileSystem.OpenDir(cancel, in, out)
}

func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(cancel, in, out, r.RawFileSystem.ReadDir)
}

func (r *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(cancel, in, out, r.RawFileSystem.ReadDirPlus)
}

// readDir answers a READDIR(PLUS) without a handle by opening one for it.
func (r *rawFS) readDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList,
	read func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	if in.Fh != 0 {
		return read(cancel, in, out)
	}
	var open fuse.OpenOut
	if st := r.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: in.InHeader, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}, &open); !st.Ok() {
		return st
	}
	withFh := *in
	withFh.Fh = open.Fh
	st := read(cancel, &withFh, out)
	r.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: open.Fh})
	return st
}

// Offsets of "." and ".."; names hash to offsets above them.
const (
	dotOff    = 1
	dotDotOff = 2
	firstOff  = 3
)

// nameOff is the offset of the entry after name: a hash of the name,
// below 1<<62 (the kernel's directory position is a signed 64-bit
// number) and above the offsets of "." and "..". Two names of a
// directory with the same 62-bit hash are a risk of one in 2^62/n² for n
// names: a reader resuming between the two would miss the second.
func nameOff(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()>>2 + firstOff
}

// listCache keeps a directory node's listing, made for one tree: the
// kernel reads a large directory in several READDIRs, each answered from
// a listing of its own (see rawFS), and a listing of /ro/lib with a
// thousand packages is worth making once, not once per READDIR.
type listCache struct {
	p atomic.Pointer[cachedListing]
}

type cachedListing struct {
	t       *tree
	entries []fuse.DirEntry // as in listDir; shared by the listDirs, which only read it
}

// get returns a listing for t: the cached one, or a new one from build
// (returning a listing as newListDir does), which is then cached.
func (c *listCache) get(t *tree, build func() (listDir, syscall.Errno)) (listDir, syscall.Errno) {
	if cl := c.p.Load(); cl != nil && cl.t == t {
		return listDir{entries: cl.entries}, 0
	}
	ld, errno := build()
	if errno == 0 {
		c.p.Store(&cachedListing{t: t, entries: ld.entries})
	}
	return ld, errno
}

// listDir is an open directory: its listing, taken when it was opened,
// ordered by offset.
type listDir struct {
	entries []fuse.DirEntry
	next    int
}

var (
	_ fs.FileReaddirenter = (*listDir)(nil)
	_ fs.FileSeekdirer    = (*listDir)(nil)
	_ fs.FileReleasedirer = (*listDir)(nil)
)

// newListDir makes the listing of dot, dotdot and entries (in any
// order), each with its offset.
func newListDir(selfIno, parentIno uint64, entries []fuse.DirEntry) listDir {
	for i := range entries {
		entries[i].Off = nameOff(entries[i].Name)
	}
	slices.SortFunc(entries, func(a, b fuse.DirEntry) int {
		switch {
		case a.Off < b.Off:
			return -1
		case a.Off > b.Off:
			return 1
		}
		return 0
	})
	list := make([]fuse.DirEntry, 0, len(entries)+2)
	list = append(list,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: selfIno, Off: dotOff},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parentIno, Off: dotDotOff})
	return listDir{entries: append(list, entries...)}
}

func (d *listDir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if d.next >= len(d.entries) {
		return nil, 0
	}
	e := d.entries[d.next]
	d.next++
	return &e, 0
}

// Seekdir positions the listing after the entry with offset off, or
// where it would be.
func (d *listDir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.next = sort.Search(len(d.entries), func(i int) bool { return d.entries[i].Off > off })
	return 0
}

func (d *listDir) Releasedir(ctx context.Context, releaseFlags uint32) {}
