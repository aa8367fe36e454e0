package blkid

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// gptDisk returns a small GPT disk with sectors of size ss: a protective
// MBR, the header in LBA 1 and the entry array from LBA 2, with valid
// checksums, so that the fuzzer starts past them.
func gptDisk(ss int, names ...string) []byte {
	const esize = 128
	count := 4
	arrSectors := (count*esize + ss - 1) / ss
	disk := make([]byte, (2+arrSectors)*ss)
	disk[446+4] = 0xee
	disk[510], disk[511] = 0x55, 0xaa
	arr := disk[2*ss : 2*ss+count*esize]
	for i, name := range names {
		e := arr[i*esize:]
		copy(e[0:16], "\xaf\x3d\xc6\x0f\x83\x84\x72\x47\x8e\x79\x3d\x69\xd8\x47\x7d\xe4") // Linux data
		for j := range 16 {
			e[16+j] = byte(0x10*i + j + 1)
		}
		binary.LittleEndian.PutUint64(e[32:], uint64(2048*(i+1)))
		binary.LittleEndian.PutUint64(e[40:], uint64(2048*(i+2)-1))
		for j, u := range utf16.Encode([]rune(name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], u)
		}
	}
	hdr := disk[ss : ss+92]
	copy(hdr, "EFI PART")
	binary.LittleEndian.PutUint32(hdr[8:], 0x00010000)
	binary.LittleEndian.PutUint32(hdr[12:], 92)
	binary.LittleEndian.PutUint64(hdr[24:], 1)
	binary.LittleEndian.PutUint64(hdr[72:], 2)
	binary.LittleEndian.PutUint32(hdr[80:], uint32(count))
	binary.LittleEndian.PutUint32(hdr[84:], esize)
	binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(arr))
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr))
	return disk
}

// boundedReader fails reads of more than max bytes at once: what Probe
// and Partitions read of a disk at boot must not grow with what the
// disk claims.
type boundedReader struct {
	r   *bytes.Reader
	max int
	t   *testing.T
}

func (b boundedReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > b.max {
		b.t.Fatalf("read of %d bytes at %d", len(p), off)
	}
	return b.r.ReadAt(p, off)
}

// FuzzProbe probes arbitrary disk contents as distri-init does for every
// block device at boot (a USB stick is untrusted), for a superblock and a
// partition table with either sector size, and checks the results are
// what blkid can report, read with bounded buffers.
func FuzzProbe(f *testing.F) {
	ext4 := make([]byte, 2048)
	binary.LittleEndian.PutUint16(ext4[0x438:], 0xef53)
	copy(ext4[0x468:], "\x5f\x3b\x8a\x41\x0c\x2e\x4d\x7a\x9b\x61\x3e\x8f\x2c\x1d\x0a\x77")
	copy(ext4[0x478:], "data")
	f.Add(ext4, false)
	luks := make([]byte, 512)
	copy(luks, "LUKS\xba\xbe\x00\x02")
	copy(luks[24:], "root")
	copy(luks[168:], "BA0504EC-11B1-4015-B9FE-80939AF15A81")
	f.Add(luks, false)
	swap := make([]byte, 4096)
	copy(swap[4086:], "SWAPSPACE2")
	copy(swap[1036:], "\x0b\x5e\x2c\x7a\x94\xd1\x4f\x3e\x8a\x26\x7c\x1d\x9e\x0f\x4b\x58")
	f.Add(swap, false)
	f.Add([]byte("hsqs"), false)
	f.Add(gptDisk(512, "root", "ESP", "ünïcode"), false)
	f.Add(gptDisk(4096, "x"), true)
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], 0x0d15ea5e)
	mbr[446+4], mbr[446+16+4] = 0x83, 0x0c
	mbr[510], mbr[511] = 0x55, 0xaa
	f.Add(mbr, false)
	f.Fuzz(func(t *testing.T, disk []byte, fourK bool) {
		r := boundedReader{bytes.NewReader(disk), 1 << 20, t}
		info, err := Probe(r)
		if err == nil && !slices.Contains([]string{"", "ext4", "crypto_LUKS", "squashfs", "swap"}, info.Type) {
			t.Errorf("Probe = %+v", info)
		}
		ss := 512
		if fourK {
			ss = 4096
		}
		checkPartitions(t, r, ss)
		// Most mutations of a GPT only break its checksums: try the
		// disk with them fixed as well.
		if fixed := fixGPT(disk, ss); !bytes.Equal(fixed, disk) {
			checkPartitions(t, boundedReader{bytes.NewReader(fixed), 1 << 20, t}, ss)
		}
	})
}

