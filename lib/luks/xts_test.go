package luks

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/xts"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestXTSVectors checks known answers from IEEE 1619-2007, annex B.
func TestXTSVectors(t *testing.T) {
	for _, tt := range []struct {
		name       string
		key        string
		sector     uint64
		plain, enc string
	}{
		{
			name:   "vector1",
			key:    "0000000000000000000000000000000000000000000000000000000000000000",
			sector: 0,
			plain:  "0000000000000000000000000000000000000000000000000000000000000000",
			enc:    "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e",
		},
		{
			name:   "vector2",
			key:    "1111111111111111111111111111111122222222222222222222222222222222",
			sector: 0x3333333333,
			plain:  "4444444444444444444444444444444444444444444444444444444444444444",
			enc:    "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newXTS(unhex(t, tt.key))
			if err != nil {
				t.Fatal(err)
			}
			plain := unhex(t, tt.plain)
			got := make([]byte, len(plain))
			c.crypt(got, plain, tt.sector, len(plain), false)
			if want := unhex(t, tt.enc); !bytes.Equal(got, want) {
				t.Errorf("encrypt = %x, want %x", got, want)
			}
			c.crypt(got, got, tt.sector, len(plain), true)
			if !bytes.Equal(got, plain) {
				t.Errorf("decrypt = %x, want %x", got, plain)
			}
		})
	}
}

// TestXTSMatchesReference checks our XTS against golang.org/x/crypto/xts
// (an independent implementation) over several sectors, both key sizes
// and the sector sizes LUKS2 allows.
func TestXTSMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	for _, keySize := range []int{32, 64} {
		for _, sectorSize := range []int{512, 1024, 4096} {
			key := make([]byte, keySize)
			fill(key)
			plain := make([]byte, 4*sectorSize)
			fill(plain)
			first := rng.Uint64() >> 1
			ours, err := newXTS(key)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := xts.NewCipher(aes.NewCipher, key)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(plain))
			ours.crypt(got, plain, first, sectorSize, false)
			want := make([]byte, len(plain))
			for i := 0; i < len(plain); i += sectorSize {
				// IVs advance in 512-byte units.
				ref.Encrypt(want[i:i+sectorSize], plain[i:i+sectorSize], first+uint64(i/512))
			}
			if !bytes.Equal(got, want) {
				t.Errorf("key %d, sector %d: encryption differs from x/crypto/xts", keySize, sectorSize)
			}
			ours.crypt(got, got, first, sectorSize, true)
			if !bytes.Equal(got, plain) {
				t.Errorf("key %d, sector %d: decryption does not invert encryption", keySize, sectorSize)
			}
		}
	}
}

func BenchmarkXTS(b *testing.B) {
	c, err := newXTS(make([]byte, 64))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunkSize)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		c.crypt(buf, buf, 0, 512, false)
	}
}

func BenchmarkXTSReference(b *testing.B) {
	c, err := xts.NewCipher(aes.NewCipher, make([]byte, 64))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunkSize)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		for i := 0; i < len(buf); i += 512 {
			c.Encrypt(buf[i:i+512], buf[i:i+512], uint64(i/512))
		}
	}
}
