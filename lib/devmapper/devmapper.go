// Package devmapper creates and removes device-mapper devices through
// the kernel's ioctl interface (/dev/mapper/control), without
// libdevmapper or dmsetup: enough to map a dm-crypt target in an
// initramfs.
//
// The interface is documented in the kernel's include/uapi/linux/dm-ioctl.h
// (https://github.com/torvalds/linux/blob/master/include/uapi/linux/dm-ioctl.h).
package devmapper

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is the device-mapper control node that devtmpfs creates
// once dm_mod is loaded.
const ControlPath = "/dev/mapper/control"

// Target is one line of a device-mapper table.
type Target struct {
	Start  uint64 // in 512-byte sectors, e.g. 0
	Length uint64 // in 512-byte sectors
	Type   string // e.g. "crypt"
	Params string // e.g. "aes-xts-plain64 <hex key> 0 254:0 32768"
}

// Device is a created device-mapper device.
type Device struct {
	Name         string // e.g. "cryptroot"
	Major, Minor uint32 // e.g. 253, 0: the node is /dev/dm-<Minor>
}

// Create creates the device name with the table targets and activates
// it: DM_DEV_CREATE, DM_TABLE_LOAD, then DM_DEV_SUSPEND without the
// suspend flag (resume). uuid may be empty; readOnly maps it read-only.
// The table is loaded with DM_SECURE_DATA_FLAG, so the kernel wipes its
// copy of the parameters (which hold a dm-crypt key) after use.
func Create(name, uuid string, targets []Target, readOnly bool) (*Device, error) {
	ctl, err := os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("device-mapper: %w (is dm_mod loaded?)", err)
	}
	defer ctl.Close()
	fd := int(ctl.Fd())
	var flags uint32
	if readOnly {
		flags |= unix.DM_READONLY_FLAG
	}
	res, err := ioctl(fd, unix.DM_DEV_CREATE, name, uuid, flags, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	dev := &Device{Name: name, Major: unix.Major(res.Dev), Minor: unix.Minor(res.Dev)}
	remove := func() { ioctl(fd, unix.DM_DEV_REMOVE, name, "", 0, nil, 0) }

	data := marshalTargets(targets)
	defer clear(data)
	if _, err := ioctl(fd, unix.DM_TABLE_LOAD, name, "", flags|unix.DM_SECURE_DATA_FLAG, data, uint32(len(targets))); err != nil {
		remove()
		return nil, fmt.Errorf("load table of %s: %w", name, err)
	}
	if _, err := ioctl(fd, unix.DM_DEV_SUSPEND, name, "", 0, nil, 0); err != nil {
		remove()
		return nil, fmt.Errorf("resume %s: %w", name, err)
	}
	return dev, nil
}

// Remove removes the device name.
func Remove(name string) error {
	ctl, err := os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("device-mapper: %w", err)
	}
	defer ctl.Close()
	if _, err := ioctl(int(ctl.Fd()), unix.DM_DEV_REMOVE, name, "", 0, nil, 0); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// marshalTargets lays out struct dm_target_spec records, each followed
// by its NUL-terminated parameters and padded to 8 bytes; "next" is the
// offset from one spec to the next.
func marshalTargets(targets []Target) []byte {
	var out []byte
	for _, t := range targets {
		n := unix.SizeofDmTargetSpec + len(t.Params) + 1
		n = (n + 7) &^ 7
		rec := make([]byte, n)
		binary.NativeEndian.PutUint64(rec[0:], t.Start)
		binary.NativeEndian.PutUint64(rec[8:], t.Length)
		binary.NativeEndian.PutUint32(rec[20:], uint32(n))
		copy(rec[24:40], t.Type)
		copy(rec[40:], t.Params)
		out = append(out, rec...)
	}
	return out
}

// ioctl sends one dm_ioctl with data appended and returns the kernel's
// answer header.
func ioctl(fd int, req uint, name, uuid string, flags uint32, data []byte, targets uint32) (*unix.DmIoctl, error) {
	if len(name) >= 128 || len(uuid) >= 129 {
		return nil, errors.New("name or uuid too long")
	}
	// Room for the answer, too: the kernel writes status back.
	size := unix.SizeofDmIoctl + len(data)
	if size < 16<<10 {
		size = 16 << 10
	}
	buf := make([]uint64, (size+7)/8) // 8-byte aligned
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), size)
	defer clear(b)
	h := (*unix.DmIoctl)(unsafe.Pointer(&buf[0]))
	h.Version = [3]uint32{4, 0, 0}
	h.Data_size = uint32(size)
	h.Data_start = unix.SizeofDmIoctl
	h.Target_count = targets
	h.Flags = flags
	copy(h.Name[:], name)
	copy(h.Uuid[:], uuid)
	copy(b[unix.SizeofDmIoctl:], data)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return nil, e
	}
	res := *h
	return &res, nil
}
