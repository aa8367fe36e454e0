package luks

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Limits that keep a hostile header from making us allocate or compute
// without bound (the boot waits for Unlock). Where cryptsetup has a limit
// (crypt_pbkdf_get_limits in its utils_pbkdf.c: argon2 memory at most
// 4 GiB, parallel cost at most 4), the limit is cryptsetup's; where
// cryptsetup has none (it allows argon2 time costs and PBKDF2 iterations
// up to 2^32-1, hours of work), the limit is ours, chosen to admit every
// header cryptsetup's benchmark makes with its default --iter-time and
// several times that.
const (
	maxKeyslots     = 32        // cryptsetup's LUKS2_KEYSLOTS_MAX
	maxKeyslotsSize = 128 << 20 // cryptsetup's LUKS2_MAX_KEYSLOTS_SIZE
	maxKeySize      = 512       // bytes of a volume or area key
	maxStripes      = 4000 * 16
	maxArgonMemory  = 4 << 20 // KiB: cryptsetup's maximum, 4 GiB
	maxArgonThreads = 4       // cryptsetup's maximum parallel cost
	maxArgonTime    = 1 << 20
	// maxArgonWork bounds time × memory (KiB): 32 GiB-passes, e.g. 4 GiB
	// with 8 passes or 1 GiB with 32 (cryptsetup's benchmark picks 1 GiB
	// and about 4 to 10 passes). Go's argon2 does about 1 GiB-pass per
	// 1 to 4 s on one core, so the worst keyslot costs minutes, not days.
	maxArgonWork = 32 << 20
	// maxPBKDF2Iterations bounds PBKDF2 iteration counts, of keyslots
	// and digests: 2^26, about 67 million, 1 to 4 minutes in Go on one
	// core (cryptsetup's benchmark picks a few million for 2 s).
	maxPBKDF2Iterations = 1 << 26
	maxSaltSize         = 1024
)

// metadata is the JSON area of a LUKS2 header. Unknown fields and unknown
// object types are tolerated where the format allows them (tokens, flags).
type metadata struct {
	Keyslots map[string]*jsonKeyslot    `json:"keyslots"`
	Tokens   map[string]json.RawMessage `json:"tokens"`
	Segments map[string]*jsonSegment    `json:"segments"`
	Digests  map[string]*jsonDigest     `json:"digests"`
	Config   *jsonConfig                `json:"config"`
}

type jsonKeyslot struct {
	Type     string    `json:"type"`
	KeySize  int       `json:"key_size"`
	AF       *jsonAF   `json:"af,omitempty"`
	Area     *jsonArea `json:"area,omitempty"`
	KDF      *jsonKDF  `json:"kdf,omitempty"`
	Priority *int      `json:"priority,omitempty"`
}

type jsonAF struct {
	Type    string `json:"type"`
	Stripes int    `json:"stripes"`
	Hash    string `json:"hash"`
}

type jsonArea struct {
	Type       string `json:"type"`
	Offset     u64    `json:"offset"`
	Size       u64    `json:"size"`
	Encryption string `json:"encryption,omitempty"`
	KeySize    int    `json:"key_size,omitempty"`
}

type jsonKDF struct {
	Type       string `json:"type"`
	Hash       string `json:"hash,omitempty"`       // pbkdf2
	Iterations uint32 `json:"iterations,omitempty"` // pbkdf2
	Time       uint32 `json:"time,omitempty"`       // argon2
	Memory     uint32 `json:"memory,omitempty"`     // argon2, KiB
	CPUs       uint32 `json:"cpus,omitempty"`       // argon2
	Salt       []byte `json:"salt"`
}

type jsonSegment struct {
	Type       string          `json:"type"`
	Offset     u64             `json:"offset"`
	Size       segmentSize     `json:"size"`
	IVTweak    u64             `json:"iv_tweak"`
	Encryption string          `json:"encryption"`
	SectorSize int             `json:"sector_size"`
	Integrity  json.RawMessage `json:"integrity,omitempty"`
	Flags      []string        `json:"flags,omitempty"`
}

