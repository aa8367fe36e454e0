package minisign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
)

func TestRoundTrip(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("package index\n")
	sig, err := Sign(k, bytes.NewReader(msg), "timestamp:1700000000\tfile:index")
	if err != nil {
		t.Fatal(err)
	}
	tamperedComment := bytes.Replace(sig, []byte("file:index"), []byte("file:other"), 1)
	for _, tt := range []struct {
		name    string
		msg     []byte
		sig     []byte
		keys    []PublicKey
		wantErr error // nil: verifies
	}{
		{name: "good", msg: msg, sig: sig, keys: []PublicKey{k.Public()}},
		{name: "one of several keys", msg: msg, sig: sig, keys: []PublicKey{other.Public(), k.Public()}},
		{name: "tampered message", msg: []byte("package index!\n"), sig: sig, keys: []PublicKey{k.Public()}, wantErr: ErrVerify},
		{name: "tampered trusted comment", msg: msg, sig: tamperedComment, keys: []PublicKey{k.Public()}, wantErr: ErrVerify},
		{name: "other key", msg: msg, sig: sig, keys: []PublicKey{other.Public()}, wantErr: ErrVerify},
		{name: "same id other key", msg: msg, sig: sig, keys: []PublicKey{{ID: k.ID, Key: other.Public().Key}}, wantErr: ErrVerify},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := Verify(bytes.NewReader(tt.msg), tt.sig, tt.keys...)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				if got, want := tc, "timestamp:1700000000\tfile:index"; got != want {
					t.Errorf("trusted comment = %q, want %q", got, want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "repo")
	pubPath, keyPath, err := WriteKeyFiles(name, k, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteKeyFiles(name, k, false); err == nil {
		t.Errorf("WriteKeyFiles over existing files = nil, want an error")
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret key mode = %v (%v), want 0600", fi.Mode(), err)
	}
	gotPub, err := ReadPublicKeyFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	gotKey, err := ReadPrivateKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if gotPub.ID != k.ID || !gotPub.Key.Equal(k.Public().Key) {
		t.Errorf("public key round trip: got %v, want %v", gotPub, k.Public())
	}
	if gotKey.ID != k.ID || !gotKey.Key.Equal(k.Key) {
		t.Errorf("secret key round trip differs")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		parse func([]byte) error
		in    string
		want  string
	}{
		{name: "empty public key", parse: parsePub, in: "", want: "no key"},
		{name: "garbage public key", parse: parsePub, in: "untrusted comment: x\nnot base64!\n", want: "illegal base64"},
		{name: "short public key", parse: parsePub, in: "RWQAAA==\n", want: "not a minisign"},
		{name: "encrypted secret key", parse: parsePriv, in: "untrusted comment: x\n" + encryptedKeyLine + "\n", want: "password-protected"},
		{name: "signature without trusted comment", parse: parseSig, in: "untrusted comment: x\nRUQ=\n", want: "not a minisign signature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

// encryptedKeyLine is a key as `minisign -G` writes it with a password.
var encryptedKeyLine = "RWRTY0IyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAc9rW8kVi8xLkJo7glDiHb8GVKCOawsCNn7CBcWwXEAQClgivdJz8Y9FN/HMQ7JEummZw8WiACjnajd5HzzjIoZePU9c6M52wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

func parsePub(b []byte) error  { _, err := ParsePublicKey(b); return err }
func parsePriv(b []byte) error { _, err := ParsePrivateKey(b); return err }
func parseSig(b []byte) error  { _, err := ParseSignature(b); return err }

// TestMinisignVerifiesOurs checks that the minisign tool accepts our
// public key and signatures, and signs with our secret key.
func TestMinisignVerifiesOurs(t *testing.T) {
	minisign := distritest.NeedTool(t, "minisign")
	dir := t.TempDir()
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubPath, keyPath, err := WriteKeyFiles(filepath.Join(dir, "ours"), k, false)
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "index")
	data := bytes.Repeat([]byte("bash-amd64-5.2.15-3\n"), 1000)
	if err := os.WriteFile(index, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(k, bytes.NewReader(data), "timestamp:1700000000\tfile:index")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index+".minisig", sig, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(minisign, args...).CombinedOutput()
		return string(out), err
	}
	out, err := run("-V", "-p", pubPath, "-m", index)
	if err != nil {
		t.Fatalf("minisign -V of our signature: %v\n%s", err, out)
	}
	if !strings.Contains(out, "file:index") {
		t.Errorf("minisign -V output %q lacks the trusted comment", out)
	}

	// Tampered: minisign must reject it too.
	if err := os.WriteFile(index, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("-V", "-p", pubPath, "-m", index); err == nil {
		t.Errorf("minisign -V of a tampered file succeeded:\n%s", out)
	}

	// minisign signs with our secret key; we verify that.
	if out, err := run("-S", "-s", keyPath, "-m", index, "-t", "signed by minisign"); err != nil {
		t.Fatalf("minisign -S with our key: %v\n%s", err, out)
	}
	sig, err = os.ReadFile(index + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(index)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if tc, err := Verify(f, sig, k.Public()); err != nil || tc != "signed by minisign" {
		t.Errorf("Verify(minisign's signature with our key) = %q, %v", tc, err)
	}
}

// TestWeVerifyMinisign checks keys made by minisign -G -W and signatures
// made by minisign -S, prehashed and legacy.
func TestWeVerifyMinisign(t *testing.T) {
	minisign := distritest.NeedTool(t, "minisign")
	dir := t.TempDir()
	pubPath, keyPath := filepath.Join(dir, "m.pub"), filepath.Join(dir, "m.key")
	if out, err := exec.Command(minisign, "-G", "-W", "-p", pubPath, "-s", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign -G: %v\n%s", err, out)
	}
	pub, err := ReadPublicKeyFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ReadPrivateKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if priv.ID != pub.ID || !priv.Public().Key.Equal(pub.Key) {
		t.Fatalf("secret key from minisign does not match its public key")
	}
	data := []byte("some index bytes\n")
	msgPath := filepath.Join(dir, "index")
	if err := os.WriteFile(msgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		flags []string
	}{
		{name: "prehashed", flags: nil},
		{name: "legacy", flags: []string{"-l"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-S", "-s", keyPath, "-m", msgPath, "-t", "tc " + tt.name}, tt.flags...)
			if out, err := exec.Command(minisign, args...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			sig, err := os.ReadFile(msgPath + ".minisig")
			if err != nil {
				t.Fatal(err)
			}
			tc, err := Verify(bytes.NewReader(data), sig, pub)
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if got, want := tc, "tc "+tt.name; got != want {
				t.Errorf("trusted comment = %q, want %q", got, want)
			}
			if _, err := Verify(bytes.NewReader(append(data, 'x')), sig, pub); !errors.Is(err, ErrVerify) {
				t.Errorf("Verify(tampered) = %v, want ErrVerify", err)
			}
		})
	}
}

// TestSpoofedKeyID attacks the key lookup with a key file that claims
// the ID of another trusted key: it must neither shadow the real key nor
// be reported as it.
func TestSpoofedKeyID(t *testing.T) {
	official, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker's key file, written to claim the official key's ID.
	spoofFile, err := PublicKey{ID: official.ID, Key: attacker.Public().Key}.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	spoof, err := ParsePublicKey(spoofFile)
	if err != nil {
		t.Fatal(err)
	}
	if spoof.ID != official.ID {
		t.Fatalf("spoofed key has ID %s, want %s", spoof.ID, official.ID)
	}
	msg := []byte("index")
	sign := func(k PrivateKey) Signature {
		t.Helper()
		b, err := Sign(k, bytes.NewReader(msg), "timestamp:1")
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSignature(b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	byOfficial := sign(official)
	byAttacker := sign(PrivateKey{ID: official.ID, Key: attacker.Key}) // claims the official ID

	// The spoofed key listed first must not hide the official one.
	got, err := VerifySignature(bytes.NewReader(msg), byOfficial, spoof, official.Public())
	if err != nil {
		t.Fatalf("official signature with a spoofed key trusted first: %v", err)
	}
	if !got.Equal(official.Public()) {
		t.Errorf("verified by %x, want the official key %x", got.Key, official.Public().Key)
	}
	if _, err := Verify(bytes.NewReader(msg), mustMarshal(t, byOfficial), spoof, official.Public()); err != nil {
		t.Errorf("Verify with a spoofed key trusted first: %v", err)
	}

	// The attacker's signature verifies only by the attacker's key bytes,
	// and is reported as that key, not as the official one.
	got, err = VerifySignature(bytes.NewReader(msg), byAttacker, official.Public(), spoof)
	if err != nil {
		t.Fatalf("attacker's signature with its key trusted: %v", err)
	}
	if got.Equal(official.Public()) || !got.Key.Equal(attacker.Public().Key) {
		t.Errorf("attacker's signature reported as key %x, want the attacker's %x", got.Key, attacker.Public().Key)
	}
	// Without the attacker's key, the claimed ID alone gets it nowhere.
	if _, err := VerifySignature(bytes.NewReader(msg), byAttacker, official.Public()); !errors.Is(err, ErrVerify) {
		t.Errorf("attacker's signature with the official key only: %v, want %v", err, ErrVerify)
	}
}

func mustMarshal(t *testing.T, s Signature) []byte {
	t.Helper()
	raw := append(append(append([]byte{}, s.Algorithm[:]...), s.KeyID[:]...), s.Sig...)
	return fmt.Appendf(nil, "untrusted comment: x\n%s\ntrusted comment: %s\n%s\n",
		base64.StdEncoding.EncodeToString(raw), s.TrustedComment, base64.StdEncoding.EncodeToString(s.GlobalSig))
}

// endless is a message that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestLegacyMessageBounded attacks Verify with a legacy ("Ed") signature
// over an endless message: the message must not be read into memory
// without bound.
func TestLegacyMessageBounded(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := Signature{Algorithm: algEd, KeyID: k.ID, Sig: make([]byte, 64), TrustedComment: "x", GlobalSig: make([]byte, 64)}
	_, err = VerifySignature(endless{}, s, k.Public())
	if err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Fatalf("VerifySignature of an endless message = %v, want an error about the legacy signature", err)
	}
	// A legacy signature over a small message still verifies.
	msg := []byte("small")
	s.Sig = ed25519.Sign(k.Key, msg)
	s.GlobalSig = ed25519.Sign(k.Key, append(bytes.Clone(s.Sig), s.TrustedComment...))
	if _, err := VerifySignature(bytes.NewReader(msg), s, k.Public()); err != nil {
		t.Errorf("legacy signature: %v", err)
	}
}
