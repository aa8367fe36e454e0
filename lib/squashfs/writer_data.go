package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// writeData stores the contents of the regular files from files, from the
// end of the superblock on. Blocks that are holes in the source or all
// zeros become sparse blocks: size 0, nothing stored.
func (w *writer) writeData(files <-chan *srcNode) error {
	if w.codec != nil {
		return w.writeCompressed(files)
	}
	return w.writePlain(files)
}

// imageOut buffers sequential writes to the image. A full buffer is
// written by a goroutine while the other buffer fills, so reading the
// sources and writing the image overlap.
type imageOut struct {
	f      *os.File
	buf    []byte
	off    uint64      // image offset of buf[0]
	spare  chan []byte // buffers the writing goroutine is done with
	todo   chan outChunk
	done   chan struct{}         // closed when the writing goroutine ends
	err    atomic.Pointer[error] // the first write error
	closed bool
}

type outChunk struct {
	b   []byte
	off uint64
}

func newImageOut(f *os.File, off uint64, size int) *imageOut {
	o := &imageOut{
		f:     f,
		buf:   make([]byte, 0, size),
		off:   off,
		spare: make(chan []byte, 1),
		todo:  make(chan outChunk),
		done:  make(chan struct{}),
	}
	o.spare <- make([]byte, 0, size)
	go func() {
		defer close(o.done)
		for c := range o.todo {
			if o.err.Load() == nil {
				if _, err := f.WriteAt(c.b, int64(c.off)); err != nil {
					err = fmt.Errorf("write %s: %w", f.Name(), err)
					o.err.Store(&err)
				}
			}
			o.spare <- c.b[:0]
		}
	}()
	return o
}

// pos returns the image offset of the next byte.
func (o *imageOut) pos() uint64 { return o.off + uint64(len(o.buf)) }

// flush hands the buffer to the writing goroutine and takes the other. It
// returns the error of an earlier write, if any.
func (o *imageOut) flush() error {
	if err := o.err.Load(); err != nil {
		return *err
	}
	if len(o.buf) == 0 {
		return nil
	}
	o.todo <- outChunk{o.buf, o.off}
	o.off += uint64(len(o.buf))
	o.buf = <-o.spare
	return nil
}

// close writes what is buffered, stops the writing goroutine and returns
// the first error.
func (o *imageOut) close() error {
	if o.closed {
		return errors.New("image output closed twice")
	}
	o.closed = true
	o.flush()
	close(o.todo)
	<-o.done
	if err := o.err.Load(); err != nil {
		return *err
	}
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

// hole reports whether [off, off+n) lies in a hole. It forgets the data
// regions before off, so calls must come with non-decreasing off.
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
// file's last block is just shorter. Data is read straight into the
// output buffer.
//
// (copy_file_range(2) into the image was slower on ext4 and tmpfs: the
// kernel splices page by page, and all-zero blocks still need reading.)
func (w *writer) writePlain(files <-chan *srcNode) error {
	o := newImageOut(w.out, superblockSize, max(4<<20, 2*int(w.blockSize)))
	zero := make([]byte, w.blockSize)
	for n := range files {
		if err := w.plainFile(o, n, zero); err != nil {
			if cerr := o.close(); cerr != nil {
				return cerr // the cause
			}
			return err
		}
	}
	if err := o.close(); err != nil {
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
		// Read as many data blocks as the buffer has room for (at least
		// one) with one call, then drop the all-zero ones. The room is
		// fixed first: hole must not be asked about a block twice.
		room := int64(cap(o.buf)-len(o.buf)) / bs
		if room == 0 {
			room = int64(cap(o.buf)) / bs // space flushes
		}
		run := 1
		for i+run < len(n.blocks) && int64(run) < room && !f.hole(off+int64(run)*bs, min(bs, size-off-int64(run)*bs)) {
			run++
		}
		length := min(int64(run)*bs, size-off)
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
