package luks

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
)

// Binary header layout, from the LUKS2 on-disk format specification. All
// integers are big-endian; strings are NUL-terminated.
const (
	binHeaderSize = 4096

	offMagic     = 0   // [6]byte
	offVersion   = 6   // uint16
	offHdrSize   = 8   // uint64, binary header plus JSON area
	offSeqid     = 16  // uint64
	offLabel     = 24  // [48]byte
	offCsumAlg   = 72  // [32]byte
	offSalt      = 104 // [64]byte
	offUUID      = 168 // [40]byte
	offSubsystem = 208 // [48]byte
	offHdrOffset = 256 // uint64
	offCsum      = 448 // [64]byte

	lenLabel     = 48
	lenCsumAlg   = 32
	lenSalt      = 64
	lenUUID      = 40
	lenSubsystem = 48
	lenCsum      = 64

	magicPrimary   = "LUKS\xba\xbe"
	magicSecondary = "SKUL\xba\xbe"
	version2       = 2

	// defaultHeaderSize is cryptsetup's default metadata size: a 4 KiB
	// binary header and a 12 KiB JSON area.
	defaultHeaderSize = 16 << 10
)

// headerSizes are the sizes a LUKS2 header (binary header plus JSON area)
// may have; the secondary header sits at one of these offsets.
var headerSizes = []uint64{
	16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10,
	512 << 10, 1 << 20, 2 << 20, 4 << 20,
}

func validHeaderSize(n uint64) bool {
	for _, s := range headerSizes {
		if n == s {
			return true
		}
	}
	return false
}

// binHeader is the decoded binary header of one header copy.
type binHeader struct {
	magic     string
	version   uint16
	hdrSize   uint64
	seqid     uint64
	label     string
	csumAlg   string
	salt      [lenSalt]byte
	uuid      string
	subsystem string
	hdrOffset uint64
	csum      [lenCsum]byte
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseBinHeader(b []byte) binHeader {
	var h binHeader
	h.magic = string(b[offMagic : offMagic+6])
	h.version = binary.BigEndian.Uint16(b[offVersion:])
	h.hdrSize = binary.BigEndian.Uint64(b[offHdrSize:])
	h.seqid = binary.BigEndian.Uint64(b[offSeqid:])
	h.label = cstring(b[offLabel : offLabel+lenLabel])
	h.csumAlg = cstring(b[offCsumAlg : offCsumAlg+lenCsumAlg])
	copy(h.salt[:], b[offSalt:])
	h.uuid = cstring(b[offUUID : offUUID+lenUUID])
	h.subsystem = cstring(b[offSubsystem : offSubsystem+lenSubsystem])
	h.hdrOffset = binary.BigEndian.Uint64(b[offHdrOffset:])
	copy(h.csum[:], b[offCsum:])
	return h
}

// marshal encodes h into the first binHeaderSize bytes of b, with a zero
// checksum.
func (h *binHeader) marshal(b []byte) {
	clear(b[:binHeaderSize])
	copy(b[offMagic:], h.magic)
	binary.BigEndian.PutUint16(b[offVersion:], h.version)
	binary.BigEndian.PutUint64(b[offHdrSize:], h.hdrSize)
	binary.BigEndian.PutUint64(b[offSeqid:], h.seqid)
	copy(b[offLabel:offLabel+lenLabel-1], h.label)
	copy(b[offCsumAlg:offCsumAlg+lenCsumAlg-1], h.csumAlg)
	copy(b[offSalt:offSalt+lenSalt], h.salt[:])
	copy(b[offUUID:offUUID+lenUUID-1], h.uuid)
	copy(b[offSubsystem:offSubsystem+lenSubsystem-1], h.subsystem)
	binary.BigEndian.PutUint64(b[offHdrOffset:], h.hdrOffset)
}

// headerChecksum computes the checksum of a whole header copy (binary
// header plus JSON area) with the checksum field taken as zero.
func headerChecksum(hdr []byte, newHash func() hash.Hash) []byte {
	h := newHash()
	h.Write(hdr[:offCsum])
	h.Write(make([]byte, lenCsum))
	h.Write(hdr[offCsum+lenCsum:])
	return h.Sum(nil)
}

// hashByName returns the hash functions LUKS2 metadata may name: for
// header checksums, AF diffusion, PBKDF2 keyslots and digests.
func hashByName(name string) (func() hash.Hash, error) {
	switch name {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q: %w", name, ErrUnsupported)
}
