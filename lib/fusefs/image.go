package fusefs

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"distri.dev/distri/lib/squashfs"
)

// image is one package image in the store. It is opened on first access
// below /ro/<full>/, shared by every node of the package, and closed once
// the package has left the store and nothing uses it any more.
type image struct {
	srv  *Server
	full string // e.g. bash-amd64-5.2.15-3
	path string // e.g. /roimg/bash-amd64-5.2.15-3.squashfs
	size int64
	id   fileID
	// gen makes the inode numbers of this image's nodes unique for the
	// life of the daemon: gen<<32 | the squashfs inode number. A package
	// removed and installed again gets a new gen, so the kernel never
	// mixes up the two.
	gen uint64
	// superseded is set while a newer revision of the same package
	// (<name>-<arch>) is in the store: its files then lose the setuid
	// and setgid bits and file capabilities (see doc.go, "Setuid").
	superseded atomic.Bool

	mu      sync.Mutex
	f       *os.File
	r       *squashfs.Reader
	err     error // opening failed: the package answers EIO
	users   int   // in-flight operations and open files
	removed bool  // the package left the store
	closed  bool
	logged  bool // a failure of this image was logged

	kmMu    sync.Mutex
	kmTried bool
	km      *kernelMount // nil when not mounted (not tried, failed or disabled)
}

// fileID identifies the image file, so a rescan notices an image replaced
// under the same name.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func (img *image) rootIno() uint64         { return img.gen << 32 }
func (img *image) ino(sqIno uint32) uint64 { return img.gen<<32 | uint64(sqIno) }
func (img *image) String() string          { return img.full }
func (img *image) opened() bool            { img.mu.Lock(); defer img.mu.Unlock(); return img.r != nil }
func (img *image) logf(f string, a ...any) {
	img.srv.logf("package %s: "+f, append([]any{img.full}, a...)...)
}
func (img *image) debugf(f string, a ...any) {
	img.srv.debugf("package %s: "+f, append([]any{img.full}, a...)...)
}

// acquire returns the image's reader, opening the image on first use, and
// counts a user; release must follow. A removed and closed image answers
// ENOENT, like a deleted directory; a broken one EIO.
func (img *image) acquire() (*squashfs.Reader, syscall.Errno) {
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return nil, syscall.ENOENT
	}
	if img.err != nil {
		return nil, syscall.EIO
	}
	if img.r == nil {
		f, err := os.Open(img.path)
		if err == nil {
			img.r, err = squashfs.NewReader(f)
			if err != nil {
				f.Close()
			}
		}
		if err != nil {
			img.err = err
			img.failLocked("open", err)
			return nil, syscall.EIO
		}
		img.f = f
		img.debugf("opened %s", img.path)
	}
	img.users++
	return img.r, 0
}

func (img *image) release() {
	img.mu.Lock()
	defer img.mu.Unlock()
	img.users--
	if img.users < 0 {
		panic(fmt.Sprintf("image %s: users underflow", img.full))
	}
	if img.users == 0 && img.removed {
		img.closeLocked()
	}
}

// remove marks the image as gone from the store. It closes now, or when
// its last user (an open file, e.g.) is done.
func (img *image) remove() {
	img.mu.Lock()
	defer img.mu.Unlock()
	img.removed = true
	if img.users == 0 {
		img.closeLocked()
	}
}

func (img *image) closeLocked() {
	if img.closed {
		return
	}
	img.closed = true
	if img.f != nil {
		img.f.Close()
	}
	img.kmMu.Lock()
	if img.km != nil {
		img.km.close()
		img.km = nil
	}
	img.kmMu.Unlock()
	img.debugf("closed")
}

// fail logs err for the image once and returns EIO: a corrupt image makes
// only its own package fail, and the log is not flooded.
func (img *image) fail(op string, err error) syscall.Errno {
	img.mu.Lock()
	defer img.mu.Unlock()
	img.failLocked(op, err)
	return syscall.EIO
}

func (img *image) failLocked(op string, err error) {
	if img.logged {
		return
	}
	img.logged = true
	img.logf("%s: %v (answering EIO for this package)", op, err)
}

// kernelFile opens p (a path inside the image, e.g. out/bin/bash) on the
// kernel's own squashfs mount of the image, mounting it on first use. ok
// is false when the image cannot be mounted so; callers then read through
// the squashfs reader. The caller holds a user of img.
func (img *image) kernelFile(p string) (fd int, ok bool) {
	img.kmMu.Lock()
	if !img.kmTried {
		img.kmTried = true
		// img.f is set before the caller's acquire returned and stays
		// until the last user is gone: no need for img.mu (which
		// closeLocked holds while taking kmMu).
		km, err := mountKernel(img.f, img.full)
		if err != nil {
			img.logf("kernel mount for passthrough: %v (reading through the daemon instead)", err)
		} else {
			img.km = km
			img.debugf("mounted for passthrough")
		}
	}
	km := img.km
	img.kmMu.Unlock()
	if km == nil {
		return -1, false
	}
	fd, err := km.open(p)
	if err != nil {
		img.debugf("open %s on the kernel mount: %v", p, err)
		return -1, false
	}
	return fd, true
}
