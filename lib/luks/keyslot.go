package luks

import (
	"crypto/pbkdf2"
	"crypto/subtle"
	"fmt"
	"io"
)

// keyslotSectorSize is the sector size of keyslot area encryption; the IV
// counts sectors from the start of the area.
const keyslotSectorSize = 512

// afSectors returns the size of keySize·stripes bytes of AF material
// rounded up to whole keyslot sectors.
func afSectors(keySize, stripes int) int {
	n := keySize * stripes
	return (n + keyslotSectorSize - 1) / keyslotSectorSize * keyslotSectorSize
}

// openKeyslot derives the area key from passphrase, decrypts the keyslot
// area and merges the stripes into a candidate volume key. ks has been
// validated.
func openKeyslot(r io.ReaderAt, ks *jsonKeyslot, passphrase []byte) ([]byte, error) {
	newHash, err := hashByName(ks.AF.Hash)
	if err != nil {
		return nil, err
	}
	// Check the cipher and read the area before the (slow) key derivation.
	if _, err := newCipherSpec(ks.Area.Encryption, make([]byte, ks.Area.KeySize)); err != nil {
		return nil, err
	}
	n := afSectors(ks.KeySize, ks.AF.Stripes)
	if uint64(n) > ks.Area.Size.v {
		return nil, fmt.Errorf("%w: keyslot area too small", ErrCorrupt)
	}
	// Probe the area's last byte before allocating for all of it.
	var last [1]byte
	if _, err := r.ReadAt(last[:], int64(ks.Area.Offset.v)+int64(n)-1); err != nil {
		return nil, fmt.Errorf("read keyslot area: %w", err)
	}
	material := make([]byte, n)
	if got, err := r.ReadAt(material, int64(ks.Area.Offset.v)); got < len(material) {
		return nil, fmt.Errorf("read keyslot area: %w", err)
	}
	defer clear(material)
	areaKey, err := ks.KDF.derive(passphrase, ks.Area.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(areaKey)
	c, err := newCipherSpec(ks.Area.Encryption, areaKey)
	if err != nil {
		return nil, err
	}
	c.crypt(material, material, 0, keyslotSectorSize, true)
	return afMerge(material, ks.KeySize, ks.AF.Stripes, newHash), nil
}

// sealKeyslot returns the encrypted area content of a keyslot holding key.
func sealKeyslot(ks *jsonKeyslot, key, passphrase []byte, rand io.Reader) ([]byte, error) {
	newHash, err := hashByName(ks.AF.Hash)
	if err != nil {
		return nil, err
	}
	areaKey, err := ks.KDF.derive(passphrase, ks.Area.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(areaKey)
	c, err := newCipherSpec(ks.Area.Encryption, areaKey)
	if err != nil {
		return nil, err
	}
	split, err := afSplit(key, ks.AF.Stripes, newHash, rand)
	if err != nil {
		return nil, err
	}
	material := make([]byte, afSectors(ks.KeySize, ks.AF.Stripes))
	copy(material, split)
	clear(split)
	c.crypt(material, material, 0, keyslotSectorSize, false)
	return material, nil
}

// compute returns the size-byte pbkdf2 digest of a volume key.
func (d *jsonDigest) compute(key []byte, size int) ([]byte, error) {
	newHash, err := hashByName(d.Hash)
	if err != nil {
		return nil, err
	}
	return pbkdf2.Key(newHash, string(key), d.Salt, int(d.Iterations), size)
}

// verify reports whether key matches the digest.
func (d *jsonDigest) verify(key []byte) (bool, error) {
	sum, err := d.compute(key, len(d.Digest))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(sum, d.Digest) == 1, nil
}
