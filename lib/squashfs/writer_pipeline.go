package squashfs

import (
	"sync"
	"sync/atomic"
)

// fragRecord is an entry of the fragment table.
type fragRecord struct {
	start uint64 // image offset of the fragment block
	size  uint32 // size word, with dataUncomp if stored uncompressed
}

// blockJob is one data or fragment block on its way through the
// compression pipeline.
type blockJob struct {
	in    []byte // the block's data
	out   []byte // compressed, if that is smaller
	word  uint32 // size word: len(out), or len(in)|dataUncomp
	file  *srcNode
	index int  // block index in file
	first bool // file's first stored block: its offset is file.start
	done  chan struct{}
}

func (j *blockJob) stored() []byte {
	if j.word&dataUncomp != 0 {
		return j.in
	}
	return j.out
}

// writeCompressed reads the files in order, compresses their blocks on
// jobs workers and writes the results in submission order, so the output
// does not depend on scheduling. File tails (and files smaller than a
// block) are packed into fragment blocks. A fixed pool of jobs bounds the
// memory in flight.
//
//	read → work → workers → (done) → drain in order → image
func (w *writer) writeCompressed(files <-chan *srcNode) error {
	inFlight := 2*w.jobs + 2
	free := make(chan *blockJob, inFlight)
	for range inFlight {
		free <- &blockJob{
			in:   make([]byte, 0, w.blockSize),
			out:  make([]byte, 0, w.blockSize),
			done: make(chan struct{}, 1),
		}
	}
	work := make(chan *blockJob, inFlight)
	order := make(chan *blockJob, inFlight)
	var failed atomic.Bool

	var workers sync.WaitGroup
	for range w.jobs {
		workers.Go(func() {
			c := w.codec.newCompressor()
			for j := range work {
				if z, ok := c.compress(j.out, j.in); ok {
					j.out, j.word = z, uint32(len(z))
				} else {
					j.out, j.word = z[:0], uint32(len(j.in))|dataUncomp
				}
				j.done <- struct{}{}
			}
		})
	}

	o := newImageOut(w.out, superblockSize, 4<<20)
	drained := make(chan error, 1)
	go func() {
		var err error
		for j := range order {
			<-j.done
			if err == nil {
				if j.file == nil {
					w.frags = append(w.frags, fragRecord{start: o.pos(), size: j.word})
				} else {
					if j.first {
						j.file.start = o.pos()
					}
					j.file.blocks[j.index] = j.word
				}
				if err = o.write(j.stored()); err != nil {
					failed.Store(true)
				}
			}
			free <- j
		}
		if cerr := o.close(); cerr != nil {
			err = cerr // the first write error, which err may only echo
		}
		drained <- err
	}()

	p := &producer{w: w, free: free, work: work, order: order, failed: &failed, zero: make([]byte, w.blockSize)}
	err := p.run(files)
	close(work)
	close(order)
	workers.Wait()
	if derr := <-drained; derr != nil {
		return derr
	}
	if err != nil {
		return err
	}
	w.dataEnd = o.pos()
	return nil
}

// producer reads files into jobs.
type producer struct {
	w      *writer
	free   chan *blockJob
	work   chan *blockJob
	order  chan *blockJob
	failed *atomic.Bool
	zero   []byte

	frag  *blockJob // fragment block being filled
	nfrag uint32    // fragments started
}

func (p *producer) submit(j *blockJob) {
	p.order <- j
	p.work <- j
}

func (p *producer) run(files <-chan *srcNode) error {
	for n := range files {
		if p.failed.Load() {
			return nil // the drain reports the error
		}
		if err := p.file(n); err != nil {
			return err
		}
	}
	if p.frag != nil {
		p.submit(p.frag)
		p.frag = nil
	}
	return nil
}

func (p *producer) file(n *srcNode) error {
	f, err := openSrc(n)
	if err != nil {
		return err
	}
	defer f.close()
	bs := int64(p.w.blockSize)
	size := int64(n.size)
	n.blocks = make([]uint32, size/bs)
	first := true
	for i := range n.blocks {
		off := int64(i) * bs
		if f.hole(off, bs) {
			n.sparse += uint64(bs)
			continue
		}
		j := <-p.free
		j.in = j.in[:bs]
		if err := f.read(j.in, off); err != nil {
			p.free <- j
			return err
		}
		if allZero(j.in, p.zero) {
			n.sparse += uint64(bs)
			p.free <- j
			continue
		}
		j.file, j.index, j.first = n, i, first
		first = false
		p.submit(j)
	}
	tail := size % bs
	if tail == 0 {
		return nil
	}
	if p.frag != nil && int64(len(p.frag.in))+tail > bs {
		p.submit(p.frag)
		p.frag = nil
	}
	if p.frag == nil {
		p.frag = <-p.free
		p.frag.in = p.frag.in[:0]
		p.frag.file = nil
		p.nfrag++
	}
	j := p.frag
	n.frag, n.fragOff = p.nfrag-1, uint32(len(j.in))
	b := j.in[len(j.in) : int64(len(j.in))+tail]
	off := size - tail
	if f.hole(off, tail) {
		clear(b)
	} else if err := f.read(b, off); err != nil {
		return err
	}
	j.in = j.in[:int64(len(j.in))+tail]
	return nil
}
