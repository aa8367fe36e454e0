// Package luks reads and writes LUKS2 volumes in pure Go: it formats a
// header with one keyslot, unlocks a volume with a passphrase, and
// encrypts or decrypts the data segment without device-mapper.
//
// The on-disk format is the one cryptsetup writes, described in the LUKS2
// on-disk format specification
// (https://gitlab.com/cryptsetup/LUKS2-docs/blob/main/luks2_doc_wip.pdf).
// Volumes written here open with cryptsetup, and volumes that cryptsetup
// formats unlock here.
//
// # Layout
//
// A volume starts with two copies of the header (binary header plus JSON
// area, 16 KiB each by default), followed by the keyslots area, followed
// by the data segment:
//
//	0        primary header   ("LUKS\xba\xbe", 4 KiB binary + 12 KiB JSON)
//	16 KiB   secondary header ("SKUL\xba\xbe")
//	32 KiB   keyslot 0 area   (AF-split volume key, encrypted with the passphrase key)
//	…        rest of the keyslots area
//	16 MiB   data segment     (aes-xts-plain64, 512 or 4096 byte sectors)
//
// # Unlocking
//
// [Unlock] (or [ReadHeader] then [Header.Unlock], to read the header once
// and try several passphrases) verifies both header checksums, uses the
// valid copy with the higher sequence id, then tries every keyslot bound to
// the data segment's digest: derive a key with the keyslot's KDF (argon2id,
// argon2i or pbkdf2), decrypt the keyslot area, merge the anti-forensic
// stripes and compare the result against the digest. A passphrase that fits
// no keyslot yields [ErrWrongPassphrase].
//
// A key file is nothing special: its bytes, unmodified (including any
// trailing newline), are the passphrase, as with cryptsetup --key-file.
//
// # Data
//
// The data segment is encrypted per sector with AES-XTS; the tweak of a
// sector is its offset from the segment start in 512-byte units (plus the
// segment's iv_tweak), as a 64-bit little-endian value (plain64). The unit
// stays 512 bytes with 4096-byte sectors: the second 4096-byte sector has
// IV 8, as in dm-crypt without iv_large_sectors, which LUKS2 does not use.
// [Encrypt] formats a container and streams an image into it, in parallel
// across CPU cores. [Volume.NewReader] and [Volume.DecryptTo] read it back.
// [Volume.DMCrypt] returns what a device-mapper crypt target needs, for a
// boot loader that maps the volume through ioctls.
//
// # Not supported
//
// Ciphers other than aes-xts-plain64 (for both keyslots and data),
// authenticated encryption (dm-integrity), volumes with an unfinished
// reencryption or other mandatory requirements, tokens (they are kept in the
// JSON but not interpreted), LUKS1, detached-header creation, and adding
// or removing keyslots of an existing volume.
//
// # Decisions
//
//   - The default KDF is argon2id with 4 passes, 256 MiB and 4 lanes. Unlike
//     cryptsetup, Format does not benchmark: the machine that formats (a
//     build host) is not the one that unlocks (a small VM's initramfs), so
//     fixed, documented costs beat costs derived from the wrong machine.
//     cryptsetup caps its own choice at 1 GiB; pick that via
//     [FormatOptions] when the unlocking machine has the memory.
//   - XTS is implemented here over crypto/aes rather than with
//     golang.org/x/crypto/xts, which is several times slower per sector;
//     the tests check it against x/crypto/xts, the IEEE 1619 vectors and
//     data that cryptsetup encrypted.
//   - A header's KDF costs are bounded before any work: cryptsetup's own
//     limits (argon2 memory 4 GiB, parallel cost 4) and ours where it has
//     none (argon2 time × memory at most 32 GiB-passes, PBKDF2 at most
//     2^26 iterations), so a hostile header cannot stall the boot for
//     hours; [Header.MaxMemory] skips keyslots the machine cannot afford
//     instead of running out of memory. docs/luks.md has the table.
//   - Format wipes the whole keyslots area, as cryptsetup does, so no
//     stale key material of an earlier volume survives there.
package luks
