// Package minisign reads and writes keys and signatures in the format of
// the minisign tool (https://jedisct1.github.io/minisign/), so that the
// minisign from Debian verifies what distri signs and distri verifies
// what minisign signs.
//
// A key is Ed25519 with an 8-byte random key ID. A signature is
// Ed25519 over the BLAKE2b-512 hash of the message ("ED", minisign's
// default since 0.10); legacy signatures over the message itself ("Ed")
// are verified too. Every signature carries a trusted comment, which is
// signed along with the signature (the "global signature").
//
// # Key IDs
//
// The key ID a signature names only selects which trusted keys to try:
// a key file may claim any ID. [VerifySignature] tries every trusted key
// with that ID and returns the one whose bytes verified, so two keys
// sharing an ID neither shadow each other nor pass for each other.
// Legacy signatures must hold the message in memory and are bounded
// ([MaxLegacyMessage]); prehashed ones stream.
//
// # On aead.dev/minisign
//
// Public keys are parsed, messages signed, signature files parsed and
// signatures verified by aead.dev/minisign. This package keeps its own
// types and what the library does not do: the key ID is [8]byte as in
// the files (the library's is a uint64), every trusted key with a
// signature's ID is tried (the library verifies against one key), the
// legacy message is bounded before it is read, secret key files are
// written byte for byte as `minisign -G -W` writes them and their
// checksum is checked when read (the library ignores it), and errors
// name what is wrong.
//
// # Scope
//
// Secret key files are written unencrypted, as `minisign -G -W` writes
// them, and only unencrypted ones are read: the key of a repository is
// used by scripts, not typed in. A password-protected key is a clear
// error.
package minisign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	mini "aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
)

// Algorithm identifiers as they appear in key and signature files.
var (
	algEd       = [2]byte{'E', 'd'} // keys; legacy signatures of the message
	algPrehash  = [2]byte{'E', 'D'} // signatures of BLAKE2b-512(message)
	algChecksum = [2]byte{'B', '2'}
	algScrypt   = [2]byte{'S', 'c'}
)

// ErrVerify is wrapped by every error of [Verify] that says the signature
// does not hold (as opposed to a malformed input).
var ErrVerify = errors.New("signature verification failed")

// KeyID identifies a key pair; a signature names the key that made it.
type KeyID [8]byte

// String formats id as minisign prints it: 16 upper-case hex digits of
// the little-endian number.
func (id KeyID) String() string {
	return fmt.Sprintf("%016X", binary.LittleEndian.Uint64(id[:]))
}

// PublicKey is a minisign public key.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// PrivateKey is a minisign secret key.
type PrivateKey struct {
	ID  KeyID
	Key ed25519.PrivateKey
}

