package earlyinit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"distri.dev/distri/lib/blkid"
	"distri.dev/distri/lib/initconfig"
)

// blockDev is a block device as distri-init sees it in /sys/class/block
// and its superblock.
type blockDev struct {
	Name      string // e.g. "vda1", "dm-0"
	Path      string // e.g. "/dev/vda1"
	Dev       string // "major:minor", e.g. "254:1"
	Size      int64  // bytes
	Partition int    // partition number; 0 for a whole disk
	Parent    string // the disk of a partition, e.g. "vda"
	DMName    string // device-mapper name, e.g. "cryptroot"
	Info      blkid.Info
	PartUUID  string
	PartLabel string
}

func (d *blockDev) String() string {
	s := d.Path
	if d.Info.Type != "" {
		s += " (" + d.Info.Type
		if d.Info.UUID != "" {
			s += " UUID=" + d.Info.UUID
		}
		if d.Info.Label != "" {
			s += " LABEL=" + d.Info.Label
		}
		s += ")"
	}
	return s
}

// matches reports whether d is the device spec names.
func (d *blockDev) matches(spec initconfig.Device) bool {
	switch spec.Kind {
	case "UUID":
		return strings.EqualFold(d.Info.UUID, spec.Value)
	case "LABEL":
		return d.Info.Label == spec.Value
	case "PARTUUID":
		return d.PartUUID != "" && strings.EqualFold(d.PartUUID, spec.Value)
	case "PARTLABEL":
		return d.PartLabel != "" && d.PartLabel == spec.Value
	case "path":
		switch p := spec.Value; {
		case p == d.Path:
			return true
		case d.DMName != "" && p == "/dev/mapper/"+d.DMName:
			return true
		case strings.HasPrefix(p, "/dev/block/"):
			return strings.TrimPrefix(p, "/dev/block/") == d.Dev
		case strings.HasPrefix(p, "/dev/disk/by-uuid/"):
			return strings.EqualFold(d.Info.UUID, strings.TrimPrefix(p, "/dev/disk/by-uuid/"))
		case strings.HasPrefix(p, "/dev/disk/by-label/"):
			return d.Info.Label == strings.TrimPrefix(p, "/dev/disk/by-label/")
		case strings.HasPrefix(p, "/dev/disk/by-partuuid/"):
			return strings.EqualFold(d.PartUUID, strings.TrimPrefix(p, "/dev/disk/by-partuuid/"))
		}
	}
	return false
}

// devices keeps what is known about the block devices and wakes
// waiters when they change.
type devices struct {
	sysDir string // /sys/class/block
	mu     sync.Mutex
	known  map[string]*blockDev
	wake   chan struct{}
}

func newDevices() *devices {
	return &devices{sysDir: "/sys/class/block", known: map[string]*blockDev{}, wake: make(chan struct{}, 1)}
}

// Changed is called on block uevents.
func (ds *devices) Changed() {
	select {
	case ds.wake <- struct{}{}:
	default:
	}
}

// scan probes the block devices not probed yet (and forgets removed
// ones). Devices of size 0 (an empty CD drive, an unused loop device)
// are retried later.
func (ds *devices) scan() []*blockDev {
	ents, _ := os.ReadDir(ds.sysDir)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	present := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		present[name] = true
		if _, ok := ds.known[name]; ok {
			continue
		}
		if d := ds.probe(name); d != nil {
			ds.known[name] = d
		}
	}
	var out []*blockDev
	for name, d := range ds.known {
		if !present[name] {
			delete(ds.known, name)
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *blockDev) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (ds *devices) probe(name string) *blockDev {
	sys := filepath.Join(ds.sysDir, name)
	read := func(f string) string {
		b, _ := os.ReadFile(filepath.Join(sys, f))
		return strings.TrimSpace(string(b))
	}
	sectors, _ := strconv.ParseInt(read("size"), 10, 64)
	if sectors == 0 {
		return nil
	}
	d := &blockDev{Name: name, Path: "/dev/" + name, Dev: read("dev"), Size: sectors * 512}
	if strings.HasPrefix(name, "dm-") {
		d.DMName = read("dm/name")
		if d.DMName == "" {
			return nil // not set up yet
		}
	}
	if p := read("partition"); p != "" {
		d.Partition, _ = strconv.Atoi(p)
		if target, err := os.Readlink(sys); err == nil {
			d.Parent = filepath.Base(filepath.Dir(target))
		}
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return nil // node not there yet: retry on the next scan
	}
	defer f.Close()
	d.Info, _ = blkid.Probe(f)
	if d.Partition > 0 && d.Parent != "" {
		if pf, err := os.Open("/dev/" + d.Parent); err == nil {
			ss, _ := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(ds.sysDir, d.Parent, "queue/logical_block_size"))))
			parts, _ := blkid.Partitions(pf, ss)
			pf.Close()
			for _, p := range parts {
				if p.Number == d.Partition {
					d.PartUUID, d.PartLabel = p.UUID, p.Label
				}
			}
		}
	}
	return d
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// forget drops a device so the next scan probes it again (e.g. after
// it was opened and its contents may have changed).
func (ds *devices) forget(name string) {
	ds.mu.Lock()
	delete(ds.known, name)
	ds.mu.Unlock()
}

// WaitError says what distri-init waited for and gave up on.
type WaitError struct {
	What    string        // e.g. "root UUID=…"
	Timeout time.Duration // how long it waited
	Seen    []string      // the block devices it saw
}

func (e *WaitError) Error() string {
	seen := "no block devices at all (is the disk's driver in the initramfs?)"
	if len(e.Seen) > 0 {
		seen = "block devices seen: " + strings.Join(e.Seen, ", ")
	}
	return fmt.Sprintf("gave up waiting for %s after %v: %s", e.What, e.Timeout, seen)
}

// wait returns the first device for which match is true, scanning on
// every block uevent and at least every 250 ms, until timeout (forever
// if negative).
func (ds *devices) wait(ctx context.Context, what string, timeout time.Duration, match func(*blockDev) bool) (*blockDev, error) {
	var deadline <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		devs := ds.scan()
		for _, d := range devs {
			if match(d) {
				return d, nil
			}
		}
		select {
		case <-ds.wake:
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			var seen []string
			for _, d := range ds.scan() {
				seen = append(seen, d.String())
			}
			return nil, &WaitError{What: what, Timeout: timeout, Seen: seen}
		}
	}
}