// fixGPT returns a copy of disk with the checksums of its GPT header
// and entry array (where the disk holds them) recomputed.
func fixGPT(disk []byte, ss int) []byte {
	disk = bytes.Clone(disk)
	if len(disk) < ss+92 || string(disk[ss:ss+8]) != "EFI PART" {
		return disk
	}
	hdr := disk[ss:]
	lba := binary.LittleEndian.Uint64(hdr[72:])
	size := uint64(binary.LittleEndian.Uint32(hdr[80:])) * uint64(binary.LittleEndian.Uint32(hdr[84:]))
	if off := lba * uint64(ss); lba < 1<<20 && size <= 1<<20 && off+size <= uint64(len(disk)) {
		binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(disk[off:off+size]))
	}
	if hsize := int(binary.LittleEndian.Uint32(hdr[12:])); hsize >= 92 && hsize <= ss && hsize <= len(hdr) {
		binary.LittleEndian.PutUint32(hdr[16:], 0)
		binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:hsize]))
	}
	return disk
}

func checkPartitions(t *testing.T, r boundedReader, ss int) {
	parts, err := Partitions(r, ss)
	if err != nil {
		return
	}
	seen := map[int]bool{}
	for _, p := range parts {
		if p.Number < 1 || p.Number > 4096 || seen[p.Number] {
			t.Errorf("partition number %d", p.Number)
		}
		seen[p.Number] = true
		if len(p.UUID) != 36 && len(p.UUID) != len(fmt.Sprintf("%08x-%02x", 0, 1)) {
			t.Errorf("partition %d: UUID %q", p.Number, p.UUID)
		}
		if !utf8.ValidString(p.Label) {
			t.Errorf("partition %d: label %q is not UTF-8", p.Number, p.Label)
		}
	}
}

// TestFuzzSeedsParse makes sure the GPT seeds of FuzzProbe are valid,
// so that the fuzzer starts beyond the checksums.
func TestFuzzSeedsParse(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		parts, err := Partitions(bytes.NewReader(gptDisk(ss, "root", "ESP")), ss)
		if err != nil || len(parts) != 2 || parts[0].Label != "root" || parts[1].Label != "ESP" {
			t.Errorf("sector size %d: Partitions = %+v, %v", ss, parts, err)
		}
		if !bytes.Equal(fixGPT(gptDisk(ss, "x"), ss), gptDisk(ss, "x")) {
			t.Errorf("sector size %d: fixGPT changed valid checksums", ss)
		}
	}
}

// TestPartitionsHugeEntryArray attacks the allocation of the GPT entry
// array: a header (checksum valid) that claims 4096 entries of 2 GiB
// each must be refused before 8 TiB are allocated or read.
func TestPartitionsHugeEntryArray(t *testing.T) {
	disk := gptDisk(512, "root")
	hdr := disk[512 : 512+92]
	binary.LittleEndian.PutUint32(hdr[80:], 4096)
	binary.LittleEndian.PutUint32(hdr[84:], 1<<31)
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr))
	parts, err := Partitions(boundedReader{bytes.NewReader(disk), 1 << 20, t}, 512)
	if err == nil {
		t.Fatalf("Partitions = %+v, want an error", parts)
	}
	t.Log(err)
}
