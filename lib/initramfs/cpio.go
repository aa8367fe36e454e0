package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
)

// cpioWriter writes the "newc" (SVR4, no checksum) cpio format the
// kernel unpacks into its rootfs
// (https://docs.kernel.org/driver-api/early-userspace/buffer-format.html).
// Every entry is owned by root, has mtime 0 and a sequential inode
// number, so the same input gives the same bytes.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	err error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1}
}

// cpioEntry is one archive member. Mode holds the file type bits as in
// stat(2) (S_IFREG, …) and the permissions.
type cpioEntry struct {
	Name         string // relative, no leading slash, e.g. "lib/modules"
	Mode         uint32
	Size         int64
	RMajor, RMin uint32 // for device nodes
}

const (
	sIFDIR  = 0o040000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	sIFCHR  = 0o020000
	cpioPad = 4
)

func (c *cpioWriter) header(e cpioEntry, nlink uint32) {
	if c.err != nil {
		return
	}
	ino := c.ino
	c.ino++
	if e.Name == "TRAILER!!!" {
		ino = 0
	}
	_, c.err = fmt.Fprintf(c.w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.Mode, 0, 0, nlink, 0, uint32(e.Size), 0, 0, e.RMajor, e.RMin, len(e.Name)+1, 0)
	if c.err != nil {
		return
	}
	c.write([]byte(e.Name))
	c.write([]byte{0})
	c.pad(110 + len(e.Name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % cpioPad; r != 0 {
		c.write(make([]byte, cpioPad-r))
	}
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) {
	c.header(cpioEntry{Name: name, Mode: sIFDIR | uint32(perm.Perm())}, 2)
}

// File adds a regular file with the contents of r, which must be size
// bytes long.
func (c *cpioWriter) File(name string, perm fs.FileMode, size int64, r io.Reader) {
	if size > 1<<32-1 {
		c.err = fmt.Errorf("%s: too large for cpio (%d bytes)", name, size)
		return
	}
	c.header(cpioEntry{Name: name, Mode: sIFREG | uint32(perm.Perm()), Size: size}, 1)
	if c.err != nil {
		return
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s: size changed while archiving (%d, want %d bytes)", name, n, size)
	}
	if err != nil {
		c.err = err
		return
	}
	c.pad(int(size % cpioPad))
}

// Symlink adds a symbolic link to target.
func (c *cpioWriter) Symlink(name, target string) {
	c.header(cpioEntry{Name: name, Mode: sIFLNK | 0o777, Size: int64(len(target))}, 1)
	c.write([]byte(target))
	c.pad(len(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) {
	c.header(cpioEntry{Name: name, Mode: sIFCHR | uint32(perm.Perm()), RMajor: major, RMin: minor}, 1)
}

// Close writes the trailer and flushes; it does not close the
// underlying writer.
func (c *cpioWriter) Close() error {
	c.header(cpioEntry{Name: "TRAILER!!!"}, 1)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
