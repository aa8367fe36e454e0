package luks

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// formatted returns a volume formatted with kdf (keyslot 0, passphrase
// "distri") as bytes.
func formatted(t *testing.T, kdf KDF) []byte {
	t.Helper()
	dev := &memDevice{}
	if _, err := Format(dev, []byte("distri"), FormatOptions{KDF: kdf, DataOffset: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return dev.b
}

// TestReadHeaderKDFLimits attacks the boot with headers whose KDF costs
// cryptsetup would never write (parallel cost above 4) or that would keep
// Unlock busy for hours (argon2 4 GiB × 2^20 passes, 2^32-1 PBKDF2
// iterations). ReadHeader must refuse them at once, naming the keyslot or
// digest and the parameter; before, it accepted them all and Unlock
// computed.
func TestReadHeaderKDFLimits(t *testing.T) {
	argon := formatted(t, cheapArgon2)
	pbkdf := formatted(t, cheapPBKDF2)
	for _, tt := range []struct {
		name string
		img  []byte
		edit func(m *metadata)
		want string // in the error
	}{
		{"argon2-cpus-above-cryptsetup", argon, func(m *metadata) { m.Keyslots["0"].KDF.CPUs = 16 },
			"keyslot 0: kdf: argon2 cpus 16 out of range [1, 4]"},
		{"argon2-memory-above-cryptsetup", argon, func(m *metadata) { m.Keyslots["0"].KDF.Memory = 4<<20 + 1 },
			"keyslot 0: kdf: argon2 memory 4194305 KiB out of range"},
		{"argon2-time-huge", argon, func(m *metadata) { m.Keyslots["0"].KDF.Time = 1<<32 - 1 },
			"keyslot 0: kdf: argon2 time 4294967295 out of range"},
		{"argon2-work-huge", argon, func(m *metadata) { m.Keyslots["0"].KDF.Time, m.Keyslots["0"].KDF.Memory = 1<<20, 4<<20 },
			"keyslot 0: kdf: argon2 time 1048576 × memory 4194304 KiB exceed the limit"},
		{"argon2-work-just-over", argon, func(m *metadata) { m.Keyslots["0"].KDF.Time, m.Keyslots["0"].KDF.Memory = 33, 1<<20 },
			"keyslot 0: kdf: argon2 time 33 × memory 1048576 KiB exceed the limit"},
		{"pbkdf2-iterations-huge", pbkdf, func(m *metadata) { m.Keyslots["0"].KDF.Iterations = 1<<32 - 1 },
			"keyslot 0: kdf: pbkdf2 iterations 4294967295 exceed the limit of 67108864"},
		{"digest-iterations-huge", pbkdf, func(m *metadata) { m.Digests["0"].Iterations = 1<<32 - 1 },
			"digest 0: pbkdf2 iterations 4294967295 exceed the limit of 67108864"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := rewriteMetadata(t, tt.img, tt.edit)
			start := time.Now()
			_, err := ReadHeader(bytes.NewReader(img))
			if err == nil {
				t.Fatalf("ReadHeader accepted the header")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadHeader = %v, want ErrCorrupt with %q", err, tt.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("ReadHeader took %v to refuse", d)
			}
		})
	}

	// The limits leave room for what cryptsetup's benchmark writes: 1 GiB,
	// 32 passes, 4 lanes; 2^26 PBKDF2 iterations.
	for _, tt := range []struct {
		name string
		img  []byte
		edit func(m *metadata)
	}{
		{"argon2-1GiB-32-passes", argon, func(m *metadata) {
			k := m.Keyslots["0"].KDF
			k.Time, k.Memory, k.CPUs = 32, 1<<20, 4
		}},
		{"pbkdf2-at-limit", pbkdf, func(m *metadata) { m.Keyslots["0"].KDF.Iterations = 1 << 26 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadHeader(bytes.NewReader(rewriteMetadata(t, tt.img, tt.edit))); err != nil {
				t.Errorf("ReadHeader: %v", err)
			}
		})
	}
}

// TestUnlockMaxMemory attacks an initramfs with little RAM: a keyslot
// asking for 1 GiB of argon2 memory (within cryptsetup's limits) must be
// skipped with an error naming it when Header.MaxMemory says only 64 MiB
// are available, without allocating; a keyslot that fits still opens.
func TestUnlockMaxMemory(t *testing.T) {
	img := rewriteMetadata(t, formatted(t, cheapArgon2), func(m *metadata) { m.Keyslots["0"].KDF.Memory = 1 << 20 })
	h, err := ReadHeader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	h.MaxMemory = 64 << 10
	start := time.Now()
	_, err = h.Unlock(bytes.NewReader(img), []byte("distri"))
	if err == nil || !strings.Contains(err.Error(), "keyslot 0: argon2 memory 1048576 KiB exceeds the 65536 KiB available") {
		t.Errorf("Unlock = %v, want an error naming keyslot 0 and its memory", err)
	}
	if errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Unlock = %v: a skipped keyslot is no wrong passphrase", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Unlock took %v to refuse: it ran the KDF", d)
	}

	good := formatted(t, cheapArgon2)
	h, err = ReadHeader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	h.MaxMemory = 64
	if _, err := h.Unlock(bytes.NewReader(good), []byte("distri")); err != nil {
		t.Errorf("Unlock with 64 KiB argon2 and MaxMemory 64: %v", err)
	}
}