type jsonDigest struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations uint32   `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

type jsonConfig struct {
	JSONSize     u64           `json:"json_size"`
	KeyslotsSize u64           `json:"keyslots_size"`
	Flags        []string      `json:"flags,omitempty"`
	Requirements *requirements `json:"requirements,omitempty"`
}

type requirements struct {
	Mandatory []string `json:"mandatory,omitempty"`
}

// u64 is a 64-bit unsigned integer, which LUKS2 stores as a JSON string of
// decimal digits (JSON numbers are not exact beyond 2^53). set records
// whether the field was present.
type u64 struct {
	v   uint64
	set bool
}

func num(v uint64) u64 { return u64{v: v, set: true} }

func (n u64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(n.v, 10)), nil
}

func (n *u64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a decimal string: %w", err)
	}
	v, err := parseDecimal(s)
	if err != nil {
		return err
	}
	*n = num(v)
	return nil
}

func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// segmentSize is a segment's "size": a decimal string, or "dynamic" for
// "up to the end of the device".
type segmentSize struct {
	u64
	dynamic bool
}

func (s segmentSize) MarshalJSON() ([]byte, error) {
	if s.dynamic {
		return []byte(`"dynamic"`), nil
	}
	return s.u64.MarshalJSON()
}

func (s *segmentSize) UnmarshalJSON(b []byte) error {
	if string(b) == `"dynamic"` {
		*s = segmentSize{u64: u64{set: true}, dynamic: true}
		return nil
	}
	return s.u64.UnmarshalJSON(b)
}

// parseID parses an object key of keyslots, segments, digests or tokens: a
// small decimal number.
func parseID(s string) (int, error) {
	v, err := parseDecimal(s)
	if err != nil || v >= 1<<16 {
		return 0, fmt.Errorf("bad object id %q", s)
	}
	return int(v), nil
}

// validate checks the metadata of a header copy whose total size is
// hdrSize. It checks everything Unlock later relies on, so that no header
// can make it panic or allocate without bound.
func (m *metadata) validate(hdrSize uint64) error {
	if m.Keyslots == nil || m.Segments == nil || m.Digests == nil || m.Config == nil || m.Tokens == nil {
		return fmt.Errorf("missing keyslots, tokens, segments, digests or config")
	}
	c := m.Config
	if !c.JSONSize.set || c.JSONSize.v != hdrSize-binHeaderSize {
		return fmt.Errorf("config: json_size %d does not match header size %d", c.JSONSize.v, hdrSize)
	}
	if !c.KeyslotsSize.set || c.KeyslotsSize.v%4096 != 0 || c.KeyslotsSize.v > maxKeyslotsSize {
		return fmt.Errorf("config: bad keyslots_size %d", c.KeyslotsSize.v)
	}
	for id := range m.Tokens {
		if _, err := parseID(id); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	if len(m.Keyslots) > maxKeyslots {
		return fmt.Errorf("%d keyslots, at most %d allowed", len(m.Keyslots), maxKeyslots)
	}
	areaStart, areaEnd := 2*hdrSize, 2*hdrSize+c.KeyslotsSize.v
	for id, ks := range m.Keyslots {
		if n, err := parseID(id); err != nil || n >= maxKeyslots {
			return fmt.Errorf("keyslot %q: bad id", id)
		}
		if ks == nil {
			return fmt.Errorf("keyslot %s: null", id)
		}
		if err := ks.validate(areaStart, areaEnd); err != nil {
			return fmt.Errorf("keyslot %s: %w", id, err)
		}
	}
	for id, s := range m.Segments {
		if _, err := parseID(id); err != nil {
			return fmt.Errorf("segment: %w", err)
		}
		if s == nil {
			return fmt.Errorf("segment %s: null", id)
		}
		if err := s.validate(); err != nil {
			return fmt.Errorf("segment %s: %w", id, err)
		}
	}
	for id, d := range m.Digests {
		if _, err := parseID(id); err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		if d == nil {
			return fmt.Errorf("digest %s: null", id)
		}
		if err := d.validate(m); err != nil {
			return fmt.Errorf("digest %s: %w", id, err)
		}
	}
	return nil
}

func (ks *jsonKeyslot) validate(areaStart, areaEnd uint64) error {
	if ks.KeySize <= 0 || ks.KeySize > maxKeySize {
		return fmt.Errorf("bad key_size %d", ks.KeySize)
	}
	if ks.Priority != nil && (*ks.Priority < 0 || *ks.Priority > 2) {
		return fmt.Errorf("bad priority %d", *ks.Priority)
	}
	if ks.Type != "luks2" {
		// Other keyslot types (e.g. "reencrypt") hold no key; Unlock
		// skips them.
		return nil
	}
	if ks.AF == nil || ks.Area == nil || ks.KDF == nil {
		return fmt.Errorf("missing af, area or kdf")
	}
	af := ks.AF
	if af.Type != "luks1" {
		return fmt.Errorf("af type %q: %w", af.Type, ErrUnsupported)
	}
	if af.Stripes <= 0 || af.Stripes > maxStripes {
		return fmt.Errorf("bad af stripes %d", af.Stripes)
	}
	if af.Hash == "" {
		return fmt.Errorf("missing af hash")
	}
	a := ks.Area
	if a.Type != "raw" {
		return fmt.Errorf("area type %q: %w", a.Type, ErrUnsupported)
	}
	if !a.Offset.set || !a.Size.set || a.Encryption == "" {
		return fmt.Errorf("area: missing offset, size or encryption")
	}
	if a.KeySize <= 0 || a.KeySize > maxKeySize {
		return fmt.Errorf("area: bad key_size %d", a.KeySize)
	}
	if a.Offset.v%512 != 0 || a.Offset.v < areaStart || a.Size.v > areaEnd || a.Offset.v > areaEnd-a.Size.v {
		return fmt.Errorf("area [%d, +%d) outside keyslots area [%d, %d)", a.Offset.v, a.Size.v, areaStart, areaEnd)
	}
	if uint64(ks.KeySize)*uint64(af.Stripes) > a.Size.v {
		return fmt.Errorf("area size %d too small for %d stripes of %d bytes", a.Size.v, af.Stripes, ks.KeySize)
	}
	return ks.KDF.validate()
}

func (k *jsonKDF) validate() error {
	if len(k.Salt) == 0 || len(k.Salt) > maxSaltSize {
		return fmt.Errorf("kdf: bad salt length %d", len(k.Salt))
	}
	switch k.Type {
	case "pbkdf2":
		if k.Hash == "" || k.Iterations == 0 {
			return fmt.Errorf("kdf: pbkdf2 needs hash and iterations")
		}
		if k.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("kdf: pbkdf2 iterations %d exceed the limit of %d", k.Iterations, maxPBKDF2Iterations)
		}
	case "argon2i", "argon2id":
		if k.Time == 0 || k.Time > maxArgonTime {
			return fmt.Errorf("kdf: argon2 time %d out of range [1, %d]", k.Time, maxArgonTime)
		}
		if k.Memory == 0 || k.Memory > maxArgonMemory {
			return fmt.Errorf("kdf: argon2 memory %d KiB out of range [1, %d] (cryptsetup's maximum)", k.Memory, maxArgonMemory)
		}
		if k.CPUs == 0 || k.CPUs > maxArgonThreads {
			return fmt.Errorf("kdf: argon2 cpus %d out of range [1, %d] (cryptsetup's maximum)", k.CPUs, maxArgonThreads)
		}
		if uint64(k.Time)*uint64(k.Memory) > maxArgonWork {
			return fmt.Errorf("kdf: argon2 time %d × memory %d KiB exceed the limit of %d KiB-passes (e.g. 4 GiB with %d passes)",
				k.Time, k.Memory, maxArgonWork, maxArgonWork/maxArgonMemory)
		}
	default:
		return fmt.Errorf("kdf type %q: %w", k.Type, ErrUnsupported)
	}
	return nil
}

func (s *jsonSegment) validate() error {
	if s.Type != "crypt" {
		// Segments of other types (e.g. "linear") appear only in volumes
		// under reencryption, which Unlock refuses.
		return nil
	}
	if !s.Offset.set || !s.Size.set || !s.IVTweak.set || s.Encryption == "" {
		return fmt.Errorf("missing offset, size, iv_tweak or encryption")
	}
	switch s.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return fmt.Errorf("bad sector_size %d", s.SectorSize)
	}
	if s.Offset.v%512 != 0 || s.Offset.v > 1<<62 {
		return fmt.Errorf("bad offset %d", s.Offset.v)
	}
	if !s.Size.dynamic && (s.Size.v%uint64(s.SectorSize) != 0 || s.Size.v > 1<<62) {
		return fmt.Errorf("bad size %d", s.Size.v)
	}
	if s.IVTweak.v > 1<<62 {
		return fmt.Errorf("bad iv_tweak %d", s.IVTweak.v)
	}
	return nil
}

func (d *jsonDigest) validate(m *metadata) error {
	if d.Type != "pbkdf2" {
		return fmt.Errorf("type %q: %w", d.Type, ErrUnsupported)
	}
	if d.Hash == "" || d.Iterations == 0 {
		return fmt.Errorf("pbkdf2 needs hash and iterations")
	}
	if d.Iterations > maxPBKDF2Iterations {
		return fmt.Errorf("pbkdf2 iterations %d exceed the limit of %d", d.Iterations, maxPBKDF2Iterations)
	}
	if len(d.Salt) == 0 || len(d.Salt) > maxSaltSize {
		return fmt.Errorf("bad salt length %d", len(d.Salt))
	}
	if len(d.Digest) == 0 || len(d.Digest) > 64 {
		return fmt.Errorf("bad digest length %d", len(d.Digest))
	}
	for _, id := range d.Keyslots {
		if _, ok := m.Keyslots[id]; !ok {
			return fmt.Errorf("refers to missing keyslot %q", id)
		}
	}
	for _, id := range d.Segments {
		if _, ok := m.Segments[id]; !ok {
			return fmt.Errorf("refers to missing segment %q", id)
		}
	}
	return nil
}

// sortedIDs returns the keys of an object map in numeric order. The keys
// have been validated by parseID.
func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := parseID(a)
		y, _ := parseID(b)
		return x - y
	})
	return ids
}
