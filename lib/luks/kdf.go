package luks

import (
	"crypto/pbkdf2"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KDF selects how a keyslot derives its key from the passphrase, with the
// field names of cryptsetup's --pbkdf options.
type KDF struct {
	// Type is "argon2id", "argon2i" or "pbkdf2". Empty means argon2id.
	Type string
	// Time is the number of argon2 passes (--pbkdf-force-iterations for
	// argon2), e.g. 4. Zero means 4.
	Time uint32
	// Memory is argon2's memory cost in KiB (--pbkdf-memory), e.g. 262144
	// (256 MiB). The unlocking machine needs this much free RAM. Zero means
	// 262144.
	Memory uint32
	// Threads is argon2's parallelism, the "cpus" field
	// (--pbkdf-parallel), e.g. 4. Zero means 4.
	Threads uint8
	// Hash is the PBKDF2 hash, e.g. "sha256" (the default); "sha1" and
	// "sha512" also work.
	Hash string
	// Iterations is the PBKDF2 iteration count, e.g. 1000000. Zero means
	// 1000000.
	Iterations uint32
}

// Defaults for KDF's zero fields.
const (
	defaultArgon2Time    = 4
	defaultArgon2Memory  = 256 << 10 // KiB
	defaultArgon2Threads = 4
	defaultPBKDF2Iter    = 1000000
)

// withDefaults fills the zero fields of k and checks it.
func (k KDF) withDefaults() (KDF, error) {
	if k.Type == "" {
		k.Type = "argon2id"
	}
	switch k.Type {
	case "argon2id", "argon2i":
		if k.Time == 0 {
			k.Time = defaultArgon2Time
		}
		if k.Memory == 0 {
			k.Memory = defaultArgon2Memory
		}
		if k.Threads == 0 {
			k.Threads = defaultArgon2Threads
		}
		if k.Memory < 8*uint32(k.Threads) || k.Memory > maxArgonMemory {
			return k, fmt.Errorf("argon2 memory %d KiB out of range [%d, %d]", k.Memory, 8*uint32(k.Threads), maxArgonMemory)
		}
		if k.Threads > maxArgonThreads {
			return k, fmt.Errorf("argon2 threads %d: at most %d (cryptsetup's maximum)", k.Threads, maxArgonThreads)
		}
		if k.Time > maxArgonTime || uint64(k.Time)*uint64(k.Memory) > maxArgonWork {
			return k, fmt.Errorf("argon2 time %d with %d KiB: at most %d KiB-passes", k.Time, k.Memory, maxArgonWork)
		}
		k.Hash, k.Iterations = "", 0
	case "pbkdf2":
		if k.Hash == "" {
			k.Hash = "sha256"
		}
		if _, err := hashByName(k.Hash); err != nil {
			return k, err
		}
		if k.Iterations == 0 {
			k.Iterations = defaultPBKDF2Iter
		}
		if k.Iterations > maxPBKDF2Iterations {
			return k, fmt.Errorf("pbkdf2 iterations %d: at most %d", k.Iterations, maxPBKDF2Iterations)
		}
		k.Time, k.Memory, k.Threads = 0, 0, 0
	default:
		return k, fmt.Errorf("kdf %q: %w", k.Type, ErrUnsupported)
	}
	return k, nil
}

// json returns the keyslot "kdf" object for k, which has its defaults.
func (k KDF) json(salt []byte) *jsonKDF {
	return &jsonKDF{
		Type:       k.Type,
		Hash:       k.Hash,
		Iterations: k.Iterations,
		Time:       k.Time,
		Memory:     k.Memory,
		CPUs:       uint32(k.Threads),
		Salt:       salt,
	}
}

// derive computes the keyLen-byte key that encrypts a keyslot area. k has
// been validated.
func (k *jsonKDF) derive(passphrase []byte, keyLen int) ([]byte, error) {
	switch k.Type {
	case "pbkdf2":
		h, err := hashByName(k.Hash)
		if err != nil {
			return nil, err
		}
		return pbkdf2.Key(h, string(passphrase), k.Salt, int(k.Iterations), keyLen)
	case "argon2i":
		return argon2.Key(passphrase, k.Salt, k.Time, k.Memory, uint8(k.CPUs), uint32(keyLen)), nil
	case "argon2id":
		return argon2.IDKey(passphrase, k.Salt, k.Time, k.Memory, uint8(k.CPUs), uint32(keyLen)), nil
	}
	return nil, fmt.Errorf("kdf %q: %w", k.Type, ErrUnsupported)
}
