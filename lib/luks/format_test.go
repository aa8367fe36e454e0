package luks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// memDevice is an in-memory io.ReaderAt and io.WriterAt that grows on
// write. It is safe for concurrent use, as a file is.
type memDevice struct {
	mu sync.Mutex
	b  []byte
}

func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if end := int(off) + len(p); end > len(d.b) {
		d.b = append(d.b, make([]byte, end-len(d.b))...)
	}
	return copy(d.b[off:], p), nil
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.NewReader(d.b).ReadAt(p, off)
}

func TestFormatUnlock(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts FormatOptions
		want Header
	}{
		{
			name: "pbkdf2",
			opts: FormatOptions{KDF: cheapPBKDF2},
			want: Header{
				Seqid: 1, HeaderSize: 16384,
				Keyslots: []Keyslot{{ID: 0, Type: "luks2", KeySize: 64, KDF: KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}}},
				Segments: []Segment{{ID: 0, Type: "crypt", Offset: 16 << 20, Size: -1, Encryption: "aes-xts-plain64", SectorSize: 512}},
			},
		},
		{
			name: "argon2id-labels-4096",
			opts: FormatOptions{KDF: cheapArgon2, SectorSize: 4096, DataOffset: 1 << 20, Label: "root", Subsystem: "distri", UUID: "0D15EA5E-0000-4000-8000-00000000D157"},
			want: Header{
				UUID: "0D15EA5E-0000-4000-8000-00000000D157", Label: "root", Subsystem: "distri",
				Seqid: 1, HeaderSize: 16384,
				Keyslots: []Keyslot{{ID: 0, Type: "luks2", KeySize: 64, KDF: KDF{Type: "argon2id", Time: 1, Memory: 64, Threads: 1}}},
				Segments: []Segment{{ID: 0, Type: "crypt", Offset: 1 << 20, Size: -1, Encryption: "aes-xts-plain64", SectorSize: 4096}},
			},
		},
		{
			name: "aes128-given-key-pbkdf2-sha512",
			opts: FormatOptions{KDF: KDF{Type: "pbkdf2", Hash: "sha512", Iterations: 10}, Key: bytes.Repeat([]byte{7}, 32), DataOffset: 32768 + 131072},
			want: Header{
				Seqid: 1, HeaderSize: 16384,
				Keyslots: []Keyslot{{ID: 0, Type: "luks2", KeySize: 32, KDF: KDF{Type: "pbkdf2", Hash: "sha512", Iterations: 10}}},
				Segments: []Segment{{ID: 0, Type: "crypt", Offset: 32768 + 131072, Size: -1, Encryption: "aes-xts-plain64", SectorSize: 512}},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dev := &memDevice{}
			passphrase := []byte("distri")
			v, err := Format(dev, passphrase, tt.opts)
			if err != nil {
				t.Fatalf("Format: %v", err)
			}
			if got, want := int64(len(dev.b)), tt.want.Segments[0].Offset; got != want {
				t.Errorf("Format wrote %d bytes, want %d (up to the data segment)", got, want)
			}
			h, err := ReadHeader(dev)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			opts := []cmp.Option{cmpopts.IgnoreUnexported(Header{}), cmpopts.IgnoreFields(Header{}, "UUID")}
			if diff := cmp.Diff(&tt.want, h, opts...); diff != "" {
				t.Errorf("ReadHeader mismatch (-want +got):\n%s", diff)
			}
			if tt.opts.UUID == "" && !validUUID(h.UUID) {
				t.Errorf("random UUID %q is malformed", h.UUID)
			}
			if diff := cmp.Diff(v.Header, h, cmpopts.IgnoreUnexported(Header{})); diff != "" {
				t.Errorf("Format's header differs from ReadHeader's (-format +read):\n%s", diff)
			}

			got, err := h.Unlock(dev, passphrase)
			if err != nil {
				t.Fatalf("Unlock: %v", err)
			}
			if !bytes.Equal(got.Key, v.Key) {
				t.Errorf("Unlock key = %x, want %x", got.Key, v.Key)
			}
			if tt.opts.Key != nil && !bytes.Equal(got.Key, tt.opts.Key) {
				t.Errorf("Unlock key = %x, want the given %x", got.Key, tt.opts.Key)
			}
			for _, wrong := range []string{"", "distri\n", "Distri"} {
				if _, err := h.Unlock(dev, []byte(wrong)); !errors.Is(err, ErrWrongPassphrase) {
					t.Errorf("Unlock(%q) = %v, want ErrWrongPassphrase", wrong, err)
				}
			}
		})
	}
}

func TestFormatOptionsErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts FormatOptions
		want string
	}{
		{name: "key-size", opts: FormatOptions{KeySize: 48}, want: "key size 48"},
		{name: "key-length", opts: FormatOptions{KeySize: 64, Key: make([]byte, 32)}, want: "key of 32 bytes"},
		{name: "sector-size", opts: FormatOptions{SectorSize: 8192}, want: "sector size 8192"},
		{name: "offset-too-small", opts: FormatOptions{DataOffset: 64 << 10}, want: "data offset 65536"},
		{name: "offset-unaligned", opts: FormatOptions{DataOffset: 1<<20 + 512}, want: "data offset"},
		{name: "offset-negative", opts: FormatOptions{DataOffset: -4096}, want: "data offset"},
		{name: "offset-vs-sector", opts: FormatOptions{DataOffset: 1<<20 + 4096, SectorSize: 4096}, want: ""},
		{name: "label-too-long", opts: FormatOptions{Label: strings.Repeat("x", 48)}, want: "label"},
		{name: "subsystem-nul", opts: FormatOptions{Subsystem: "a\x00b"}, want: "subsystem"},
		{name: "uuid", opts: FormatOptions{UUID: "not-a-uuid"}, want: "uuid"},
		{name: "kdf-type", opts: FormatOptions{KDF: KDF{Type: "scrypt"}}, want: "unsupported"},
		{name: "pbkdf2-hash", opts: FormatOptions{KDF: KDF{Type: "pbkdf2", Hash: "md5"}}, want: "md5"},
		{name: "argon2-memory", opts: FormatOptions{KDF: KDF{Memory: 8 << 20}}, want: "argon2 memory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.KDF.Iterations = max(tt.opts.KDF.Iterations, 1) // keep the valid case cheap
			if tt.opts.KDF.Type == "" && tt.want == "" {
				tt.opts.KDF = cheapPBKDF2
			}
			_, err := Format(&memDevice{}, []byte("x"), tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Format: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Format = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestFormatWipesKeyslotsArea checks that Format overwrites stale data in
// the keyslots area and leaves the data segment alone.
func TestFormatWipesKeyslotsArea(t *testing.T) {
	const dataOffset = 1 << 20
	dev := &memDevice{b: bytes.Repeat([]byte{0xaa}, 2*dataOffset)}
	v, err := Format(dev, []byte("x"), FormatOptions{KDF: cheapPBKDF2, DataOffset: dataOffset})
	if err != nil {
		t.Fatal(err)
	}
	// The keyslot material is random; after it, all must be zero.
	end := 32768 + afSectors(len(v.Key), afStripes)
	if i := bytes.IndexByte(dev.b[end:dataOffset], 0xaa); i >= 0 {
		t.Errorf("stale byte left in the keyslots area at %d", end+i)
	}
	if bytes.Count(dev.b[dataOffset:], []byte{0xaa}) != dataOffset {
		t.Errorf("Format touched the data segment")
	}
}

// TestUnlockRefuses checks volumes that Unlock must not open.
func TestUnlockRefuses(t *testing.T) {
	dev := &memDevice{}
	passphrase := []byte("distri")
	if _, err := Format(dev, passphrase, FormatOptions{KDF: cheapPBKDF2, DataOffset: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		edit func(m *metadata)
		want error
	}{
		{name: "requirements", edit: func(m *metadata) { m.Config.Requirements = &requirements{Mandatory: []string{"online-reencrypt-v2"}} }, want: ErrUnsupported},
		{name: "cipher", edit: func(m *metadata) { m.Segments["0"].Encryption = "serpent-xts-plain64" }, want: ErrUnsupported},
		{name: "integrity", edit: func(m *metadata) { m.Segments["0"].Integrity = []byte(`{"type":"hmac(sha256)"}`) }, want: ErrUnsupported},
		{name: "two-segments", edit: func(m *metadata) { s := *m.Segments["0"]; m.Segments["1"] = &s }, want: ErrUnsupported},
		{name: "keyslot-cipher", edit: func(m *metadata) { m.Keyslots["0"].Area.Encryption = "aes-cbc-essiv:sha256" }, want: ErrUnsupported},
		{name: "no-digest", edit: func(m *metadata) { m.Digests = map[string]*jsonDigest{} }, want: ErrCorrupt},
		{name: "ignored-keyslot", edit: func(m *metadata) { p := 0; m.Keyslots["0"].Priority = &p }, want: ErrWrongPassphrase},
		{name: "wrong-digest", edit: func(m *metadata) { m.Digests["0"].Digest[0] ^= 1 }, want: ErrWrongPassphrase},
		{name: "area-moved", edit: func(m *metadata) { m.Keyslots["0"].Area.Offset = num(m.Keyslots["0"].Area.Offset.v + 4096) }, want: ErrWrongPassphrase},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := rewriteMetadata(t, dev.b, tt.edit)
			_, err := Unlock(bytes.NewReader(img), passphrase)
			if !errors.Is(err, tt.want) {
				t.Errorf("Unlock = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("truncated-keyslot-area", func(t *testing.T) {
		_, err := Unlock(bytes.NewReader(dev.b[:40000]), passphrase)
		if err == nil || errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("Unlock = %v, want a read error", err)
		}
	})
}

// TestUnlockPriority checks that a "prefer" keyslot is tried first.
func TestUnlockPriority(t *testing.T) {
	dev := &memDevice{}
	passphrase := []byte("distri")
	v, err := Format(dev, passphrase, FormatOptions{KDF: cheapPBKDF2, DataOffset: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Copy keyslot 0 into slot 1, whose area follows, and prefer it.
	img := rewriteMetadata(t, dev.b, func(m *metadata) {
		ks := *m.Keyslots["0"]
		area := *ks.Area
		area.Offset = num(area.Offset.v + area.Size.v)
		ks.Area = &area
		prefer := 2
		ks.Priority = &prefer
		m.Keyslots["1"] = &ks
		m.Digests["0"].Keyslots = []string{"0", "1"}
	})
	size := afSectors(64, afStripes)
	off := 32768 + int(roundUp(uint64(size), 4096))
	copy(img[off:], img[32768:32768+size])
	got, err := Unlock(bytes.NewReader(img), passphrase)
	if err != nil {
		t.Fatal(err)
	}
	if got.Keyslot != 1 || !bytes.Equal(got.Key, v.Key) {
		t.Errorf("Unlock opened keyslot %d, want 1 (preferred)", got.Keyslot)
	}
}

// TestReadHeaderShortFile reads a header through an *os.File past its
// end.
func TestReadHeaderShortFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(path, []byte("LUKS\xba\xbe"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := ReadHeader(f); !errors.Is(err, ErrNotLUKS2) {
		t.Errorf("ReadHeader = %v, want ErrNotLUKS2", err)
	}
}
