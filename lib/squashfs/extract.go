package squashfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// ExtractOptions configures Extract.
type ExtractOptions struct {
	// Path selects the subtree to extract, relative to the image root;
	// e.g. "out/lib". Empty means the whole image.
	Path string
	// Jobs is the number of files written in parallel; 0 means
	// GOMAXPROCS.
	Jobs int
	// Log receives a line for everything that could not be restored
	// as it is in the image (device nodes when not root, xattrs the
	// destination refuses). Nil discards them.
	Log *log.Logger
}

// Extract writes the image (or the subtree opts.Path) to dst, as
// "unsquashfs -d dst" does: regular files (holes where the image has
// sparse blocks), directories, symlinks, hard links as hard links, fifos
// and sockets, and device nodes when running as root. It restores
// permission bits including setuid, setgid and sticky, owners when root,
// mtimes and xattrs (those the destination file system and our privileges
// allow; the rest are logged). dst is created if needed (its parent must
// exist) and gets the attributes of the extracted root; entries must not
// exist in it yet: Extract never replaces a file.
//
// Files are written by a pool of opts.Jobs workers. Directory attributes
// are applied last, deepest first, so that restrictive modes and mtimes
// survive the writes into them.
func (r *Reader) Extract(dst string, opts ExtractOptions) error {
	root, err := r.LookupPath(opts.Path)
	if err != nil {
		return fmt.Errorf("squashfs: extract: %w", err)
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	g, ctx := errgroup.WithContext(context.Background())
	x := &extractor{
		r:       r,
		log:     opts.Log,
		ctx:     ctx,
		files:   make(chan fileJob, 256),
		uid:     os.Geteuid(),
		gid:     os.Getegid(),
		umask:   umask(),
		srcFd:   -1,
		links:   make(map[Inode]string),
		visited: make(map[Inode]bool),
	}
	if r.file != nil {
		x.srcFd = int(r.file.Fd()) // once: each Fd call costs fcntl calls
	}
	// The walk creates directories, symlinks and special files and queues
	// regular files for the workers. The queue lets it run ahead, so a
	// worker that finishes a file finds the next one waiting.
	for range jobs {
		g.Go(func() error {
			for job := range x.files {
				if ctx.Err() != nil {
					continue // drain: another worker failed
				}
				if err := x.writeFile(job.path, job.in); err != nil {
					return fmt.Errorf("squashfs: extract %s: %w", job.path, err)
				}
			}
			return nil
		})
	}
	walkErr := x.extract(dst, root, true)
	close(x.files)
	if err := g.Wait(); err != nil {
		return err
	}
	if walkErr != nil {
		return walkErr
	}
	for _, l := range x.pendingLinks {
		if err := os.Link(l.oldname, l.newname); err != nil {
			return fmt.Errorf("squashfs: extract: %w", err)
		}
	}
	// Children before parents: a directory's mtime must be set after
	// everything is created in it, and a read-only mode after writes.
	for _, d := range slices.Backward(x.dirs) {
		in, err := x.r.inode(d.ino)
		if err != nil {
			return fmt.Errorf("squashfs: extract %s: %w", d.path, err)
		}
		if err := x.setAttrs(d.path, in, nil, true); err != nil {
			return err
		}
	}
	return nil
}

type extractor struct {
	r        *Reader
	log      *log.Logger
	ctx      context.Context
	files    chan fileJob // regular files for the workers
	srcFd    int          // the image's descriptor for copy_file_range, or -1
	uid, gid int          // ours: owners equal to them need no chown
	umask    fs.FileMode  // of the process; all bits when unknown

	// Touched by the walking goroutine only.
	links        map[Inode]string // first path of every multiply linked inode
	pendingLinks []pendingLink    // made after the files they point at
	dirs         []extractedDir   // in creation (pre-)order
	visited      map[Inode]bool   // directories seen: a corrupt image may loop
}

type fileJob struct {
	path string
	in   *inodeData
}

type pendingLink struct{ oldname, newname string }

type extractedDir struct {
	path string
	ino  Inode
}

func (x *extractor) logf(format string, args ...any) {
	if x.log != nil {
		x.log.Printf(format, args...)
	}
}

// extract creates the entry ino at path. The top entry, when a
// directory, may exist already.
func (x *extractor) extract(path string, ino Inode, top bool) error {
	if err := x.ctx.Err(); err != nil {
		return err // a worker failed: its error is the one to report
	}
	in, err := x.r.inode(ino)
	if err != nil {
		return fmt.Errorf("squashfs: extract %s: %w", path, err)
	}
	mode := in.mode()
	if mode.IsDir() {
		return x.extractDir(path, in, top)
	}
	if in.nlink > 1 {
		if first, ok := x.links[ino]; ok {
			x.pendingLinks = append(x.pendingLinks, pendingLink{first, path})
			return nil
		}
	}
	if mode&fs.ModeDevice != 0 && x.uid != 0 {
		x.logf("squashfs: extract %s: device node %v skipped: not root", path, mode)
		return nil
	}
	if in.nlink > 1 {
		x.links[ino] = path
	}
	switch mode.Type() {
	case 0:
		select {
		case x.files <- fileJob{path, in}:
			return nil
		case <-x.ctx.Done():
			return x.ctx.Err()
		}
	case fs.ModeSymlink:
		target, err := x.r.Readlink(ino)
		if err != nil {
			return fmt.Errorf("squashfs: extract %s: %w", path, err)
		}
		if err := os.Symlink(target, path); err != nil {
			return fmt.Errorf("squashfs: extract: %w", err)
		}
	default: // device, fifo, socket
		st, err := x.r.stat(in)
		if err != nil {
			return fmt.Errorf("squashfs: extract %s: %w", path, err)
		}
		if err := mknod(path, mode, st.Rdev); err != nil {
			return fmt.Errorf("squashfs: extract %s: mknod: %w", path, err)
		}
	}
	return x.setAttrs(path, in, nil, true)
}

func (x *extractor) extractDir(path string, in *inodeData, top bool) error {
	if x.visited[in.ref] {
		return fmt.Errorf("squashfs: extract %s: directory inode %v appears twice in the tree", path, in.ref)
	}
	x.visited[in.ref] = true
	// 0700 until setAttrs: we must be able to write into it meanwhile,
	// and no setgid bit may hand its group to what we create in it.
	if err := os.Mkdir(path, 0o700); err != nil {
		fi, serr := os.Lstat(path)
		if !top || serr != nil || !fi.IsDir() {
			return fmt.Errorf("squashfs: extract: %w", err)
		}
		if fi.Mode()&fs.ModeSetgid != 0 {
			if err := os.Chmod(path, 0o700); err != nil {
				return fmt.Errorf("squashfs: extract: %w", err)
			}
		}
	}
	x.dirs = append(x.dirs, extractedDir{path, in.ref})
	l, err := x.r.listing(in.ref)
	if err != nil {
		return fmt.Errorf("squashfs: extract %s: %w", path, err)
	}
	for _, e := range l.entries {
		if err := x.extract(filepath.Join(path, e.Name), e.Inode, false); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes the regular file in to path and sets its attributes
// through the open descriptor.
func (x *extractor) writeFile(path string, in *inodeData) error {
	// Parsed here rather than through the cache: each file is read
	// once, and the cache would only churn.
	fi, err := x.r.parseBlockList(in)
	if err != nil {
		return err
	}
	// Create the file with its final mode when the umask leaves that
	// intact and chown won't touch it (no setuid/setgid bits): it saves a
	// chmod per file. The descriptor stays writable whatever the mode.
	perm, chmod := fs.FileMode(0o600), true
	if m := in.mode(); m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == 0 && m.Perm()&^x.umask == m.Perm() {
		perm, chmod = m.Perm(), false
	}
	f, err := createOut(path, perm)
	if err != nil {
		return err
	}
	err = x.r.writeData(f, fi, x.srcFd)
	if err == nil {
		err = x.setAttrs(path, in, f, chmod)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeData writes the content of fi to f, leaving holes for sparse
// blocks. Runs of uncompressed blocks are copied in the kernel when the
// image is a file.
func (r *Reader) writeData(f *outFile, fi *fileInfo, srcFd int) error {
	bs := int64(r.sb.BlockSize)
	var out, src *[]byte
	defer func() {
		for _, b := range []*[]byte{out, src} {
			if b != nil {
				r.bufs.Put(b)
			}
		}
	}()
	written := int64(0) // end of the data written so far
	pos := int64(0)     // image offset of block i
	if len(fi.marks) > 0 {
		pos = fi.marks[0]
	}
	for i := 0; i < len(fi.sizes); {
		w := fi.sizes[i]
		l := int64(w & blockSizeMask)
		off := int64(i) * bs
		blockLen := min(bs, fi.size-off)
		switch {
		case l == 0: // sparse: leave a hole
			i++
		case w&dataUncomp != 0:
			// Uncompressed blocks lie back to back: copy the whole run.
			n := int64(0)
			for ; i < len(fi.sizes) && fi.sizes[i]&dataUncomp != 0 && fi.sizes[i]&blockSizeMask != 0; i++ {
				l := int64(fi.sizes[i] & blockSizeMask)
				if want := min(bs, fi.size-int64(i)*bs); l != want {
					return fmt.Errorf("block %d: stored %d bytes, want %d", i, l, want)
				}
				n += l
			}
			if err := r.copyRange(f, off, srcFd, pos, n, &src); err != nil {
				return fmt.Errorf("block %d: %w", off/bs, err)
			}
			pos += n
			written = off + n
			continue
		default:
			if out == nil {
				out, src = r.bufs.Get().(*[]byte), r.bufs.Get().(*[]byte)
			}
			o := (*out)[:blockLen]
			if err := r.inflateBlockInto(o, pos, l, (*src)[:l]); err != nil {
				return fmt.Errorf("block %d: %w", i, err)
			}
			if _, err := f.WriteAt(o, off); err != nil {
				return err
			}
			written = off + blockLen
			i++
		}
		pos += l
	}
	if tail := fi.size % bs; fi.frag != fragmentNone && tail > 0 {
		data, err := r.fragment(fi.frag)
		if err != nil {
			return err
		}
		if uint64(fi.fragOffset)+uint64(tail) > uint64(len(data)) {
			return fmt.Errorf("fragment %d: tail of %d bytes at offset %d, the block has %d", fi.frag, tail, fi.fragOffset, len(data))
		}
		if _, err := f.WriteAt(data[fi.fragOffset:int64(fi.fragOffset)+tail], fi.size-tail); err != nil {
			return err
		}
		written = fi.size
	}
	if written < fi.size {
		return f.Truncate(fi.size)
	}
	return nil
}

// inflateBlockInto is inflateBlock with a caller-provided source buffer.
func (r *Reader) inflateBlockInto(out []byte, pos, l int64, src []byte) error {
	if err := r.readFull(src, pos); err != nil {
		return err
	}
	m, err := r.dec.decompress(out, src)
	if err != nil {
		return fmt.Errorf("block at %#x: %w", pos, err)
	}
	if m != len(out) {
		return fmt.Errorf("block at %#x inflates to %d bytes, want %d", pos, m, len(out))
	}
	return nil
}

// copyRange copies n image bytes at pos to f at off: in the kernel when
// the image is a file (srcFd is its descriptor, else -1), else through a
// buffer.
func (r *Reader) copyRange(f *outFile, off int64, srcFd int, pos, n int64, buf **[]byte) error {
	if pos < 0 || n > r.size-pos {
		return fmt.Errorf("%d bytes at %#x: beyond the image end", n, pos)
	}
	if srcFd >= 0 {
		done, err := f.CopyFrom(srcFd, pos, off, n)
		if err != nil {
			return err
		}
		off, pos, n = off+done, pos+done, n-done
	}
	if n == 0 {
		return nil
	}
	if *buf == nil {
		*buf = r.bufs.Get().(*[]byte)
	}
	b := **buf
	for n > 0 {
		k := min(n, int64(len(b)))
		if err := r.readFull(b[:k], pos); err != nil {
			return err
		}
		if _, err := f.WriteAt(b[:k], off); err != nil {
			return err
		}
		off, pos, n = off+k, pos+k, n-k
	}
	return nil
}

// setAttrs applies owner, mode (if chmod), xattrs and mtime of in to
// path, in that order: chown clears setuid/setgid bits and
// security.capability, so those come after it. f, when set, is path
// opened: its descriptor is used instead of the path.
func (x *extractor) setAttrs(path string, in *inodeData, f *outFile, chmod bool) error {
	st, err := x.r.stat(in)
	if err != nil {
		return fmt.Errorf("squashfs: extract %s: %w", path, err)
	}
	var xattrs []Xattr
	if in.xattr != inodeNoXattr {
		if xattrs, err = x.r.xattrs(in.xattr); err != nil {
			return fmt.Errorf("squashfs: extract %s: xattrs: %w", path, err)
		}
	}
	wrap := func(err error) error { return fmt.Errorf("squashfs: extract %s: %w", path, err) }
	symlink := st.Mode.Type() == fs.ModeSymlink
	if x.uid == 0 && (int(st.Uid) != x.uid || int(st.Gid) != x.gid) {
		if f != nil {
			err = f.Chown(int(st.Uid), int(st.Gid))
		} else {
			err = os.Lchown(path, int(st.Uid), int(st.Gid))
		}
		if err != nil {
			return wrap(err)
		}
	}
	if chmod && !symlink {
		if f != nil {
			err = f.Chmod(st.Mode)
		} else {
			err = os.Chmod(path, st.Mode)
		}
		if err != nil {
			return wrap(err)
		}
	}
	for _, xa := range xattrs {
		if f != nil {
			err = f.Setxattr(xa)
		} else {
			err = lsetxattr(path, xa)
		}
		if err != nil {
			if !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, errors.ErrUnsupported) {
				return wrap(fmt.Errorf("setxattr %s: %w", xa.Name, err))
			}
			x.logf("squashfs: extract %s: xattr %s not restored: %v", path, xa.Name, err)
		}
	}
	if f != nil {
		err = f.SetMtime(st.Mtime)
	} else {
		err = lsetMtime(path, st.Mtime)
	}
	if err != nil {
		return wrap(err)
	}
	return nil
}

// umask returns the process's file mode creation mask, from
// /proc/self/status: the umask system call can only read it by changing
// it, which would race with other goroutines creating files.
func umask() fs.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o7777
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err == nil {
				return fs.FileMode(m)
			}
		}
	}
	return 0o7777
}
