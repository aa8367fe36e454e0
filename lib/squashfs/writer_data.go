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

// imageOut buffers sequential writes to the image. A full buffer is
// written by a goroutine while the other buffer fills, so reading the
// sources and writing the image overlap.
type imageOut struct {
	f     *os.File
	buf   []byte
	off   uint64      // image offset of buf[0]
	spare chan []byte // buffers the writing goroutine is done with
	todo  chan outChunk
	done  chan error // the writing goroutine's result, after todo is closed
	err   error      // first error, once known
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
		done:  make(chan error, 1),
	}
	o.spare <- make([]byte, 0, size)
	go func() {
		var err error
		for c := range o.todo {
			if err == nil {
				if _, werr := f.WriteAt(c.b, int64(c.off)); werr != nil {
					err = fmt.Errorf("write %s: %w", f.Name(), werr)
				}
			}
			o.spare <- c.b[:0]
		}
		o.done <- err
	}()
	return o
}

// pos returns the image offset of the next byte.
func (o *imageOut) pos() uint64 { return o.off + uint64(len(o.buf)) }

// flush hands the buffer to the writing goroutine and takes the other.
func (o *imageOut) flush() error {
	if o.err != nil {
		return o.err
	}
	if len(o.buf) == 0 {
		return nil
	}
	o.todo <- outChunk{o.buf, o.off}
	o.off += uint64(len(o.buf))
	o.buf = <-o.spare
	return nil
}

// reserve flushes the buffer and returns the image offset of the next n
// bytes, for the caller to write itself.
func (o *imageOut) reserve(n int64) (uint64, error) {
	if err := o.flush(); err != nil {
		return 0, err
	}
	at := o.off
	o.off += uint64(n)
	return at, nil
}

// close writes what is buffered, stops the writing goroutine and returns
// the first error.
func (o *imageOut) close() error {
	err := o.flush()
	close(o.todo)
	if werr := <-o.done; err == nil {
		err = werr
	}
	o.err = errors.Join(err, errOutClosed)
	return err
}

var errOutClosed = errors.New("image output closed")

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
// file's last block is just shorter. Small files are read straight into
// the output buffer; large ones are copied with copy_file_range(2).
func (w *writer) writePlain() error {
	o := newImageOut(w.out, superblockSize, max(4<<20, 2*int(w.blockSize)))
	zero := make([]byte, w.blockSize)
	scratch := make([]byte, w.blockSize)
	for _, n := range w.files {
		var err error
		if n.size >= copyRangeMin && !w.noCopyRange {
			err = w.plainFileCopy(o, n, zero, scratch)
		} else {
			err = w.plainFile(o, n, zero)
		}
		if err != nil {
			o.close()
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

// copyRangeMin is the file size from which writePlain copies with
// copy_file_range(2): the kernel moves the data, or shares the extents
// on file systems with reflinks, and of each block only a sample is read
// to find all-zero blocks.
const copyRangeMin = 1 << 20

func (w *writer) plainFileCopy(o *imageOut, n *srcNode, zero, scratch []byte) error {
	f, err := openSrc(n)
	if err != nil {
		return err
	}
	defer f.close()
	bs := int64(w.blockSize)
	size := int64(n.size)
	n.blocks = make([]uint32, (size+bs-1)/bs)
	var runStart, runLen int64 // source range of data blocks to copy
	started := false
	copyRun := func() error {
		if runLen == 0 {
			return nil
		}
		dst, err := o.reserve(runLen)
		if err != nil {
			return err
		}
		if !started {
			n.start, started = dst, true
		}
		err = w.copyRange(f, runStart, dst, runLen, scratch)
		runLen = 0
		return err
	}
	for i := range n.blocks {
		off := int64(i) * bs
		l := min(bs, size-off)
		sparse := f.hole(off, l)
		if !sparse {
			if sparse, err = f.zeroBlock(off, scratch[:l], zero); err != nil {
				return err
			}
		}
		if sparse {
			n.sparse += uint64(l)
			if err := copyRun(); err != nil {
				return err
			}
			continue
		}
		if runLen == 0 {
			runStart = off
		}
		runLen += l
		n.blocks[i] = uint32(l) | dataUncomp
	}
	return copyRun()
}

// zeroBlock reports whether the block at off, as long as b, is all zeros.
// It reads a sample first, which settles most blocks.
func (f *srcFile) zeroBlock(off int64, b, zero []byte) (bool, error) {
	sample := b[:min(len(b), 512)]
	if err := f.read(sample, off); err != nil {
		return false, err
	}
	if !allZero(sample, zero) {
		return false, nil
	}
	if err := f.read(b, off); err != nil {
		return false, err
	}
	return allZero(b, zero), nil
}

// copyRange copies n bytes at off in f to the image at dst. Where the
// kernel cannot (e.g. copy_file_range across file systems on older
// kernels), it reads and writes, and later files take the buffered path.
func (w *writer) copyRange(f *srcFile, off int64, dst uint64, n int64, scratch []byte) error {
	outOff := int64(dst)
	for n > 0 {
		c, err := unix.CopyFileRange(f.fd, &off, w.outFd, &outOff, int(min(n, 1<<30)), 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("copy %s to %s: %w", f.path, w.out.Name(), err)
			}
			w.noCopyRange = true
			break
		}
		if c == 0 {
			return fmt.Errorf("read %s: %w (file shrank while writing the image)", f.path, io.ErrUnexpectedEOF)
		}
		n -= int64(c)
	}
	for n > 0 {
		b := scratch[:min(n, int64(len(scratch)))]
		if err := f.read(b, off); err != nil {
			return err
		}
		if _, err := w.out.WriteAt(b, outOff); err != nil {
			return fmt.Errorf("write %s: %w", w.out.Name(), err)
		}
		off += int64(len(b))
		outOff += int64(len(b))
		n -= int64(len(b))
	}
	return nil
}
