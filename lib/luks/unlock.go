package luks

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Volume is an unlocked LUKS2 volume: its header and volume key.
type Volume struct {
	Header *Header
	// Keyslot is the id of the keyslot that opened, e.g. 0.
	Keyslot int
	// Key is the volume ("master") key. Keep it secret; clear it when done.
	Key []byte
	// Segment is the data segment the key decrypts.
	Segment Segment
}

// Unlock reads the header of the LUKS2 volume in r and recovers the volume
// key with passphrase. It returns ErrWrongPassphrase if no keyslot opens.
// To try several passphrases, call ReadHeader once and Header.Unlock for
// each.
func Unlock(r io.ReaderAt, passphrase []byte) (*Volume, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	return h.Unlock(r, passphrase)
}

// Unlock recovers the volume key of the data segment with passphrase, by
// trying each keyslot bound to the segment's digest: those of priority
// "prefer" (2) first, then "normal" ones; "ignore" (0) keyslots are
// skipped, as cryptsetup does. r is the device h was read from.
func (h *Header) Unlock(r io.ReaderAt, passphrase []byte) (*Volume, error) {
	m := h.meta
	if m == nil {
		return nil, errors.New("unlock: header not read by ReadHeader")
	}
	if m.Config.Requirements != nil && len(m.Config.Requirements.Mandatory) > 0 {
		return nil, fmt.Errorf("unlock: requirements %q: %w", m.Config.Requirements.Mandatory, ErrUnsupported)
	}
	if len(h.Segments) != 1 {
		return nil, fmt.Errorf("unlock: %d data segments: %w", len(h.Segments), ErrUnsupported)
	}
	seg := h.Segments[0]
	segID := fmt.Sprint(seg.ID)
	js := m.Segments[segID]
	if js.Type != "crypt" || len(js.Integrity) > 0 {
		return nil, fmt.Errorf("unlock: segment type %q with integrity %s: %w", js.Type, js.Integrity, ErrUnsupported)
	}
	if js.Encryption != cipherSpec {
		return nil, fmt.Errorf("unlock: segment cipher %q: %w", js.Encryption, ErrUnsupported)
	}
	var digest *jsonDigest
	for _, id := range sortedIDs(m.Digests) {
		if slices.Contains(m.Digests[id].Segments, segID) {
			digest = m.Digests[id]
			break
		}
	}
	if digest == nil {
		return nil, fmt.Errorf("unlock: %w: no digest for segment %s", ErrCorrupt, segID)
	}

	type candidate struct {
		id       string
		priority int
	}
	var cands []candidate
	for _, id := range digest.Keyslots {
		ks := m.Keyslots[id]
		prio := 1
		if ks.Priority != nil {
			prio = *ks.Priority
		}
		if ks.Type != "luks2" || prio == 0 {
			continue
		}
		cands = append(cands, candidate{id, prio})
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		x, _ := parseID(a.id)
		y, _ := parseID(b.id)
		return x - y
	})
	if len(cands) == 0 {
		return nil, fmt.Errorf("unlock: no usable keyslot for segment %s: %w", segID, ErrWrongPassphrase)
	}

	var errs []error
	tried := 0
	for _, c := range cands {
		ks := m.Keyslots[c.id]
		if k := ks.KDF; h.MaxMemory != 0 && k.Type != "pbkdf2" && uint64(k.Memory) > h.MaxMemory {
			errs = append(errs, fmt.Errorf("keyslot %s: argon2 memory %d KiB exceeds the %d KiB available: %w",
				c.id, k.Memory, h.MaxMemory, ErrUnsupported))
			continue
		}
		key, err := openKeyslot(r, ks, passphrase)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", c.id, err))
			continue
		}
		tried++
		ok, err := digest.verify(key)
		if err != nil {
			clear(key)
			errs = append(errs, fmt.Errorf("keyslot %s: %w", c.id, err))
			continue
		}
		if !ok {
			clear(key)
			continue
		}
		n, _ := parseID(c.id)
		return &Volume{Header: h, Keyslot: n, Key: key, Segment: seg}, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("unlock: %w", ErrWrongPassphrase)
	}
	if tried > 0 {
		errs = append([]error{ErrWrongPassphrase}, errs...)
	}
	return nil, fmt.Errorf("unlock: %w", errors.Join(errs...))
}
