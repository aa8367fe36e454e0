package luks

import (
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"io"
)

// The anti-forensic splitter of LUKS (from the LUKS1 specification, used
// unchanged by LUKS2 keyslots of af type "luks1"): a key of n bytes becomes
// stripes·n bytes, all of which are needed to recover it, so wiping any
// part of a keyslot area destroys the key.

// afSplit splits key into stripes stripes, drawing the first stripes-1 from
// rand.
func afSplit(key []byte, stripes int, newHash func() hash.Hash, rand io.Reader) ([]byte, error) {
	n := len(key)
	out := make([]byte, n*stripes)
	if _, err := io.ReadFull(rand, out[:n*(stripes-1)]); err != nil {
		return nil, err
	}
	d := make([]byte, n)
	h := newHash()
	for i := range stripes - 1 {
		xorBytes(d, out[i*n:(i+1)*n])
		diffuse(d, h)
	}
	last := out[(stripes-1)*n:]
	copy(last, d)
	xorBytes(last, key)
	return out, nil
}

// afMerge recovers a keyLen-byte key from its stripes.
func afMerge(material []byte, keyLen, stripes int, newHash func() hash.Hash) []byte {
	d := make([]byte, keyLen)
	h := newHash()
	for i := range stripes - 1 {
		xorBytes(d, material[i*keyLen:(i+1)*keyLen])
		diffuse(d, h)
	}
	xorBytes(d, material[(stripes-1)*keyLen:stripes*keyLen])
	return d
}

// diffuse replaces each digest-sized block j of b (the last one possibly
// short) by the leading bytes of H(be32(j) ‖ block).
func diffuse(b []byte, h hash.Hash) {
	size := h.Size()
	var iv [4]byte
	var sum []byte
	for j := 0; j*size < len(b); j++ {
		block := b[j*size : min((j+1)*size, len(b))]
		binary.BigEndian.PutUint32(iv[:], uint32(j))
		h.Reset()
		h.Write(iv[:])
		h.Write(block)
		sum = h.Sum(sum[:0])
		copy(block, sum)
	}
}

func xorBytes(dst, src []byte) { subtle.XORBytes(dst, dst, src) }
