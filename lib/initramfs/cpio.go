package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"

	"github.com/u-root/u-root/pkg/cpio"
)

// cpioWriter writes the "newc" (SVR4, no checksum) cpio format the
// kernel unpacks into its rootfs
// (https://docs.kernel.org/driver-api/early-userspace/buffer-format.html)
// with u-root's pkg/cpio, the writer u-root's own initramfs builder
// uses. What it adds is the determinism: every entry is owned by root,
// has mtime 0 and a sequential inode number, so the same input gives the
// same bytes; and the first error sticks, so that writeArchive checks
// once per entry.
type cpioWriter struct {
	w   *bufio.Writer
	rw  cpio.RecordWriter
	ino uint64
	err error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	bw := bufio.NewWriterSize(w, 1<<20)
	return &cpioWriter{w: bw, rw: cpio.Newc.Writer(bw), ino: 1}
}

// write writes r with the next inode number, root's ownership and mtime
// 0 (cpio.MakeReproducible would number inodes by a hash of the name).
func (c *cpioWriter) write(r cpio.Record, nlink uint64) {
	if c.err != nil {
		return
	}
	r.Ino, r.NLink, r.UID, r.GID, r.MTime = c.ino, nlink, 0, 0, 0
	c.ino++
	c.err = c.rw.WriteRecord(r)
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) {
	c.write(cpio.Directory(name, uint64(perm.Perm())), 2)
}

// File adds a regular file with the contents of r, which must be size
// bytes long: a file that grew or shrank meanwhile is an error.
func (c *cpioWriter) File(name string, perm fs.FileMode, size int64, r io.ReaderAt) {
	if size > 1<<32-1 {
		c.err = fmt.Errorf("%s: too large for cpio (%d bytes)", name, size)
		return
	}
	// Wrapped: the record writer closes a ReaderAt that is a Closer.
	c.write(cpio.Record{ReaderAt: readerAt{r}, Info: cpio.Info{Name: name, Mode: cpio.S_IFREG | uint64(perm.Perm()), FileSize: uint64(size)}}, 1)
}

type readerAt struct{ io.ReaderAt }

// Symlink adds a symbolic link to target.
func (c *cpioWriter) Symlink(name, target string) {
	c.write(cpio.Symlink(name, target), 1)
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) {
	c.write(cpio.CharDev(name, uint64(perm.Perm()), uint64(major), uint64(minor)), 1)
}

// Close writes the trailer and flushes; it does not close the
// underlying writer.
func (c *cpioWriter) Close() error {
	if c.err != nil {
		return c.err
	}
	if err := cpio.WriteTrailer(c.rw); err != nil {
		return err
	}
	return c.w.Flush()
}
