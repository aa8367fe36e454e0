// Package image assembles bootable disk images from a prepared root
// tree, without privileges: no mounts, no loop devices, no device-mapper.
// It also writes a tree or a disk as other images: [Docker] (a tar for
// docker import), [LXD] (a split image), [GCE] (disk.raw in a tar.gz) and
// [Convert] (vdi, qcow2 with qemu-img). Their tars are deterministic.
//
// # Disk layout
//
// [Disk] writes a GPT disk (512-byte sectors):
//
//	0        protective MBR, primary GPT
//	1 MiB    partition 1 "esp": FAT32, 256 MiB (go-diskfs)
//	           EFI/BOOT/BOOTX64.EFI, EFI/systemd/systemd-bootx64.efi  systemd-boot
//	           loader/loader.conf, loader/entries/distri.conf          timeout 0, one entry
//	           distri/vmlinuz, distri/initramfs.img
//	257 MiB  partition 2 "root" (Linux root x86-64 type): ext4 labelled
//	         distri-root (mkfs.ext4 -d straight into the image at an
//	         offset), or a LUKS2 container (lib/luks, 16 MiB header)
//	         holding that ext4
//	end      1 MiB for the backup GPT
//
// The boot entry names the root as root=PARTUUID=… when plain and as
// rd.luks.uuid=… rd.luks.name=…=root root=/dev/mapper/root when
// encrypted (see docs/boot.md). etc/fstab in the root tree names the root
// file system by its UUID and the ESP at /boot, never a crypt device.
//
// # Reproducibility
//
// With a Seed, the same inputs give a byte-identical image: UUIDs, the
// ext4 hash seed and creation times (E2FSPROGS_FAKE_TIME) and the FAT
// volume id derive from it. mkfs.ext4 copies the root tree's own time
// stamps, owners and modes.
//
// The LUKS volume key and salts never derive from the seed: they always
// come from crypto/rand. A seed is no secret (it sits on command lines,
// in Makefiles and CI logs), and a key derived from it would open the
// root without the passphrase. So a seeded encrypted image is identical
// from run to run everywhere but its LUKS partition (the LUKS UUID is
// seeded: it is on the kernel command line). Only this package's tests
// can fix the key material, through an unexported DiskOptions field; no
// program can ask for it.
//
// # Decisions
//
//   - The encrypted root is made as a plain ext4 file next to the output
//     and streamed through lib/luks, because the host has no dm-crypt.
//     The partition is fully written (not sparse) then, as it must be:
//     encrypted zeros are not zeros.
//   - The default LUKS KDF is argon2id with 64 MiB, not lib/luks's 256
//     MiB: the initramfs of a small VM must afford it.
package image
