package kmod

import (
	"os"
	"path/filepath"
	"sync"
)

// Coldplug loads the drivers of devices by their modalias, as udev does
// at boot: the devices that exist ([Coldplug.Scan]) and those announced
// later ([Coldplug.Modalias], e.g. from uevents). Each modalias is
// handled once, in the background, at most 4 at a time. The limit is a
// channel rather than errgroup.SetLimit: Modalias is called from the
// uevent reader, which must never block on a slow module.
type Coldplug struct {
	loader *Loader
	failed func(modalias string, err error)
	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   map[string]bool // modaliases handled
}

// NewColdplug returns a Coldplug loading with l. failed, if not nil, is
// called for each modalias whose drivers did not load (modules without
// a device, ENODEV, are no failure).
func NewColdplug(l *Loader, failed func(modalias string, err error)) *Coldplug {
	return &Coldplug{loader: l, failed: failed, sem: make(chan struct{}, 4), seen: map[string]bool{}}
}

// Modalias loads the drivers for one device's modalias, in the
// background, once per modalias.
func (c *Coldplug) Modalias(alias string) {
	c.mu.Lock()
	if c.seen[alias] {
		c.mu.Unlock()
		return
	}
	c.seen[alias] = true
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.sem <- struct{}{}
		defer func() { <-c.sem }()
		if _, err := c.loader.LoadModalias(alias); err != nil && c.failed != nil {
			c.failed(alias, err)
		}
	}()
}

// Scan loads the drivers of the devices that exist in sysfs (normally
// /sys): every bus/*/devices/*/modalias. It returns how many devices it
// found; [Coldplug.Wait] waits for their drivers.
func (c *Coldplug) Scan(sysfs string) int {
	paths, _ := filepath.Glob(filepath.Join(sysfs, "bus/*/devices/*/modalias"))
	n := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 2 {
			continue
		}
		c.Modalias(string(b[:len(b)-1]))
		n++
	}
	return n
}

// Wait waits until the drivers of every modalias handed over so far are
// loaded (or failed to).
func (c *Coldplug) Wait() { c.wg.Wait() }
