// Package blockdev finds block devices without udev, for distri-init:
// it lists /sys/class/block, reads each device's superblock (lib/blkid)
// and, for a partition, its entry in the disk's partition table, and
// matches them against device specs such as UUID=…, LABEL=…,
// PARTUUID=…, /dev/mapper/NAME or /dev/disk/by-uuid/… (names udev would
// make, which do not exist without it).
//
// The initramfs waits for the root with it (woken by block uevents) and
// the booted system for the devices of /etc/fstab.
package blockdev

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

// Device is a block device as sysfs and its superblock describe it.
type Device struct {
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

func (d *Device) String() string {
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

// Matches reports whether d is the device spec names. UUIDs compare
// without regard to case, labels exactly; an empty label or partition
// attribute matches nothing.
func (d *Device) Matches(spec initconfig.Device) bool {
	switch spec.Kind {
	case "UUID":
		return d.Info.UUID != "" && strings.EqualFold(d.Info.UUID, spec.Value)
	case "LABEL":
		return d.Info.Label != "" && d.Info.Label == spec.Value
	case "PARTUUID":
		return d.PartUUID != "" && strings.EqualFold(d.PartUUID, spec.Value)
	case "PARTLABEL":
		return d.PartLabel != "" && d.PartLabel == spec.Value
	case "path":
		if c := Canonical(spec); c.Kind != "path" {
			return d.Matches(c)
		}
		p := spec.Value
		if v, ok := strings.CutPrefix(p, "/dev/block/"); ok {
			return v == d.Dev
		}
		if v, ok := strings.CutPrefix(p, "/dev/mapper/"); ok {
			return d.DMName != "" && v == d.DMName
		}
		return p == d.Path
	}
	return false
}

// Canonical returns what a udev symlink /dev/disk/by-{uuid,label,
// partuuid,partlabel}/V stands for (UUID=V, …), which do not exist
// without udev; any other spec as it is.
func Canonical(spec initconfig.Device) initconfig.Device {
	if spec.Kind != "path" {
		return spec
	}
	for _, by := range []struct{ dir, kind string }{
		{"/dev/disk/by-uuid/", "UUID"}, {"/dev/disk/by-label/", "LABEL"},
		{"/dev/disk/by-partuuid/", "PARTUUID"}, {"/dev/disk/by-partlabel/", "PARTLABEL"},
	} {
		if v, ok := strings.CutPrefix(spec.Value, by.dir); ok {
			if c, err := initconfig.ParseDevice(by.kind + "=" + v); err == nil {
				return c
			}
		}
	}
	return spec
}

// pollInterval is how often Wait rescans without a Changed call.
const pollInterval = 100 * time.Millisecond

// Set is what is known about the block devices of the system. Its
// methods are safe for concurrent use.
type Set struct {
	sysDir string // /sys/class/block
	devDir string // /dev
	// NoneHint, if set, is added to a WaitError that saw no devices at
	// all, e.g. a hint about missing drivers.
	NoneHint string

	mu    sync.Mutex
	known map[string]*Device
	wake  chan struct{}
}

// New returns a Set reading sysDir ("" for /sys/class/block) and
// opening device nodes in /dev.
func New(sysDir string) *Set {
	if sysDir == "" {
		sysDir = "/sys/class/block"
	}
	return &Set{sysDir: sysDir, devDir: "/dev", known: map[string]*Device{}, wake: make(chan struct{}, 1)}
}

// Changed says the block devices may have changed (a block uevent): a
// Wait rescans at once.
func (s *Set) Changed() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Scan returns the block devices, sorted by name, probing those not
// probed yet and forgetting removed ones. Devices of size 0 (an empty
// CD drive, an unused loop device) and device-mapper devices not set up
// yet are left out and probed again by the next Scan.
func (s *Set) Scan() []*Device {
	ents, _ := os.ReadDir(s.sysDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	present := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		present[name] = true
		if _, ok := s.known[name]; ok {
			continue
		}
		if d := s.probe(name); d != nil {
			s.known[name] = d
		}
	}
	var out []*Device
	for name, d := range s.known {
		if !present[name] {
			delete(s.known, name)
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *Device) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *Set) read(name, attr string) string {
	b, _ := os.ReadFile(filepath.Join(s.sysDir, name, attr))
	return strings.TrimSpace(string(b))
}

func (s *Set) probe(name string) *Device {
	sectors, _ := strconv.ParseInt(s.read(name, "size"), 10, 64)
	if sectors == 0 {
		return nil
	}
	d := &Device{Name: name, Path: filepath.Join(s.devDir, name), Dev: s.read(name, "dev"), Size: sectors * 512}
	if strings.HasPrefix(name, "dm-") {
		if d.DMName = s.read(name, "dm/name"); d.DMName == "" {
			return nil // not set up yet
		}
	}
	if p := s.read(name, "partition"); p != "" {
		d.Partition, _ = strconv.Atoi(p)
		if target, err := os.Readlink(filepath.Join(s.sysDir, name)); err == nil {
			d.Parent = filepath.Base(filepath.Dir(target))
		}
	}
	info, err := ProbeFile(d.Path)
	if err != nil {
		return nil // node not there yet: retry on the next scan
	}
	d.Info = info
	if d.Partition > 0 && d.Parent != "" {
		if pf, err := os.Open(filepath.Join(s.devDir, d.Parent)); err == nil {
			ss, _ := strconv.Atoi(s.read(d.Parent, "queue/logical_block_size"))
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

// ProbeFile reads the superblock of the device (or image) at path.
func ProbeFile(path string) (blkid.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return blkid.Info{}, err
	}
	defer f.Close()
	return blkid.Probe(f)
}

// maxSeen bounds the devices a WaitError lists (a host with many loop
// devices would fill the console).
const maxSeen = 8

// WaitError says what was waited for and did not show up.
type WaitError struct {
	What    string        // e.g. "root UUID=…"
	Timeout time.Duration // how long it was waited for
	Seen    []string      // the block devices there were
	Hint    string        // added when there were none
}

func (e *WaitError) Error() string {
	seen := "no block devices at all"
	if e.Hint != "" {
		seen += " (" + e.Hint + ")"
	}
	if n := len(e.Seen); n > maxSeen {
		seen = fmt.Sprintf("block devices seen: %s and %d more", strings.Join(e.Seen[:maxSeen], ", "), n-maxSeen)
	} else if n > 0 {
		seen = "block devices seen: " + strings.Join(e.Seen, ", ")
	}
	return fmt.Sprintf("gave up waiting for %s after %v: %s", e.What, e.Timeout, seen)
}

// Wait returns the first device for which match is true, scanning at
// once, on every Changed and at least every 100 ms, for up to timeout
// (forever if negative). what names the device in the error.
func (s *Set) Wait(ctx context.Context, what string, timeout time.Duration, match func(*Device) bool) (*Device, error) {
	var deadline <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		for _, d := range s.Scan() {
			if match(d) {
				return d, nil
			}
		}
		select {
		case <-s.wake:
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			// One last look: the device may have come with the deadline.
			var seen []string
			for _, d := range s.Scan() {
				if match(d) {
					return d, nil
				}
				seen = append(seen, d.String())
			}
			return nil, &WaitError{What: what, Timeout: timeout, Seen: seen, Hint: s.NoneHint}
		}
	}
}
