package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
)

// fuzzPassphrase opens the volumes FuzzUnlock starts from.
var fuzzPassphrase = []byte("distri")

// fuzzVolume formats a small volume with cheap key derivation (so that an
// unlock takes milliseconds and the fuzzer explores), from a fixed seed,
// and returns its leading bytes: both header copies and the keyslots
// area.
func fuzzVolume(tb testing.TB, kdf KDF, keySize int) []byte {
	var d memDevice
	_, err := Format(&d, fuzzPassphrase, FormatOptions{
		KDF: kdf, KeySize: keySize, DataOffset: 1 << 20, DigestIterations: 1000,
		Label: "root", UUID: "0d15ea5e-0000-4000-8000-00000000d157",
		Rand: rand.NewChaCha8([32]byte{byte(keySize), byte(len(kdf.Type))}),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d.b
}

// setJSON returns a copy of img whose header copies both hold js as
// their metadata (cut to fit), checksums fixed, so that only the JSON
// is what the fuzzer made.
func setJSON(img, js []byte) []byte {
	img = bytes.Clone(img)
	size := int(binary.BigEndian.Uint64(img[offHdrSize:]))
	for _, off := range []int{0, size} {
		hdr := img[off : off+size]
		area := hdr[binHeaderSize:]
		clear(area)
		copy(area, js[:min(len(js), len(area)-1)])
		clear(hdr[offCsum : offCsum+lenCsum])
		copy(hdr[offCsum:], headerChecksum(hdr, sha256.New))
	}
	return img
}

// cheap reports whether every key derivation h asks for is cheap enough
// to try many times a second.
func cheap(h *Header) bool {
	for _, ks := range h.meta.Keyslots {
		if ks.KDF != nil && (ks.KDF.Iterations > 2000 || ks.KDF.Memory > 1024 || ks.KDF.Time > 4) {
			return false
		}
	}
	for _, d := range h.meta.Digests {
		if d.Iterations > 2000 {
			return false
		}
	}
	return true
}

// FuzzUnlock unlocks volumes whose LUKS2 metadata is arbitrary JSON (a
// disk at boot is untrusted), over the binary headers and keyslots areas
// of freshly formatted volumes with cheap PBKDF2 and argon2id keyslots.
// ReadHeader must return an error or a header within bounds, and a
// volume that unlocks must give a key of its keyslot's size and a data
// segment that maps and reads without panicking.
func FuzzUnlock(f *testing.F) {
	bases := [][]byte{
		fuzzVolume(f, KDF{Type: "pbkdf2", Iterations: 1000}, 64),
		fuzzVolume(f, KDF{Type: "argon2id", Time: 1, Memory: 64, Threads: 1}, 32),
	}
	for i, b := range bases {
		f.Add(uint8(i), bytes.Clone(readJSON(b, 0)))
	}
	f.Add(uint8(0), []byte(`{"keyslots":{},"tokens":{},"segments":{},"digests":{},"config":{"json_size":"12288","keyslots_size":"16744448"}}`))
	f.Fuzz(func(t *testing.T, which uint8, js []byte) {
		img := setJSON(bases[int(which)%len(bases)], js)
		h, err := ReadHeader(bytes.NewReader(img))
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
		if !cheap(h) {
			return
		}
		v, err := h.Unlock(bytes.NewReader(img), fuzzPassphrase)
		if err != nil {
			return
		}
		var ksSize int
		for _, ks := range h.Keyslots {
			if ks.ID == v.Keyslot {
				ksSize = ks.KeySize
			}
		}
		if len(v.Key) != ksSize {
			t.Errorf("keyslot %d of %d bytes unlocked a key of %d", v.Keyslot, ksSize, len(v.Key))
		}
		devSize := int64(2 << 20)
		if _, err := v.DMCrypt(devSize); err != nil {
			return
		}
		dev := bytes.NewReader(append(img, make([]byte, int(devSize)-len(img))...))
		if r, err := v.NewReader(dev, devSize); err == nil {
			io.CopyN(io.Discard, r, 8192)
		}
	})
}

// TestFuzzUnlockSeeds makes sure the seeds of FuzzUnlock unlock, so
// that the fuzzer starts from volumes that open.
func TestFuzzUnlockSeeds(t *testing.T) {
	for _, kdf := range []KDF{{Type: "pbkdf2", Iterations: 1000}, {Type: "argon2id", Time: 1, Memory: 64, Threads: 1}} {
		img := fuzzVolume(t, kdf, 64)
		img = setJSON(img, readJSON(img, 0))
		h, err := ReadHeader(bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		if !cheap(h) {
			t.Errorf("%s: the fuzzer would not try to unlock %+v", kdf.Type, h.Keyslots)
		}
		if _, err := h.Unlock(bytes.NewReader(img), fuzzPassphrase); err != nil {
			t.Errorf("%s: %v", kdf.Type, err)
		}
	}
}
