package luks

import (
	"errors"
	"runtime"
	"sync"
)

// chunkSize is the unit of parallel encryption: large enough to amortize
// the goroutine hand-off, small enough to keep 2·GOMAXPROCS chunks in
// memory. It is a multiple of every sector size.
const chunkSize = 1 << 20

// chunk is one piece of a segment on its way through pipeline.
type chunk struct {
	buf  []byte // the chunk's bytes; a prefix of a chunkSize buffer
	off  int64  // offset of buf within the segment
	done chan error
}

var errStopped = errors.New("stopped after an earlier error")

// pipeline streams a segment in chunks: next fills a chunk (called in
// order, on one goroutine), work transforms it (in parallel, on
// GOMAXPROCS goroutines), emit consumes it (in order, on one goroutine;
// nil to skip). next returns false with the last chunk. The first error
// stops the pipeline and is returned.
func pipeline(next func(c *chunk) (more bool, err error), work, emit func(c *chunk) error) error {
	workers := runtime.GOMAXPROCS(0)
	// At most 2·workers chunks are in flight, bounded by the buffers.
	free := make(chan []byte, 2*workers)
	for range cap(free) {
		free <- make([]byte, chunkSize)
	}
	todo := make(chan *chunk)
	ordered := make(chan *chunk, cap(free))
	stop := make(chan struct{})

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range todo {
				select {
				case <-stop:
					c.done <- errStopped
				default:
					c.done <- work(c)
				}
			}
		}()
	}
	emitted := make(chan error, 1)
	go func() {
		var err error
		for c := range ordered {
			e := <-c.done
			if err == nil && e != nil {
				err = e
				close(stop)
			}
			if err == nil && emit != nil {
				if err = emit(c); err != nil {
					close(stop)
				}
			}
			free <- c.buf[:cap(c.buf)]
		}
		emitted <- err
	}()

	var nextErr error
produce:
	for {
		var buf []byte
		select {
		case <-stop:
			break produce
		case buf = <-free:
		}
		c := &chunk{buf: buf, done: make(chan error, 1)}
		more, err := next(c)
		if err != nil {
			nextErr = err
			break
		}
		if len(c.buf) > 0 {
			ordered <- c
			todo <- c
		} else {
			free <- buf
		}
		if !more {
			break
		}
	}
	close(todo)
	close(ordered)
	wg.Wait()
	if err := <-emitted; err != nil {
		return err
	}
	return nextErr
}