// Public returns the public half of k.
func (k PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// GenerateKey makes a new key pair from rand (nil means crypto/rand).
func GenerateKey(random io.Reader) (PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	var id KeyID
	if _, err := io.ReadFull(random, id[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	return PrivateKey{ID: id, Key: priv}, nil
}

// MarshalText returns the public key file, e.g.
//
//	untrusted comment: minisign public key 5C9B8DE5E8A1D2C0
//	RWTA0qHo5Y2bXPH...
func (k PublicKey) MarshalText() ([]byte, error) {
	if len(k.Key) != ed25519.PublicKeySize {
		return nil, errors.New("marshal public key: bad key size")
	}
	raw := make([]byte, 0, 42)
	raw = append(raw, algEd[:]...)
	raw = append(raw, k.ID[:]...)
	raw = append(raw, k.Key...)
	return fmt.Appendf(nil, "untrusted comment: minisign public key %s\n%s\n", k.ID, base64.StdEncoding.EncodeToString(raw)), nil
}

// ParsePublicKey parses a public key file, or just its base64 line (as
// minisign -P takes it).
func ParsePublicKey(b []byte) (PublicKey, error) {
	line, err := keyLine(b)
	if err != nil {
		return PublicKey{}, fmt.Errorf("parse public key: %w", err)
	}
	var mk mini.PublicKey
	if err := mk.UnmarshalText([]byte(line)); err != nil {
		return PublicKey{}, fmt.Errorf("parse public key: not a minisign Ed25519 public key: %w", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(mk.String()) // alg, ID, key
	var k PublicKey
	copy(k.ID[:], raw[2:10])
	k.Key = ed25519.PublicKey(bytes.Clone(raw[10:]))
	return k, nil
}

// lib returns k as the library's key.
func (k PublicKey) lib() (mini.PublicKey, error) {
	var mk mini.PublicKey
	text, err := k.MarshalText()
	if err != nil {
		return mk, err
	}
	return mk, mk.UnmarshalText(text)
}

// keyLine returns the base64 line of a key file: the first line that is
// not a comment.
func keyLine(b []byte) (string, error) {
	for l := range strings.SplitSeq(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "untrusted comment:") {
			continue
		}
		return l, nil
	}
	return "", errors.New("no key in file")
}

// secretKeyLen is the length of a decoded secret key file line:
// alg, kdf alg, checksum alg, salt, opslimit, memlimit, then key ID,
// secret key, public key and checksum (the part a password encrypts).
const secretKeyLen = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32

// MarshalText returns the unencrypted secret key file, byte for byte the
// format of `minisign -G -W`.
func (k PrivateKey) MarshalText() ([]byte, error) {
	if len(k.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("marshal secret key: bad key size")
	}
	raw := make([]byte, 0, secretKeyLen)
	raw = append(raw, algEd[:]...)
	raw = append(raw, 0, 0) // no KDF: unencrypted
	raw = append(raw, algChecksum[:]...)
	raw = append(raw, make([]byte, 32+8+8)...) // salt, opslimit, memlimit: unused
	raw = append(raw, k.ID[:]...)
	raw = append(raw, k.Key...)
	sum := k.checksum()
	raw = append(raw, sum[:]...)
	return fmt.Appendf(nil, "untrusted comment: minisign secret key\n%s\n", base64.StdEncoding.EncodeToString(raw)), nil
}

// checksum is BLAKE2b-256(alg || key ID || secret key), as minisign
// stores it to detect a wrong password.
func (k PrivateKey) checksum() [32]byte {
	h, _ := blake2b.New256(nil)
	h.Write(algEd[:])
	h.Write(k.ID[:])
	h.Write(k.Key)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// ParsePrivateKey parses an unencrypted secret key file.
func ParsePrivateKey(b []byte) (PrivateKey, error) {
	line, err := keyLine(b)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("parse secret key: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("parse secret key: %w", err)
	}
	if len(raw) != secretKeyLen || !bytes.Equal(raw[:2], algEd[:]) || !bytes.Equal(raw[4:6], algChecksum[:]) {
		return PrivateKey{}, errors.New("parse secret key: not a minisign Ed25519 secret key")
	}
	switch kdf := [2]byte(raw[2:4]); kdf {
	case [2]byte{}:
	case algScrypt:
		return PrivateKey{}, errors.New("parse secret key: the key is password-protected; distri reads unencrypted keys only (make one with distri-mirror keygen or minisign -G -W)")
	default:
		return PrivateKey{}, fmt.Errorf("parse secret key: unknown key derivation %q", kdf[:])
	}
	var k PrivateKey
	rest := raw[2+2+2+32+8+8:]
	copy(k.ID[:], rest[:8])
	k.Key = ed25519.PrivateKey(bytes.Clone(rest[8 : 8+64]))
	// minisign -G -W leaves the checksum zero; check it where it is set.
	if sum := k.checksum(); !bytes.Equal(sum[:], rest[8+64:]) && !bytes.Equal(rest[8+64:], make([]byte, 32)) {
		return PrivateKey{}, errors.New("parse secret key: checksum mismatch (corrupt key file)")
	}
	return k, nil
}

// Sign signs the message read from msg with k and returns the signature
// file (what minisign writes to <file>.minisig): prehashed ("ED"), as
// minisign does by default. trustedComment is signed too; empty means
// "timestamp:<unix time>", as minisign does.
func Sign(k PrivateKey, msg io.Reader, trustedComment string) ([]byte, error) {
	if strings.ContainsAny(trustedComment, "\r\n") {
		return nil, errors.New("sign: trusted comment contains a newline")
	}
	text, err := k.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	var mk mini.PrivateKey
	if err := mk.UnmarshalText(text); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	r := mini.NewReader(msg)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if trustedComment == "" {
		trustedComment = fmt.Sprintf("timestamp:%d", time.Now().Unix())
	}
	return r.SignWithComments(mk, trustedComment, "signature from distri secret key"), nil
}

// Signature is a parsed signature file.
type Signature struct {
	Algorithm      [2]byte // "ED" (prehashed) or "Ed" (legacy)
	KeyID          KeyID
	Sig            []byte
	TrustedComment string
	GlobalSig      []byte
}

// ParseSignature parses a signature file.
func ParseSignature(b []byte) (Signature, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "untrusted comment:") {
		return Signature{}, errors.New("parse signature: not a minisign signature file")
	}
	// The library wants "untrusted comment: " with its space and takes
	// everything after the third line as the global signature: give it
	// the four lines.
	first := "untrusted comment: " + strings.TrimPrefix(strings.TrimPrefix(lines[0], "untrusted comment:"), " ")
	var ms mini.Signature
	if err := ms.UnmarshalText([]byte(strings.Join(append([]string{first}, lines[1:4]...), "\n"))); err != nil {
		return Signature{}, fmt.Errorf("parse signature: %w", err)
	}
	var s Signature
	binary.LittleEndian.PutUint16(s.Algorithm[:], ms.Algorithm)
	binary.LittleEndian.PutUint64(s.KeyID[:], ms.KeyID)
	s.Sig = bytes.Clone(ms.Signature[:])
	s.TrustedComment = ms.TrustedComment
	s.GlobalSig = bytes.Clone(ms.CommentSignature[:])
	return s, nil
}

// text returns s as a signature file for the library.
func (s Signature) text() ([]byte, error) {
	if len(s.Sig) != ed25519.SignatureSize || len(s.GlobalSig) != ed25519.SignatureSize {
		return nil, errors.New("bad signature length")
	}
	if strings.ContainsAny(s.TrustedComment, "\r\n") {
		return nil, errors.New("trusted comment contains a newline")
	}
	ms := mini.Signature{
		Algorithm:        binary.LittleEndian.Uint16(s.Algorithm[:]),
		KeyID:            binary.LittleEndian.Uint64(s.KeyID[:]),
		TrustedComment:   s.TrustedComment,
		UntrustedComment: "signature",
	}
	copy(ms.Signature[:], s.Sig)
	copy(ms.CommentSignature[:], s.GlobalSig)
	return ms.MarshalText()
}

// Verify checks that sig (a signature file) is a signature of the
// message read from msg by one of keys, and returns its trusted comment.
// Failures that mean "not signed by these keys" wrap [ErrVerify].
func Verify(msg io.Reader, sig []byte, keys ...PublicKey) (trustedComment string, err error) {
	s, err := ParseSignature(sig)
	if err != nil {
		return "", err
	}
	if _, err := VerifySignature(msg, s, keys...); err != nil {
		return "", err
	}
	return s.TrustedComment, nil
}

// MaxLegacyMessage bounds the message of a legacy ("Ed") signature,
// which must be held in memory whole to be verified (Ed25519 hashes the
// message twice). Prehashed signatures ("ED") stream any size.
const MaxLegacyMessage = 64 << 20

// VerifySignature checks that s is a signature of the message read from
// msg, with its trusted comment, by one of keys, and returns the key
// that verified it.
//
// A key ID is only a hint of which key signed: anyone can write a key
// file that claims another key's ID. So every trusted key with the
// signature's ID is tried, and what is returned (and what callers
// should go by) is the key whose bytes verified, never the ID alone.
// Failures that mean "not signed by these keys" wrap [ErrVerify].
func VerifySignature(msg io.Reader, s Signature, keys ...PublicKey) (PublicKey, error) {
	var candidates []PublicKey
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID.String())
		if k.ID == s.KeyID {
			candidates = append(candidates, k)
		}
	}
	if len(candidates) == 0 {
		return PublicKey{}, fmt.Errorf("%w: signed with key %s, trusted keys are %v", ErrVerify, s.KeyID, ids)
	}
	text, err := s.text()
	if err != nil {
		return PublicKey{}, fmt.Errorf("verify: %w", err)
	}
	var verify func(mini.PublicKey) bool
	var signed []byte // what s.Sig signs, to name what does not match
	switch s.Algorithm {
	case algPrehash:
		h, _ := blake2b.New512(nil)
		r := mini.NewReader(io.TeeReader(msg, h))
		if _, err := io.Copy(io.Discard, r); err != nil {
			return PublicKey{}, fmt.Errorf("verify: %w", err)
		}
		signed = h.Sum(nil)
		verify = func(k mini.PublicKey) bool { return r.Verify(k, text) }
	case algEd:
		b, err := io.ReadAll(io.LimitReader(msg, MaxLegacyMessage+1))
		if err != nil {
			return PublicKey{}, fmt.Errorf("verify: %w", err)
		}
		if len(b) > MaxLegacyMessage {
			return PublicKey{}, fmt.Errorf("verify: a legacy (not prehashed) signature over more than %d MiB; sign with a prehashed signature (minisign's default)", MaxLegacyMessage>>20)
		}
		signed = b
		verify = func(k mini.PublicKey) bool { return mini.Verify(k, b, text) }
	default:
		return PublicKey{}, fmt.Errorf("verify: unknown algorithm %q", s.Algorithm[:])
	}
	var errs []error
	for _, k := range candidates {
		mk, err := k.lib()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("key %s: %w", k.ID, err))
		case !verify(mk) && !ed25519.Verify(k.Key, signed, s.Sig):
			errs = append(errs, fmt.Errorf("the signed data does not match (key %s)", k.ID))
		case !verify(mk):
			errs = append(errs, fmt.Errorf("the trusted comment does not match (key %s)", k.ID))
		default:
			return k, nil
		}
	}
	if len(errs) == 1 {
		return PublicKey{}, fmt.Errorf("%w: %v", ErrVerify, errs[0])
	}
	return PublicKey{}, fmt.Errorf("%w: none of the %d trusted keys with ID %s verifies it: %v", ErrVerify, len(candidates), s.KeyID, errors.Join(errs...))
}

