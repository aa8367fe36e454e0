package luks

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

var (
	// ErrNotLUKS2 means the device holds no LUKS2 header: neither copy has
	// the magic and version 2.
	ErrNotLUKS2 = errors.New("not a luks2 volume")

	// ErrCorrupt means a header copy, or both, failed a check: checksum,
	// size, or consistency of the JSON metadata.
	ErrCorrupt = errors.New("corrupt luks2 header")

	// ErrUnsupported means the volume is valid LUKS2 but uses a feature
	// this package does not implement (see the package doc).
	ErrUnsupported = errors.New("unsupported luks2 feature")

	// ErrWrongPassphrase means no keyslot opens with the passphrase.
	ErrWrongPassphrase = errors.New("wrong passphrase")
)

// Header is the metadata of a LUKS2 volume, from the newer valid header
// copy.
type Header struct {
	// UUID of the volume, as blkid and rd.luks.uuid= see it.
	// E.g. "ba0504ec-11b1-4015-b9fe-80939af15a81".
	UUID string
	// Label is the optional LUKS2 label, e.g. "root"; empty if none.
	Label string
	// Subsystem is the optional owner subsystem label; empty if none.
	Subsystem string
	// Seqid is the sequence id (cryptsetup's "Epoch"), increased on every
	// metadata update.
	Seqid uint64
	// HeaderSize is the size of one header copy (binary header plus JSON
	// area) in bytes, e.g. 16384.
	HeaderSize int64
	// Keyslots lists the keyslots in id order.
	Keyslots []Keyslot
	// Segments lists the data segments in id order. A volume that is not
	// under reencryption has exactly one.
	Segments []Segment
	// MaxMemory, if not zero, is how much argon2 memory in KiB Unlock may
	// use, e.g. MemAvailable from /proc/meminfo. Unlock skips a keyslot
	// that needs more, with an error naming it, instead of letting the
	// allocation get the process killed (in an initramfs that is PID 1,
	// and the boot is lost). Zero means only the 4 GiB format limit.
	MaxMemory uint64

	meta *metadata
}

// Keyslot describes one keyslot.
type Keyslot struct {
	ID int
	// Type is "luks2" for a keyslot that holds the volume key.
	Type string
	// KeySize is the size of the volume key it holds, in bytes.
	KeySize int
	// KDF is zero for keyslots of a type other than "luks2".
	KDF KDF
}

// Segment describes a data segment.
type Segment struct {
	ID int
	// Type is "crypt" for an encrypted segment.
	Type string
	// Offset of the segment from the device start in bytes, e.g. 16777216.
	Offset int64
	// Size in bytes; -1 means "dynamic": up to the end of the device.
	Size int64
	// Encryption is the dm-crypt cipher spec, e.g. "aes-xts-plain64".
	Encryption string
	// SectorSize is the encryption sector size in bytes: 512 or 4096
	// (1024 and 2048 are valid too).
	SectorSize int
	// IVTweak is added to the sector number (in 512-byte units) before
	// computing the IV; 0 except in volumes made by reencryption.
	IVTweak uint64
}

// ReadHeader reads and verifies both header copies of the LUKS2 volume in
// r and returns the metadata of the valid copy with the higher sequence
// id. It fails with ErrNotLUKS2 if neither copy has LUKS2 magic, and with
// ErrCorrupt if none is valid.
func ReadHeader(r io.ReaderAt) (*Header, error) {
	primary, perr := readCopy(r, 0, magicPrimary)
	// The secondary copy sits at the primary's size. If the primary is
	// unusable, look at every offset the format allows, as cryptsetup
	// does.
	var secondary *Header
	var serr error
	offsets := headerSizes
	if primary != nil {
		offsets = []uint64{uint64(primary.HeaderSize)}
	}
	for _, off := range offsets {
		secondary, serr = readCopy(r, off, magicSecondary)
		if !errors.Is(serr, ErrNotLUKS2) {
			break
		}
	}
	switch {
	case primary != nil && secondary != nil:
		if secondary.Seqid > primary.Seqid {
			return secondary, nil
		}
		return primary, nil
	case primary != nil:
		return primary, nil
	case secondary != nil:
		return secondary, nil
	}
	if errors.Is(perr, ErrNotLUKS2) && errors.Is(serr, ErrNotLUKS2) {
		return nil, fmt.Errorf("read header: %w", ErrNotLUKS2)
	}
	return nil, fmt.Errorf("read header: primary: %w; secondary: %w", perr, serr)
}

