package fstab

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"distri.dev/distri/lib/blockdev"
	"distri.dev/distri/lib/initconfig"
)

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
	d, err := initconfig.ParseDevice(spec)
	return blockdev.Canonical(d), err
}

// find returns the device spec names and what its superblock says,
// waiting for it to appear until the deadline that all entries share.
func (mt *mounter) find(ctx context.Context, spec initconfig.Device) (*blockdev.Device, error) {
	if spec.Kind == "path" && strings.HasPrefix(spec.Value, "/dev/") && !strings.HasPrefix(spec.Value, "/dev/mapper/") && !strings.HasPrefix(spec.Value, "/dev/disk/") {
		// A node in /dev: no need to probe every device.
		if _, err := os.Stat(spec.Value); err == nil {
			info, err := blockdev.ProbeFile(spec.Value)
			return &blockdev.Device{Path: spec.Value, Info: info}, err
		}
	}
	d, err := mt.devs.Wait(ctx, spec.String(), max(0, time.Until(mt.deadline)), func(d *blockdev.Device) bool { return d.Matches(spec) })
	if we := (*blockdev.WaitError)(nil); errors.As(err, &we) {
		we.Timeout = mt.opts.DeviceTimeout // the wait for the whole file
	}
	return d, err
}
