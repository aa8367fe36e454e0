package minisign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"reflect"
	"testing"

	"golang.org/x/crypto/blake2b"
)

// fuzzKey is a fixed key, so that the fuzzer's inputs stay meaningful
// from run to run.
func fuzzKey() PrivateKey {
	seed := bytes.Repeat([]byte{0x5a}, ed25519.SeedSize)
	k := PrivateKey{Key: ed25519.NewKeyFromSeed(seed)}
	copy(k.ID[:], "distri\x00\x01")
	return k
}

// FuzzParseKey parses arbitrary key files as public and as secret keys
// (a public key may come from anywhere a user copies it from) and checks
// that an accepted key is written back to the same key.
func FuzzParseKey(f *testing.F) {
	k := fuzzKey()
	pub, _ := k.Public().MarshalText()
	sec, _ := k.MarshalText()
	f.Add(pub)
	f.Add(sec)
	f.Add(bytes.TrimPrefix(pub, []byte("untrusted comment: minisign public key 0100697274736964\n")))
	f.Add([]byte("untrusted comment: x\r\n\r\n  RWQBAGlydHNpZA==  \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParsePublicKey(b); err == nil {
			text, err := p.MarshalText()
			if err != nil {
				t.Fatalf("ParsePublicKey(%q) = %+v, which does not marshal: %v", b, p, err)
			}
			if p2, err := ParsePublicKey(text); err != nil || !reflect.DeepEqual(p, p2) {
				t.Errorf("ParsePublicKey(%q) = %+v; written back and parsed: %+v, %v", b, p, p2, err)
			}
		}
		if s, err := ParsePrivateKey(b); err == nil {
			text, err := s.MarshalText()
			if err != nil {
				t.Fatalf("ParsePrivateKey(%q) = %+v, which does not marshal: %v", b, s, err)
			}
			if s2, err := ParsePrivateKey(text); err != nil || !reflect.DeepEqual(s, s2) {
				t.Errorf("ParsePrivateKey(%q): written back and parsed: %v", b, err)
			}
		}
	})
}

// legacySig is a signature file of the legacy algorithm ("Ed": the
// message itself signed, not its hash), as old minisign versions wrote.
func legacySig(k PrivateKey, msg []byte, tc string) []byte {
	sig := ed25519.Sign(k.Key, msg)
	global := ed25519.Sign(k.Key, append(bytes.Clone(sig), tc...))
	raw := append(append(append([]byte{}, algEd[:]...), k.ID[:]...), sig...)
	return fmt.Appendf(nil, "untrusted comment: legacy\n%s\ntrusted comment: %s\n%s\n",
		base64.StdEncoding.EncodeToString(raw), tc, base64.StdEncoding.EncodeToString(global))
}

// FuzzVerify verifies arbitrary signature files (index.minisig comes
// from the mirror, unauthenticated) of a fixed message with a fixed key.
// An accepted signature must be the one the key makes: Ed25519 as used
// here is deterministic and Go's verification rejects non-canonical
// signatures, so any other accepted bytes would be a forgery or a
// malleable encoding.
func FuzzVerify(f *testing.F) {
	k := fuzzKey()
	msg := []byte("package index\n")
	for _, tc := range []string{"timestamp:1700000000\tfile:index", "timestamp:0", "trusted comment: \x00"} {
		sig, err := Sign(k, bytes.NewReader(msg), tc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sig)
		f.Add(legacySig(k, msg, tc))
	}
	f.Add([]byte("untrusted comment:\nRUQ=\ntrusted comment: \n\n"))
	f.Fuzz(func(t *testing.T, sig []byte) {
		tc, err := Verify(bytes.NewReader(msg), sig, k.Public())
		if err != nil {
			return
		}
		s, err := ParseSignature(sig)
		if err != nil {
			t.Fatalf("Verify accepted %q, ParseSignature rejects it: %v", sig, err)
		}
		if s.TrustedComment != tc || s.KeyID != k.ID {
			t.Errorf("Verify = %q, parsed %+v", tc, s)
		}
		signed := msg
		if s.Algorithm == algPrehash {
			h := blake2b.Sum512(msg)
			signed = h[:]
		}
		if want := ed25519.Sign(k.Key, signed); !bytes.Equal(s.Sig, want) {
			t.Errorf("accepted signature %x, the key's is %x", s.Sig, want)
		}
		if want := ed25519.Sign(k.Key, append(bytes.Clone(s.Sig), tc...)); !bytes.Equal(s.GlobalSig, want) {
			t.Errorf("accepted global signature %x, the key's is %x", s.GlobalSig, want)
		}
	})
}
