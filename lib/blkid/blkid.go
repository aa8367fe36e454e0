// Package blkid identifies block devices by their superblocks, as
// blkid(8) does for the few formats distri boots from and mounts: ext2/3/4,
// LUKS (1 and 2), SquashFS, swap areas, and the partition tables GPT and
// MBR for PARTUUID and PARTLABEL.
//
// It reads a few KiB from fixed offsets and never mounts. Anything else
// is reported with an empty Type.
package blkid

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Info is what a superblock says about a device.
type Info struct {
	// Type is the file system or container type in blkid's words:
	// "ext4" (also for ext2 and ext3, which the ext4 driver mounts),
	// "crypto_LUKS", "squashfs", "swap", or "" if unknown.
	Type string
	// UUID as blkid formats it, lower case, e.g.
	// "ba0504ec-11b1-4015-b9fe-80939af15a81"; empty if the format has
	// none.
	UUID string
	// Label is the file system or LUKS2 label; empty if none.
	Label string
}

// Probe reads the superblock at the start of r.
func Probe(r io.ReaderAt) (Info, error) {
	buf := make([]byte, 4096) // the first page: the swap signature ends it
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Info{}, err
	}
	buf = buf[:n]
	switch {
	case len(buf) >= 6 && (string(buf[:6]) == "LUKS\xba\xbe"):
		// LUKS1 and LUKS2 both keep the UUID (40 bytes, NUL padded) at
		// offset 168; LUKS2 keeps a label at 24 (48 bytes).
		if len(buf) < 208 {
			return Info{}, io.ErrUnexpectedEOF
		}
		info := Info{Type: "crypto_LUKS", UUID: strings.ToLower(cstr(buf[168:208]))}
		if binary.BigEndian.Uint16(buf[6:8]) == 2 {
			info.Label = cstr(buf[24:72])
		}
		return info, nil
	case len(buf) >= 4 && string(buf[:4]) == "hsqs":
		return Info{Type: "squashfs"}, nil
	case len(buf) >= 0x480 && binary.LittleEndian.Uint16(buf[0x438:]) == 0xef53:
		sb := buf[0x400:]
		return Info{Type: "ext4", UUID: formatUUID(sb[0x68:0x78]), Label: cstr(sb[0x78:0x88])}, nil
	}
	// A swap area as mkswap makes it with 4 KiB pages: "SWAPSPACE2"
	// ends the first page; the header at 1024 has the UUID at 12 and
	// the label at 28.
	if len(buf) == 4096 && string(buf[4086:]) == "SWAPSPACE2" {
		return Info{Type: "swap", UUID: formatUUID(buf[1036:1052]), Label: cstr(buf[1052:1068])}, nil
	}
	return Info{}, nil
}

// Partition is one entry of a partition table.
type Partition struct {
	// Number is the partition number, as in /dev/vda2 or the
	// "partition" attribute in sysfs, from 1.
	Number int
	// UUID is the PARTUUID: the GPT unique partition GUID, or
	// "SSSSSSSS-NN" (disk signature, partition number) for MBR.
	UUID string
	// Label is the GPT partition name (PARTLABEL); empty for MBR.
	Label string
}

// ErrNoPartitionTable means the disk has neither GPT nor MBR partitions.
var ErrNoPartitionTable = errors.New("no partition table")

// Partitions reads the partition table of the disk r whose logical
// sectors are sectorSize bytes (512 or 4096). GPT is preferred over a
// (protective) MBR.
func Partitions(r io.ReaderAt, sectorSize int) ([]Partition, error) {
	if sectorSize == 0 {
		sectorSize = 512
	}
	hdr := make([]byte, 92)
	if _, err := r.ReadAt(hdr, int64(sectorSize)); err == nil && string(hdr[:8]) == "EFI PART" {
		return gptPartitions(r, hdr, sectorSize)
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, ErrNoPartitionTable
	}
	sig := binary.LittleEndian.Uint32(mbr[440:])
	var parts []Partition
	for i := range 4 {
		e := mbr[446+16*i : 446+16*(i+1)]
		if e[4] == 0 || e[4] == 0xee {
			continue
		}
		parts = append(parts, Partition{Number: i + 1, UUID: fmt.Sprintf("%08x-%02x", sig, i+1)})
	}
	if len(parts) == 0 {
		return nil, ErrNoPartitionTable
	}
	return parts, nil
}

// maxEntryArray bounds the GPT partition entry array that Partitions
// reads (4096 entries of 256 bytes).
const maxEntryArray = 1 << 20

func gptPartitions(r io.ReaderAt, hdr []byte, sectorSize int) ([]Partition, error) {
	hsize := binary.LittleEndian.Uint32(hdr[12:])
	if hsize < 92 || hsize > uint32(sectorSize) {
		return nil, fmt.Errorf("gpt: bad header size %d", hsize)
	}
	full := make([]byte, hsize)
	if _, err := r.ReadAt(full, int64(sectorSize)); err != nil {
		return nil, fmt.Errorf("gpt: %w", err)
	}
	want := binary.LittleEndian.Uint32(full[16:])
	binary.LittleEndian.PutUint32(full[16:], 0)
	if crc32.ChecksumIEEE(full) != want {
		return nil, errors.New("gpt: header checksum mismatch")
	}
	lba := binary.LittleEndian.Uint64(hdr[72:])
	count := binary.LittleEndian.Uint32(hdr[80:])
	esize := binary.LittleEndian.Uint32(hdr[84:])
	// Bounded before anything is allocated: the disk is untrusted, and
	// 4096 entries of 2 GiB each would take the prober (PID 1) down.
	// Real tables have 128 entries of 128 bytes.
	if esize < 128 || esize > 4096 || count > 4096 || uint64(count)*uint64(esize) > maxEntryArray {
		return nil, fmt.Errorf("gpt: bad entry array (%d entries of %d bytes)", count, esize)
	}
	arr := make([]byte, int(count)*int(esize))
	if _, err := r.ReadAt(arr, int64(lba)*int64(sectorSize)); err != nil {
		return nil, fmt.Errorf("gpt: %w", err)
	}
	if crc32.ChecksumIEEE(arr) != binary.LittleEndian.Uint32(hdr[88:]) {
		return nil, errors.New("gpt: partition entries checksum mismatch")
	}
	var parts []Partition
	for i := range int(count) {
		e := arr[i*int(esize):]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue // unused entry
		}
		name := make([]uint16, 36)
		for j := range name {
			name[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		end := 0
		for end < len(name) && name[end] != 0 {
			end++
		}
		parts = append(parts, Partition{
			Number: i + 1,
			UUID:   formatGUID(e[16:32]),
			Label:  string(utf16.Decode(name[:end])),
		})
	}
	return parts, nil
}

// formatUUID formats 16 bytes in big-endian (RFC 4122) byte order, as
// ext4 stores them.
func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// formatGUID formats a GUID as GPT stores it: the first three fields
// little-endian.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]),
		b[8:10], b[10:16])
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
