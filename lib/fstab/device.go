package fstab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"distri.dev/distri/lib/blkid"
	"distri.dev/distri/lib/initconfig"
)

// device is a block device found in sysfs with what its superblock
// and partition table say.
type device struct {
	path      string // e.g. "/dev/vdb1"
	dmName    string // device-mapper name, for /dev/mapper/NAME
	info      blkid.Info
	partUUID  string
	partLabel string
}

func (d *device) String() string {
	s := d.path
	if d.info.Type != "" {
		s += " (" + d.info.Type
		if d.info.UUID != "" {
			s += " UUID=" + d.info.UUID
		}
		if d.info.Label != "" {
			s += " LABEL=" + d.info.Label
		}
		s += ")"
	}
	return s
}

// isDevice reports whether spec names a block device (and not, e.g.,
// "tmpfs" or a directory to bind).
func isDevice(spec string) bool {
	k, _, ok := strings.Cut(spec, "=")
	if ok {
		switch strings.ToUpper(k) {
		case "UUID", "LABEL", "PARTUUID", "PARTLABEL":
			return true
		}
	}
	return strings.HasPrefix(spec, "/dev/")
}

// parseSpec parses a device spec, turning the udev symlinks
// /dev/disk/by-*/X (which do not exist without udev) into what they
// stand for.
func parseSpec(spec string) (initconfig.Device, error) {
	for _, by := range []struct{ dir, kind string }{
		{"/dev/disk/by-uuid/", "UUID"}, {"/dev/disk/by-label/", "LABEL"},
		{"/dev/disk/by-partuuid/", "PARTUUID"}, {"/dev/disk/by-partlabel/", "PARTLABEL"},
	} {
		if v, ok := strings.CutPrefix(spec, by.dir); ok {
			spec = by.kind + "=" + v
		}
	}
	return initconfig.ParseDevice(spec)
}

func (d *device) matches(spec initconfig.Device) bool {
	switch spec.Kind {
	case "UUID":
		return strings.EqualFold(d.info.UUID, spec.Value)
	case "LABEL":
		return d.info.Label != "" && d.info.Label == spec.Value
	case "PARTUUID":
		return d.partUUID != "" && strings.EqualFold(d.partUUID, spec.Value)
	case "PARTLABEL":
		return d.partLabel != "" && d.partLabel == spec.Value
	case "path":
		return d.path == spec.Value || d.dmName != "" && spec.Value == "/dev/mapper/"+d.dmName
	}
	return false
}

// finder finds block devices by reading sysfs and superblocks.
type finder struct {
	sysBlock string // /sys/class/block
}

// scan probes every block device with a size.
func (f *finder) scan() []*device {
	ents, _ := os.ReadDir(f.sysBlock)
	var out []*device
	for _, e := range ents {
		if d := f.probe(e.Name()); d != nil {
			out = append(out, d)
		}
	}
	return out
}

func (f *finder) read(name, attr string) string {
	b, _ := os.ReadFile(filepath.Join(f.sysBlock, name, attr))
	return strings.TrimSpace(string(b))
}

func (f *finder) probe(name string) *device {
	if n, _ := strconv.ParseInt(f.read(name, "size"), 10, 64); n == 0 {
		return nil // an empty drive or an unused loop device
	}
	d := &device{path: "/dev/" + name, dmName: f.read(name, "dm/name")}
	info, err := probeFile(d.path)
	if err != nil {
		return nil
	}
	d.info = info
	if part, _ := strconv.Atoi(f.read(name, "partition")); part > 0 {
		target, err := os.Readlink(filepath.Join(f.sysBlock, name))
		if err != nil {
			return d
		}
		parent := filepath.Base(filepath.Dir(target))
		pf, err := os.Open("/dev/" + parent)
		if err != nil {
			return d
		}
		defer pf.Close()
		ss, _ := strconv.Atoi(f.read(parent, "queue/logical_block_size"))
		parts, _ := blkid.Partitions(pf, ss)
		for _, p := range parts {
			if p.Number == part {
				d.partUUID, d.partLabel = p.UUID, p.Label
			}
		}
	}
	return d
}

// probeFile reads the superblock of the device at path: what lib/blkid
// knows, and swap areas.
func probeFile(path string) (blkid.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return blkid.Info{}, err
	}
	defer f.Close()
	info, err := blkid.Probe(f)
	if err != nil || info.Type != "" {
		return info, err
	}
	// A swap area made by mkswap (4 KiB pages): "SWAPSPACE2" ends the
	// first page; the header at 1024 has the UUID at 12 and the label
	// at 28.
	page := make([]byte, 4096)
	if _, err := f.ReadAt(page, 0); err == nil && string(page[4086:]) == "SWAPSPACE2" {
		u := page[1036:1052]
		return blkid.Info{
			Type:  "swap",
			UUID:  fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]),
			Label: string(bytes.TrimRight(page[1052:1068], "\x00")),
		}, nil
	}
	return info, nil
}

// maxSeen bounds the devices a WaitError lists (a host with many loop
// devices would fill the console).
const maxSeen = 8

// WaitError says which device did not show up in time.
type WaitError struct {
	Spec    string        // e.g. "UUID=…"
	Timeout time.Duration // how long it was waited for
	Seen    []string      // the block devices there were
}

func (e *WaitError) Error() string {
	seen := "no block devices at all"
	if n := len(e.Seen); n > maxSeen {
		seen = fmt.Sprintf("block devices seen: %s and %d more", strings.Join(e.Seen[:maxSeen], ", "), n-maxSeen)
	} else if n > 0 {
		seen = "block devices seen: " + strings.Join(e.Seen, ", ")
	}
	return fmt.Sprintf("no device %s after %v: %s", e.Spec, e.Timeout, seen)
}

// find returns the device spec names, waiting until deadline for it to
// appear (rescanning every 100 ms), and what its superblock says.
func (f *finder) find(ctx context.Context, spec initconfig.Device, deadline time.Time, timeout time.Duration) (*device, error) {
	for {
		if spec.Kind == "path" && !strings.HasPrefix(spec.Value, "/dev/mapper/") {
			// A node in /dev: no need to probe every device.
			if _, err := os.Stat(spec.Value); err == nil {
				info, err := probeFile(spec.Value)
				return &device{path: spec.Value, info: info}, err
			}
		} else {
			for _, d := range f.scan() {
				if d.matches(spec) {
					return d, nil
				}
			}
		}
		if !time.Now().Before(deadline) {
			var seen []string
			for _, d := range f.scan() {
				seen = append(seen, d.String())
			}
			return nil, &WaitError{Spec: spec.String(), Timeout: timeout, Seen: seen}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(deadline))):
		}
	}
}