// readCopy reads the header copy at off.
func readCopy(r io.ReaderAt, off uint64, magic string) (*Header, error) {
	bin := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(bin, int64(off)); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrNotLUKS2
		}
		return nil, err
	}
	bh := parseBinHeader(bin)
	if bh.magic != magic || bh.version != version2 {
		return nil, ErrNotLUKS2
	}
	if !validHeaderSize(bh.hdrSize) {
		return nil, fmt.Errorf("%w: bad header size %d", ErrCorrupt, bh.hdrSize)
	}
	if bh.hdrOffset != off {
		return nil, fmt.Errorf("%w: header at %d claims offset %d", ErrCorrupt, off, bh.hdrOffset)
	}
	newHash, err := hashByName(bh.csumAlg)
	if err != nil {
		return nil, fmt.Errorf("%w: checksum: %w", ErrCorrupt, err)
	}
	buf := make([]byte, bh.hdrSize)
	copy(buf, bin)
	if _, err := r.ReadAt(buf[binHeaderSize:], int64(off)+binHeaderSize); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated JSON area", ErrCorrupt)
		}
		return nil, err
	}
	sum := headerChecksum(buf, newHash)
	if subtle.ConstantTimeCompare(sum, bh.csum[:len(sum)]) != 1 {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	area := buf[binHeaderSize:]
	end := bytes.IndexByte(area, 0)
	if end < 0 {
		return nil, fmt.Errorf("%w: JSON area not NUL-terminated", ErrCorrupt)
	}
	var m metadata
	if err := json.Unmarshal(area[:end], &m); err != nil {
		return nil, fmt.Errorf("%w: JSON: %w", ErrCorrupt, err)
	}
	if err := m.validate(bh.hdrSize); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return newHeader(&bh, &m), nil
}

// newHeader builds the exported view of a validated header copy.
func newHeader(bh *binHeader, m *metadata) *Header {
	h := &Header{
		UUID:       bh.uuid,
		Label:      bh.label,
		Subsystem:  bh.subsystem,
		Seqid:      bh.seqid,
		HeaderSize: int64(bh.hdrSize),
		meta:       m,
	}
	for _, id := range sortedIDs(m.Keyslots) {
		ks := m.Keyslots[id]
		n, _ := parseID(id)
		k := Keyslot{ID: n, Type: ks.Type, KeySize: ks.KeySize}
		if ks.Type == "luks2" {
			k.KDF = KDF{
				Type:       ks.KDF.Type,
				Time:       ks.KDF.Time,
				Memory:     ks.KDF.Memory,
				Threads:    uint8(ks.KDF.CPUs),
				Hash:       ks.KDF.Hash,
				Iterations: ks.KDF.Iterations,
			}
		}
		h.Keyslots = append(h.Keyslots, k)
	}
	for _, id := range sortedIDs(m.Segments) {
		s := m.Segments[id]
		n, _ := parseID(id)
		size := int64(-1)
		if !s.Size.dynamic {
			size = int64(s.Size.v)
		}
		h.Segments = append(h.Segments, Segment{
			ID:         n,
			Type:       s.Type,
			Offset:     int64(s.Offset.v),
			Size:       size,
			Encryption: s.Encryption,
			SectorSize: s.SectorSize,
			IVTweak:    s.IVTweak.v,
		})
	}
	return h
}
