package luks

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestAFRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name    string
		hash    string
		keySize int
		stripes int
	}{
		{name: "sha256-64", hash: "sha256", keySize: 64, stripes: 4000},
		{name: "sha256-32", hash: "sha256", keySize: 32, stripes: 4000},
		{name: "sha1-partial-block", hash: "sha1", keySize: 33, stripes: 10},
		{name: "sha512-short-key", hash: "sha512", keySize: 16, stripes: 3},
		{name: "one-stripe", hash: "sha256", keySize: 64, stripes: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			newHash, err := hashByName(tt.hash)
			if err != nil {
				t.Fatal(err)
			}
			key := make([]byte, tt.keySize)
			rand.Read(key)
			split, err := afSplit(key, tt.stripes, newHash, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(split), tt.keySize*tt.stripes; got != want {
				t.Fatalf("afSplit gave %d bytes, want %d", got, want)
			}
			if got := afMerge(split, tt.keySize, tt.stripes, newHash); !bytes.Equal(got, key) {
				t.Errorf("afMerge = %x, want %x", got, key)
			}
			if tt.stripes > 1 {
				// Losing any part of the material loses the key.
				split[0] ^= 1
				if got := afMerge(split, tt.keySize, tt.stripes, newHash); bytes.Equal(got, key) {
					t.Errorf("afMerge of damaged stripes still gave the key")
				}
			}
		})
	}
}
