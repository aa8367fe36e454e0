package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// rewriteCopy replaces the JSON area of the header copy at off in img with
// js and fixes up its checksum, so that only the JSON content is wrong.
func rewriteCopy(t *testing.T, img []byte, off int, js []byte) {
	t.Helper()
	js = bytes.Clone(js) // it may point into img
	size := int(binary.BigEndian.Uint64(img[off+offHdrSize:]))
	hdr := img[off : off+size]
	area := hdr[binHeaderSize:]
	if len(js) > len(area) {
		t.Fatalf("JSON of %d bytes does not fit the area of %d", len(js), len(area))
	}
	clear(area)
	copy(area, js)
	clear(hdr[offCsum : offCsum+lenCsum])
	copy(hdr[offCsum:], headerChecksum(hdr, sha256.New))
}

// readJSON returns the JSON text of the header copy at off in img.
func readJSON(img []byte, off int) []byte {
	size := int(binary.BigEndian.Uint64(img[off+offHdrSize:]))
	area := img[off+binHeaderSize : off+size]
	return area[:bytes.IndexByte(area, 0)]
}

// rewriteMetadata returns a copy of img (a volume's leading bytes, both
// header copies included) in which edit changed the metadata of both
// copies, with valid checksums.
func rewriteMetadata(t *testing.T, img []byte, edit func(m *metadata)) []byte {
	t.Helper()
	img = bytes.Clone(img)
	size := int(binary.BigEndian.Uint64(img[offHdrSize:]))
	for _, off := range []int{0, size} {
		var m metadata
		if err := json.Unmarshal(readJSON(img, off), &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		js, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		rewriteCopy(t, img, off, js)
	}
	return img
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadHeaderFixtures pins ReadHeader's view of headers cryptsetup
// wrote (testdata/gen.sh).
func TestReadHeaderFixtures(t *testing.T) {
	const uuid = "5b1a6f0e-8c1d-4c1e-9a47-0d1c0ffee000"
	pbkdf2 := KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}
	segment := func(sectorSize int) []Segment {
		return []Segment{{ID: 0, Type: "crypt", Offset: 16 << 20, Size: -1, Encryption: "aes-xts-plain64", SectorSize: sectorSize}}
	}
	for _, tt := range []struct {
		name string
		want *Header
	}{
		{
			name: "pbkdf2.hdr",
			want: &Header{
				UUID: uuid, Seqid: 3, HeaderSize: 16384,
				Keyslots: []Keyslot{{ID: 0, Type: "luks2", KeySize: 64, KDF: pbkdf2}},
				Segments: segment(512),
			},
		},
		{
			name: "pbkdf2-4096-label.hdr",
			want: &Header{
				UUID: uuid, Label: "root", Subsystem: "distri", Seqid: 3, HeaderSize: 16384,
				Keyslots: []Keyslot{{ID: 0, Type: "luks2", KeySize: 64, KDF: pbkdf2}},
				Segments: segment(4096),
			},
		},
		{
			name: "argon2id.hdr",
			want: &Header{
				UUID: uuid, Seqid: 3, HeaderSize: 16384,
				Keyslots: []Keyslot{{ID: 0, Type: "luks2", KeySize: 64, KDF: KDF{Type: "argon2id", Time: 4, Memory: 32, Threads: 1}}},
				Segments: segment(4096),
			},
		},
		{
			name: "two-keyslots.hdr",
			want: &Header{
				UUID: uuid, Seqid: 4, HeaderSize: 16384,
				Keyslots: []Keyslot{
					{ID: 0, Type: "luks2", KeySize: 64, KDF: pbkdf2},
					{ID: 1, Type: "luks2", KeySize: 64, KDF: pbkdf2},
				},
				Segments: segment(4096),
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadHeader(bytes.NewReader(readFixture(t, tt.name)))
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(Header{})); diff != "" {
				t.Errorf("ReadHeader mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadHeaderCorrupt damages headers in the ways a disk or an attacker
// might and checks that ReadHeader falls back to the other copy or fails
// with the right error, never panics.
func TestReadHeaderCorrupt(t *testing.T) {
	good := readFixture(t, "pbkdf2.hdr")
	const secondary = 16384
	// editJSON replaces text in the JSON of both copies.
	editJSON := func(old, new string) func(t *testing.T, img []byte) {
		return func(t *testing.T, img []byte) {
			for _, off := range []int{0, secondary} {
				js := string(readJSON(img, off))
				if !strings.Contains(js, old) {
					t.Fatalf("JSON lacks %q:\n%s", old, js)
				}
				rewriteCopy(t, img, off, []byte(strings.Replace(js, old, new, 1)))
			}
		}
	}
	// editBoth applies f to the metadata of both copies.
	editBoth := func(f func(m *metadata)) func(t *testing.T, img []byte) {
		return func(t *testing.T, img []byte) {
			copy(img, rewriteMetadata(t, img, f))
		}
	}
	for _, tt := range []struct {
		name      string
		damage    func(t *testing.T, img []byte)
		wantErr   error // nil: ReadHeader succeeds
		wantSeqid uint64
	}{
		{
			name:      "intact",
			damage:    func(*testing.T, []byte) {},
			wantSeqid: 3,
		},
		{
			name:      "primary-checksum",
			damage:    func(_ *testing.T, img []byte) { img[offCsum] ^= 1 },
			wantSeqid: 3,
		},
		{
			name:      "primary-json-bitflip",
			damage:    func(_ *testing.T, img []byte) { img[binHeaderSize+10] ^= 1 },
			wantSeqid: 3,
		},
		{
			name:      "primary-magic",
			damage:    func(_ *testing.T, img []byte) { copy(img, "XXXX") },
			wantSeqid: 3,
		},
		{
			name:      "secondary-checksum",
			damage:    func(_ *testing.T, img []byte) { img[secondary+offCsum] ^= 1 },
			wantSeqid: 3,
		},
		{
			name: "secondary-newer",
			damage: func(t *testing.T, img []byte) {
				binary.BigEndian.PutUint64(img[secondary+offSeqid:], 7)
				rewriteCopy(t, img, secondary, readJSON(img, secondary))
			},
			wantSeqid: 7,
		},
		{
			name: "both-checksums",
			damage: func(_ *testing.T, img []byte) {
				img[offCsum] ^= 1
				img[secondary+offCsum] ^= 1
			},
			wantErr: ErrCorrupt,
		},
		{
			name:    "no-magic",
			damage:  func(_ *testing.T, img []byte) { clear(img) },
			wantErr: ErrNotLUKS2,
		},
		{
			name: "luks1-version",
			damage: func(_ *testing.T, img []byte) {
				binary.BigEndian.PutUint16(img[offVersion:], 1)
				copy(img[secondary:], "XXXX")
			},
			wantErr: ErrNotLUKS2,
		},
		{
			name: "huge-header-size",
			damage: func(_ *testing.T, img []byte) {
				for _, off := range []int{0, secondary} {
					binary.BigEndian.PutUint64(img[off+offHdrSize:], 1<<62)
				}
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "header-size-beyond-input",
			damage: func(_ *testing.T, img []byte) {
				binary.BigEndian.PutUint64(img[offHdrSize:], 4<<20)
				copy(img[secondary:], "XXXX")
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "wrong-hdr-offset",
			damage: func(t *testing.T, img []byte) {
				for _, off := range []int{0, secondary} {
					binary.BigEndian.PutUint64(img[off+offHdrOffset:], 4096)
					rewriteCopy(t, img, off, readJSON(img, off))
				}
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "unknown-checksum-alg",
			damage: func(t *testing.T, img []byte) {
				for _, off := range []int{0, secondary} {
					copy(img[off+offCsumAlg:], "crc32\x00")
				}
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "json-not-terminated",
			damage: func(t *testing.T, img []byte) {
				js := bytes.Repeat([]byte(" "), secondary-binHeaderSize)
				copy(js, readJSON(good, 0))
				for _, off := range []int{0, secondary} {
					rewriteCopy(t, img, off, js)
				}
			},
			wantErr: ErrCorrupt,
		},
		{name: "json-syntax", damage: editJSON(`"keyslots":{`, `"keyslots":{{`), wantErr: ErrCorrupt},
		{name: "json-size-mismatch", damage: editJSON(`"json_size":"12288"`, `"json_size":"4294967296"`), wantErr: ErrCorrupt},
		{name: "json-size-number", damage: editJSON(`"json_size":"12288"`, `"json_size":12288`), wantErr: ErrCorrupt},
		{name: "keyslots-size-huge", damage: editJSON(`"keyslots_size":"16744448"`, `"keyslots_size":"18446744073709551615"`), wantErr: ErrCorrupt},
		{name: "keyslots-size-overflow", damage: editJSON(`"keyslots_size":"16744448"`, `"keyslots_size":"18446744073709551616"`), wantErr: ErrCorrupt},
		{name: "negative-offset", damage: editJSON(`"offset":"16777216"`, `"offset":"-512"`), wantErr: ErrCorrupt},
		{name: "bad-base64-salt", damage: editJSON(`"salt":"`, `"salt":"!!`), wantErr: ErrCorrupt},
		{name: "missing-config", damage: editJSON(`"config":`, `"xconfig":`), wantErr: ErrCorrupt},
		{name: "null-segments", damage: editBoth(func(m *metadata) { m.Segments = nil }), wantErr: ErrCorrupt},
		{name: "null-keyslot", damage: editBoth(func(m *metadata) { m.Keyslots["0"] = nil }), wantErr: ErrCorrupt},
		{name: "missing-kdf", damage: editBoth(func(m *metadata) { m.Keyslots["0"].KDF = nil }), wantErr: ErrCorrupt},
		{name: "missing-area-offset", damage: editJSON(`"offset":"32768",`, ``), wantErr: ErrCorrupt},
		{name: "missing-iv-tweak", damage: editJSON(`"iv_tweak":"0",`, ``), wantErr: ErrCorrupt},
		{name: "empty-salt", damage: editBoth(func(m *metadata) { m.Keyslots["0"].KDF.Salt = nil }), wantErr: ErrCorrupt},
		{name: "zero-iterations", damage: editBoth(func(m *metadata) { m.Digests["0"].Iterations = 0 }), wantErr: ErrCorrupt},
		{name: "huge-stripes", damage: editBoth(func(m *metadata) { m.Keyslots["0"].AF.Stripes = 1 << 30 }), wantErr: ErrCorrupt},
		{name: "stripes-overflow-area", damage: editBoth(func(m *metadata) { m.Keyslots["0"].AF.Stripes = 8000 }), wantErr: ErrCorrupt},
		{name: "huge-key-size", damage: editBoth(func(m *metadata) { m.Keyslots["0"].KeySize = 1 << 40 }), wantErr: ErrCorrupt},
		{name: "area-outside", damage: editBoth(func(m *metadata) { m.Keyslots["0"].Area.Offset = num(1 << 40) }), wantErr: ErrCorrupt},
		{name: "area-size-wraps", damage: editBoth(func(m *metadata) { m.Keyslots["0"].Area.Size = num(1<<64 - 4096) }), wantErr: ErrCorrupt},
		{name: "huge-argon2-memory", damage: editBoth(func(m *metadata) {
			m.Keyslots["0"].KDF = &jsonKDF{Type: "argon2id", Time: 1, Memory: 1 << 31, CPUs: 1, Salt: []byte{1}}
		}), wantErr: ErrCorrupt},
		{name: "argon2-zero-cpus", damage: editBoth(func(m *metadata) {
			m.Keyslots["0"].KDF = &jsonKDF{Type: "argon2id", Time: 1, Memory: 64, Salt: []byte{1}}
		}), wantErr: ErrCorrupt},
		{name: "unknown-kdf", damage: editBoth(func(m *metadata) { m.Keyslots["0"].KDF.Type = "scrypt" }), wantErr: ErrUnsupported},
		{name: "bad-sector-size", damage: editBoth(func(m *metadata) { m.Segments["0"].SectorSize = 4097 }), wantErr: ErrCorrupt},
		{name: "bad-keyslot-id", damage: editBoth(func(m *metadata) { m.Keyslots["x"] = m.Keyslots["0"] }), wantErr: ErrCorrupt},
		{name: "too-many-keyslots-id", damage: editBoth(func(m *metadata) { m.Keyslots["32"] = m.Keyslots["0"] }), wantErr: ErrCorrupt},
		{name: "digest-dangling-keyslot", damage: editBoth(func(m *metadata) { m.Digests["0"].Keyslots = []string{"5"} }), wantErr: ErrCorrupt},
		{name: "digest-dangling-segment", damage: editBoth(func(m *metadata) { m.Digests["0"].Segments = []string{"1"} }), wantErr: ErrCorrupt},
		{name: "long-digest", damage: editBoth(func(m *metadata) { m.Digests["0"].Digest = make([]byte, 65) }), wantErr: ErrCorrupt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := bytes.Clone(good)
			tt.damage(t, img)
			h, err := ReadHeader(bytes.NewReader(img))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadHeader = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if got, want := h.Seqid, tt.wantSeqid; got != want {
				t.Errorf("ReadHeader picked seqid %d, want %d", got, want)
			}
		})
	}
}

// FuzzParseHeader feeds arbitrary bytes to ReadHeader, seeded with the
// headers cryptsetup wrote, both as they are and with their checksums
// fixed up (else nearly every mutation of the JSON would only exercise the
// checksum check). ReadHeader must return an error or a header within
// bounds, and Header.Unlock must not panic either. Minimizing a 32 KiB
// input is slow; run it as
//
//	go test ./lib/luks -run '^$' -fuzz FuzzParseHeader -fuzztime 60s -fuzzminimizetime 5s
func FuzzParseHeader(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".hdr") {
			b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
		if fixed := fixChecksums(b); !bytes.Equal(fixed, b) {
			checkParse(t, fixed)
		}
	})
}

// fixChecksums returns a copy of b with the SHA-256 checksums of the
// header copies that it holds in full recomputed.
func fixChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	fix := func(off uint64) uint64 {
		if uint64(len(b)) < off+binHeaderSize {
			return 0
		}
		size := binary.BigEndian.Uint64(b[off+offHdrSize:])
		if !validHeaderSize(size) || uint64(len(b)) < off+size || cstring(b[off+offCsumAlg:off+offCsumAlg+lenCsumAlg]) != "sha256" {
			return size
		}
		hdr := b[off : off+size]
		copy(hdr[offCsum:], headerChecksum(hdr, sha256.New))
		return size
	}
	size := fix(0)
	if !validHeaderSize(size) {
		size = defaultHeaderSize
	}
	fix(size)
	return b
}

func checkParse(t *testing.T, b []byte) {
	h, err := ReadHeader(bytes.NewReader(b))
	if err != nil {
		return
	}
	for _, s := range h.Segments {
		if s.Offset < 0 || s.Size < -1 {
			t.Errorf("segment %+v out of bounds", s)
		}
	}
	for _, ks := range h.Keyslots {
		if ks.KeySize <= 0 || ks.KeySize > maxKeySize {
			t.Errorf("keyslot %+v out of bounds", ks)
		}
	}
	// Unlock only if the KDFs are cheap enough to try.
	for _, ks := range h.meta.Keyslots {
		if ks.KDF != nil && (ks.KDF.Iterations > 1000 || ks.KDF.Memory > 1024 || ks.KDF.Time > 4) {
			return
		}
	}
	for _, d := range h.meta.Digests {
		if d.Iterations > 1000 {
			return
		}
	}
	h.Unlock(bytes.NewReader(b), []byte("distri"))
}
