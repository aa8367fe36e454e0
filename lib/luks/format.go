package luks

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// FormatOptions configures Format and Encrypt. The zero value gives
// cryptsetup's defaults except for the KDF costs (see KDF).
type FormatOptions struct {
	// KDF of keyslot 0. The zero value means argon2id with 4 passes,
	// 256 MiB and 4 threads.
	KDF KDF
	// KeySize is the volume key size in bytes: 64 (AES-256-XTS, the
	// default) or 32 (AES-128-XTS).
	KeySize int
	// SectorSize is the encryption sector size of the data segment: 512
	// (the default), 1024, 2048 or 4096. The filesystem's block size must
	// be a multiple of it.
	SectorSize int
	// DataOffset is where the data segment starts, in bytes. It must be a
	// multiple of 4096 and leave room for both headers and the keyslot
	// (at least 284 KiB for a 64-byte key). Zero means 16 MiB, as
	// cryptsetup does.
	DataOffset int64
	// DigestIterations is the PBKDF2-SHA256 iteration count of the digest
	// that verifies the volume key. Zero means 100000.
	DigestIterations uint32
	// UUID of the volume, e.g. "ba0504ec-11b1-4015-b9fe-80939af15a81".
	// Empty means a random (version 4) UUID.
	UUID string
	// Label and Subsystem are optional LUKS2 labels of at most 47 bytes,
	// e.g. "root".
	Label, Subsystem string
	// Key is the volume key to protect. Nil means a fresh random key, which
	// is what a new volume wants.
	Key []byte
	// Rand is the source of salts, keys and AF stripes. Nil means
	// crypto/rand.Reader, which is what a real volume wants: anything
	// else is for tests. Whoever can reproduce Rand's output can compute
	// the volume key without the passphrase.
	Rand io.Reader
}

const (
	defaultKeySize          = 64
	defaultDataOffset       = 16 << 20
	defaultDigestIterations = 100000
	afStripes               = 4000
	saltSize                = 32
)

// layout holds the sizes Format derives from its options.
type layout struct {
	hdrSize      uint64
	areaOffset   uint64
	areaSize     uint64
	keyslotsSize uint64
	dataOffset   uint64
}

func (o *FormatOptions) withDefaults() (FormatOptions, layout, error) {
	opts := *o
	if opts.KeySize == 0 {
		opts.KeySize = defaultKeySize
		if opts.Key != nil {
			opts.KeySize = len(opts.Key)
		}
	}
	if opts.KeySize != 32 && opts.KeySize != 64 {
		return opts, layout{}, fmt.Errorf("key size %d: want 32 or 64", opts.KeySize)
	}
	if opts.Key != nil && len(opts.Key) != opts.KeySize {
		return opts, layout{}, fmt.Errorf("key of %d bytes, want %d", len(opts.Key), opts.KeySize)
	}
	if opts.SectorSize == 0 {
		opts.SectorSize = 512
	}
	switch opts.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return opts, layout{}, fmt.Errorf("sector size %d: want 512, 1024, 2048 or 4096", opts.SectorSize)
	}
	if opts.DataOffset == 0 {
		opts.DataOffset = defaultDataOffset
	}
	if opts.DigestIterations == 0 {
		opts.DigestIterations = defaultDigestIterations
	}
	if opts.DigestIterations > maxPBKDF2Iterations {
		return opts, layout{}, fmt.Errorf("digest iterations %d: at most %d", opts.DigestIterations, maxPBKDF2Iterations)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	var err error
	if opts.KDF, err = opts.KDF.withDefaults(); err != nil {
		return opts, layout{}, err
	}
	for _, l := range []struct{ name, v string }{{"label", opts.Label}, {"subsystem", opts.Subsystem}} {
		if len(l.v) >= lenLabel || strings.IndexByte(l.v, 0) >= 0 {
			return opts, layout{}, fmt.Errorf("%s %q: at most %d bytes, no NUL", l.name, l.v, lenLabel-1)
		}
	}
	if opts.UUID != "" && !validUUID(opts.UUID) {
		return opts, layout{}, fmt.Errorf("uuid %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", opts.UUID)
	}

	l := layout{hdrSize: defaultHeaderSize}
	l.areaOffset = 2 * l.hdrSize
	l.areaSize = roundUp(uint64(afSectors(opts.KeySize, afStripes)), 4096)
	l.dataOffset = uint64(opts.DataOffset)
	minOffset := l.areaOffset + l.areaSize
	if opts.DataOffset < 0 || l.dataOffset%4096 != 0 || l.dataOffset%uint64(opts.SectorSize) != 0 || l.dataOffset < minOffset {
		return opts, layout{}, fmt.Errorf("data offset %d: want a multiple of 4096 of at least %d", opts.DataOffset, minOffset)
	}
	l.keyslotsSize = min(l.dataOffset-l.areaOffset, maxKeyslotsSize)
	return opts, l, nil
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c)) {
				return false
			}
		}
	}
	return true
}