// Equal says whether k and o are the same key: the same ID and the same
// key bytes.
func (k PublicKey) Equal(o PublicKey) bool {
	return k.ID == o.ID && k.Key.Equal(o.Key)
}

// ReadPublicKeyFile reads a public key file.
func ReadPublicKeyFile(path string) (PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PublicKey{}, err
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadPrivateKeyFile reads an unencrypted secret key file.
func ReadPrivateKeyFile(path string) (PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, err
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFiles writes k as name.key (mode 0600) and its public key as
// name.pub, and returns their paths. Existing files are an error unless
// force is set: overwriting a repository key cannot be undone.
func WriteKeyFiles(name string, k PrivateKey, force bool) (pubPath, keyPath string, err error) {
	pubPath, keyPath = name+".pub", name+".key"
	pub, err := k.Public().MarshalText()
	if err != nil {
		return "", "", err
	}
	sec, err := k.MarshalText()
	if err != nil {
		return "", "", err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyPath, sec, 0o600}, {pubPath, pub, 0o644}} {
		if err := writeNew(f.path, f.data, flags, f.mode); err != nil {
			return "", "", err
		}
	}
	return pubPath, keyPath, nil
}

func writeNew(path string, data []byte, flags int, mode os.FileMode) error {
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write %s: file exists (use --force to replace the key)", path)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
