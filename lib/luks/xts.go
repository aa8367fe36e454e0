package luks

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
)

// cipherSpec is the only cipher supported, in dm-crypt notation.
const cipherSpec = "aes-xts-plain64"

// xtsCipher is AES-XTS (IEEE 1619) for whole sectors, whose length is a
// multiple of the AES block size, so no ciphertext stealing is needed.
// With the sector number as tweak it is dm-crypt's aes-xts-plain64.
type xtsCipher struct {
	k1, k2 cipher.Block
}

// newXTS takes the concatenation of the data key and the tweak key: 32
// bytes for AES-128-XTS, 64 bytes for AES-256-XTS.
func newXTS(key []byte) (*xtsCipher, error) {
	if len(key) != 32 && len(key) != 64 {
		return nil, fmt.Errorf("aes-xts: key of %d bytes, want 32 or 64: %w", len(key), ErrUnsupported)
	}
	half := len(key) / 2
	k1, err := aes.NewCipher(key[:half])
	if err != nil {
		return nil, err
	}
	k2, err := aes.NewCipher(key[half:])
	if err != nil {
		return nil, err
	}
	return &xtsCipher{k1: k1, k2: k2}, nil
}

// crypt en- or decrypts src into dst (which may be the same slice) as
// consecutive sectors of sectorSize bytes. The first has tweak number
// sector; each further one sectorSize/512 more, since dm-crypt counts IVs
// in 512-byte units whatever the sector size (unless iv_large_sectors,
// which LUKS2 does not use).
func (c *xtsCipher) crypt(dst, src []byte, sector uint64, sectorSize int, decrypt bool) {
	step := uint64(sectorSize / 512)
	var t [aes.BlockSize]byte
	for off := 0; off < len(src); off += sectorSize {
		clear(t[:])
		binary.LittleEndian.PutUint64(t[:8], sector)
		c.k2.Encrypt(t[:], t[:])
		lo := binary.LittleEndian.Uint64(t[:8])
		hi := binary.LittleEndian.Uint64(t[8:])
		for i := off; i < off+sectorSize; i += aes.BlockSize {
			s, d := src[i:i+aes.BlockSize], dst[i:i+aes.BlockSize]
			x0 := binary.LittleEndian.Uint64(s[:8]) ^ lo
			x1 := binary.LittleEndian.Uint64(s[8:]) ^ hi
			binary.LittleEndian.PutUint64(d[:8], x0)
			binary.LittleEndian.PutUint64(d[8:], x1)
			if decrypt {
				c.k1.Decrypt(d, d)
			} else {
				c.k1.Encrypt(d, d)
			}
			binary.LittleEndian.PutUint64(d[:8], binary.LittleEndian.Uint64(d[:8])^lo)
			binary.LittleEndian.PutUint64(d[8:], binary.LittleEndian.Uint64(d[8:])^hi)
			// Multiply the tweak by α in GF(2^128), little-endian.
			carry := hi >> 63
			hi = hi<<1 | lo>>63
			lo = lo<<1 ^ carry*0x87
		}
		sector += step
	}
}

// newCipherSpec returns the sector cipher for a dm-crypt cipher spec.
func newCipherSpec(spec string, key []byte) (*xtsCipher, error) {
	if spec == cipherSpec {
		return newXTS(key)
	}
	return nil, fmt.Errorf("cipher %q: %w", spec, ErrUnsupported)
}