func newUUID(rand io.Reader) (string, error) {
	var u [16]byte
	if _, err := io.ReadFull(rand, u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func randomBytes(rand io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(rand, b)
	return b, err
}

// Format writes a new LUKS2 header to w (a block device or an image file)
// with one keyslot (id 0) that opens with passphrase, and returns the
// volume with its key. It writes both header copies and the keyslots area
// (everything before DataOffset, up to cryptsetup's keyslots area maximum
// of 128 MiB). The data segment is "dynamic": it extends to the end of the
// device. Format does not touch it, so whatever it holds is not encrypted;
// use Encrypt or Volume.EncryptFrom to fill it.
func Format(w io.WriterAt, passphrase []byte, opts FormatOptions) (*Volume, error) {
	v, err := format(w, passphrase, opts)
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	return v, nil
}

func format(w io.WriterAt, passphrase []byte, o FormatOptions) (*Volume, error) {
	opts, l, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	rnd := opts.Rand
	key := opts.Key
	if key == nil {
		if key, err = randomBytes(rnd, opts.KeySize); err != nil {
			return nil, err
		}
	} else {
		key = append([]byte(nil), key...)
	}
	uuid := opts.UUID
	if uuid == "" {
		if uuid, err = newUUID(rnd); err != nil {
			return nil, err
		}
	}
	kdfSalt, err := randomBytes(rnd, saltSize)
	if err != nil {
		return nil, err
	}
	digestSalt, err := randomBytes(rnd, saltSize)
	if err != nil {
		return nil, err
	}

	ks := &jsonKeyslot{
		Type:    "luks2",
		KeySize: opts.KeySize,
		AF:      &jsonAF{Type: "luks1", Stripes: afStripes, Hash: "sha256"},
		Area: &jsonArea{
			Type:       "raw",
			Offset:     num(l.areaOffset),
			Size:       num(l.areaSize),
			Encryption: cipherSpec,
			KeySize:    opts.KeySize,
		},
		KDF: opts.KDF.json(kdfSalt),
	}
	digest := &jsonDigest{
		Type:       "pbkdf2",
		Keyslots:   []string{"0"},
		Segments:   []string{"0"},
		Hash:       "sha256",
		Iterations: opts.DigestIterations,
		Salt:       digestSalt,
	}
	if digest.Digest, err = digest.compute(key, sha256.Size); err != nil {
		return nil, err
	}
	m := &metadata{
		Keyslots: map[string]*jsonKeyslot{"0": ks},
		Tokens:   map[string]json.RawMessage{},
		Segments: map[string]*jsonSegment{"0": {
			Type:       "crypt",
			Offset:     num(l.dataOffset),
			Size:       segmentSize{u64: u64{set: true}, dynamic: true},
			IVTweak:    num(0),
			Encryption: cipherSpec,
			SectorSize: opts.SectorSize,
		}},
		Digests: map[string]*jsonDigest{"0": digest},
		Config: &jsonConfig{
			JSONSize:     num(l.hdrSize - binHeaderSize),
			KeyslotsSize: num(l.keyslotsSize),
		},
	}
	// Validate what we write with the same checks as what we read.
	if err := m.validate(l.hdrSize); err != nil {
		return nil, fmt.Errorf("internal error: %w", err)
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if uint64(len(js)) >= l.hdrSize-binHeaderSize {
		return nil, fmt.Errorf("JSON metadata of %d bytes does not fit", len(js))
	}

	material, err := sealKeyslot(ks, key, passphrase, rnd)
	if err != nil {
		return nil, err
	}

	// Wipe the keyslots area, then write the keyslot, then the headers:
	// secondary first, so that until the primary is written, no valid
	// primary of an older volume points at a half-written keyslots area.
	zero := make([]byte, 1<<20)
	for off := l.areaOffset; off < l.areaOffset+l.keyslotsSize; off += uint64(len(zero)) {
		n := min(uint64(len(zero)), l.areaOffset+l.keyslotsSize-off)
		if _, err := w.WriteAt(zero[:n], int64(off)); err != nil {
			return nil, err
		}
	}
	if _, err := w.WriteAt(material, int64(l.areaOffset)); err != nil {
		return nil, err
	}
	bh := binHeader{
		version:   version2,
		hdrSize:   l.hdrSize,
		seqid:     1,
		label:     opts.Label,
		csumAlg:   "sha256",
		uuid:      uuid,
		subsystem: opts.Subsystem,
	}
	for _, c := range []struct {
		magic  string
		offset uint64
	}{{magicSecondary, l.hdrSize}, {magicPrimary, 0}} {
		bh.magic, bh.hdrOffset = c.magic, c.offset
		if _, err := io.ReadFull(rnd, bh.salt[:]); err != nil {
			return nil, err
		}
		buf := make([]byte, l.hdrSize)
		bh.marshal(buf)
		copy(buf[binHeaderSize:], js)
		copy(buf[offCsum:], headerChecksum(buf, sha256.New))
		if _, err := w.WriteAt(buf, int64(c.offset)); err != nil {
			return nil, err
		}
	}
	h := newHeader(&bh, m)
	return &Volume{Header: h, Keyslot: 0, Key: key, Segment: h.Segments[0]}, nil
}
