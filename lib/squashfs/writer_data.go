package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// writeData stores the contents of every regular file, in walk order,
// from the end of the superblock on. Blocks that are holes in the source
// or all zeros become sparse blocks: size 0, nothing stored.
func (w *writer) writeData() error {
	if w.codec != nil {
		return w.writeCompressed()
	}
	return w.writePlain()
}

// imageOut buffers sequential writes to the image.
type imageOut struct {
	f   *os.File
	buf []byte
	off uint64 // image offset of buf[0]
}

func newImageOut(f *os.File, off uint64, size int) *imageOut {
	return &imageOut{f: f, buf: make([]byte, 0, size), off: off}
}

// pos returns the image offset of the next byte.
func (o *imageOut) pos() uint64 { return o.off + uint64(len(o.buf)) }

func (o *imageOut) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	if _, err := o.f.WriteAt(o.buf, int64(o.off)); err != nil {
		return fmt.Errorf("write %s: %w", o.f.Name(), err)
	}
	o.off += uint64(len(o.buf))
	o.buf = o.buf[:0]
	return nil
}

// space returns room for n bytes at the end of the buffer, for the caller
// to fill and commit.
func (o *imageOut) space(n int) ([]byte, error) {
	if cap(o.buf)-len(o.buf) < n {
		if err := o.flush(); err != nil {
			return nil, err
		}
	}
	return o.buf[len(o.buf) : len(o.buf)+n], nil
}

func (o *imageOut) commit(n int) { o.buf = o.buf[:len(o.buf)+n] }

func (o *imageOut) write(b []byte) error {
	s, err := o.space(len(b))
	if err != nil {
		return err
	}
	o.commit(copy(s, b))
	return nil
}

// srcFile is a regular file being read.
type srcFile struct {
	fd   int
	path string
	data [][2]int64 // the data (non-hole) regions, if the file may have holes
}

func openSrc(n *srcNode) (*srcFile, error) {
	fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", n.path, err)
	}
	f := &srcFile{fd: fd, path: n.path}
	if n.holes {
		if err := f.findData(int64(n.size)); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

func (f *srcFile) close() { unix.Close(f.fd) }

// findData lists the file's data regions with SEEK_DATA and SEEK_HOLE, so
// holes are neither read nor stored.
func (f *srcFile) findData(size int64) error {
	for off := int64(0); off < size; {
		d, err := unix.Seek(f.fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole after off
		}
		if err != nil {
			// No SEEK_DATA on this file system: all data.
			f.data = append(f.data[:0], [2]int64{0, size})
			return nil
		}
		h, err := unix.Seek(f.fd, d, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek %s: %w", f.path, err)
		}
		f.data = append(f.data, [2]int64{d, h})
		off = h
	}
	if f.data == nil {
		f.data = [][2]int64{} // all hole
	}
	return nil
}

// hole reports whether [off, off+n) lies in a hole. Calls must come with
// increasing off.
func (f *srcFile) hole(off, n int64) bool {
	if f.data == nil {
		return false
	}
	for len(f.data) > 0 && f.data[0][1] <= off {
		f.data = f.data[1:]
	}
	return len(f.data) == 0 || f.data[0][0] >= off+n
}

// read fills b from offset off.
func (f *srcFile) read(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(f.fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.path, err)
		}
		if n == 0 {
			return fmt.Errorf("read %s: %w (file shrank while writing the image)", f.path, io.ErrUnexpectedEOF)
		}
		b = b[n:]
		off += int64(n)
	}
	return nil
}

func allZero(b, zero []byte) bool {
	return len(b) == 0 || b[0] == 0 && b[len(b)-1] == 0 && bytes.Equal(b, zero[:len(b)])
}

// writePlain stores every block uncompressed and uses no fragments: a
// file's last block is just shorter. Data goes from the source straight
// into the output buffer.
func (w *writer) writePlain() error {
	o := newImageOut(w.out, superblockSize, max(4<<20, 2*int(w.blockSize)))
	zero := make([]byte, w.blockSize)
	for _, n := range w.files {
		if err := w.plainFile(o, n, zero); err != nil {
			return err
		}
	}
	if err := o.flush(); err != nil {
		return err
	}
	w.dataEnd = o.pos()
	return nil
}

func (w *writer) plainFile(o *imageOut, n *srcNode, zero []byte) error {
	f, err := openSrc(n)
	if err != nil {
		return err
	}
	defer f.close()
	bs := int64(w.blockSize)
	size := int64(n.size)
	n.blocks = make([]uint32, (size+bs-1)/bs)
	started := false
	for i := 0; i < len(n.blocks); {
		off := int64(i) * bs
		if f.hole(off, min(bs, size-off)) {
			n.sparse += uint64(min(bs, size-off))
			i++
			continue
		}
		// Read as many blocks as fit the buffer (at least one) with one
		// call, then drop the all-zero ones.
		run := 1
		for i+run < len(n.blocks) && int64(run+1)*bs <= int64(cap(o.buf)) && !f.hole(off+int64(run)*bs, min(bs, size-off-int64(run)*bs)) {
			run++
		}
		length := min(int64(run)*bs, size-off)
		if cap(o.buf)-len(o.buf) < int(length) {
			// Read fewer blocks rather than flush a mostly empty buffer.
			if free := int64(cap(o.buf)-len(o.buf)) / bs; free > 0 {
				run, length = int(free), free*bs
			}
		}
		s, err := o.space(int(length))
		if err != nil {
			return err
		}
		if err := f.read(s, off); err != nil {
			return err
		}
		kept := 0
		for k := 0; k < run; k++ {
			b := s[int64(k)*bs : min(int64(k+1)*bs, length)]
			if allZero(b, zero) {
				n.sparse += uint64(len(b))
				continue
			}
			if !started {
				n.start = o.pos() + uint64(kept)
				started = true
			}
			kept += copy(s[kept:], b)
			n.blocks[i+k] = uint32(len(b)) | dataUncomp
		}
		o.commit(kept)
		i += run
	}
	return nil
}
