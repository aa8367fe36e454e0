package install

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws "3/59 packages  12.3/80.0 MB  45.6 MB/s" on one line,
// redrawn every 200ms, when it has a writer.
type progress struct {
	w          io.Writer
	total      int
	totalBytes int64
	bytes      atomic.Int64
	pkgs       atomic.Int64
	start      time.Time
	quit       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

func newProgress(w io.Writer, total int, cat *catalog, fulls []string) *progress {
	p := &progress{w: w, total: total, start: time.Now(), quit: make(chan struct{})}
	for _, f := range fulls {
		p.totalBytes += int64(cat.byFull[f].pkg.GetImageSize())
	}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				p.draw()
				fmt.Fprintln(p.w)
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) add(n int64) { p.bytes.Add(n) }
func (p *progress) done()       { p.pkgs.Add(1) }

func (p *progress) draw() {
	b := p.bytes.Load()
	secs := time.Since(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(b) / secs
	}
	fmt.Fprintf(p.w, "\r%d/%d packages  %.1f/%.1f MB  %.1f MB/s ", p.pkgs.Load(), p.total, float64(b)/1e6, float64(p.totalBytes)/1e6, rate/1e6)
}

// stop ends the display; it may be called more than once.
func (p *progress) stop() {
	p.once.Do(func() {
		close(p.quit)
		p.wg.Wait()
	})
}
