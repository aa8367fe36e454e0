package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/luks"
)

// inputs returns a root tree and stand-ins for the kernel, initramfs and
// systemd-boot: the layout tests never boot them.
func inputs(t *testing.T) DiskOptions {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"dev", "proc", "sys", "etc", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("root/bin/hello", "#!/bin/sh\necho hello\n")
	return DiskOptions{
		Output:      filepath.Join(dir, "disk.img"),
		Size:        340 << 20,
		Root:        root,
		Kernel:      write("vmlinuz", strings.Repeat("kernel", 100000)),
		Initramfs:   write("initramfs.img", "initramfs"),
		SystemdBoot: write("systemd-bootx64.efi", "MZ systemd-boot"),
		Seed:        42,
	}
}

// onlyMkfs leaves only mkfs.ext4 and debugfs in $PATH, so Disk cannot
// run mount, losetup, sudo or anything else.
func onlyMkfs(t *testing.T) {
	t.Helper()
	bin := t.TempDir()
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if err := os.Symlink(distritest.NeedTool(t, tool), filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
}

func TestDiskLayout(t *testing.T) {
	sfdisk := distritest.NeedTool(t, "sfdisk")
	fsck := distritest.NeedTool(t, "fsck.ext4")
	opts := inputs(t)
	onlyMkfs(t)
	l, err := Disk(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(sfdisk, "--dump", opts.Output).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v\n%s", err, out)
	}
	dump := strings.ToLower(string(out))
	for _, want := range []string{
		"label: gpt",
		"label-id: " + l.DiskGUID,
		"start=        2048, size=      524288, type=c12a7328-f81f-11d2-ba4b-00a0c93ec93b, uuid=" + l.ESPPartUUID + `, name="esp"`,
		"start=      526336, size=      167936, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, uuid=" + l.RootPartUUID + `, name="root"`,
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", want, out)
		}
	}

	part := extract(t, opts.Output, l.RootOffset, l.RootSize)
	if out, err := exec.Command(fsck, "-fn", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.ext4 -fn: %v\n%s", err, out)
	}

	fstab, err := os.ReadFile(filepath.Join(opts.Root, "etc", "fstab"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UUID=" + l.RootUUID + " / ext4 ", "PARTUUID=" + l.ESPPartUUID + " /boot vfat "} {
		if !strings.Contains(string(fstab), want) {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	if strings.Contains(string(fstab), "/dev/mapper") {
		t.Errorf("fstab of an unencrypted image names a crypt device:\n%s", fstab)
	}

	d, err := diskfs.Open(opts.Output, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	esp, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"/EFI/BOOT/BOOTX64.EFI":            "MZ systemd-boot",
		"/EFI/systemd/systemd-bootx64.efi": "MZ systemd-boot",
		"/distri/initramfs.img":            "initramfs",
		"/distri/vmlinuz":                  strings.Repeat("kernel", 100000),
		"/loader/loader.conf":              "default distri.conf\ntimeout 0\nconsole-mode keep\neditor no\n",
		"/loader/entries/distri.conf": "title distri\nlinux /distri/vmlinuz\ninitrd /distri/initramfs.img\n" +
			"options root=PARTUUID=" + l.RootPartUUID + " rw console=tty0 console=ttyS0,115200\n",
	} {
		f, err := esp.OpenFile(name, os.O_RDONLY)
		if err != nil {
			t.Errorf("ESP %s: %v", name, err)
			continue
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(f); err != nil {
			t.Errorf("ESP %s: %v", name, err)
		}
		if got := b.String(); got != want {
			t.Errorf("ESP %s = %.80q, want %.80q", name, got, want)
		}
	}
}

// extract copies size bytes at off of image into a file of their own.
func extract(t *testing.T, image string, off, size int64) string {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := filepath.Join(t.TempDir(), "part.img")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(f, off, size)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDiskEncrypted(t *testing.T) {
	fsck := distritest.NeedTool(t, "fsck.ext4")
	opts := inputs(t)
	onlyMkfs(t)
	opts.Encrypt = true
	opts.Passphrase = []byte("hunter2")
	opts.KDF = luks.KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}
	opts.Cmdline = "quiet"
	l, err := Disk(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Cmdline, "rd.luks.uuid="+l.LUKSUUID+" rd.luks.name="+l.LUKSUUID+"=root root=/dev/mapper/root rw console=tty0 console=ttyS0,115200 quiet"; got != want {
		t.Errorf("Cmdline = %q, want %q", got, want)
	}
	fstab, err := os.ReadFile(filepath.Join(opts.Root, "etc", "fstab"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fstab), "UUID="+l.RootUUID+" / ext4 ") {
		t.Errorf("fstab does not name the root by its ext4 UUID:\n%s", fstab)
	}

	part := extract(t, opts.Output, l.RootOffset, l.RootSize)
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := luks.Unlock(f, opts.Passphrase)
	if err != nil {
		t.Fatalf("luks.Unlock: %v", err)
	}
	if got, want := v.Header.UUID, l.LUKSUUID; got != want {
		t.Errorf("LUKS UUID = %s, want %s", got, want)
	}
	plain := filepath.Join(t.TempDir(), "root.ext4")
	out, err := os.Create(plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DecryptTo(out, f, l.RootSize); err != nil {
		t.Fatal(err)
	}
	out.Close()
	if out, err := exec.Command(fsck, "-fn", plain).CombinedOutput(); err != nil {
		t.Errorf("fsck.ext4 -fn of the decrypted root: %v\n%s", err, out)
	}
}

// TestDiskReproducible builds each image twice from the same inputs and
// seed, a moment apart, and wants the same bytes; another seed must
// differ. An encrypted image has a random volume key whatever the seed
// (see TestDiskSeedNoVolumeKey), so there everything but the LUKS
// partition must be the same, and with the test-only key source the
// whole image.
func TestDiskReproducible(t *testing.T) {
	for _, tt := range []struct {
		name    string
		encrypt bool
		keyRand bool // fixed key material through DiskOptions.keyRand
	}{
		{"plain", false, false},
		{"encrypted", true, false},
		{"encrypted with test key source", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := inputs(t)
			onlyMkfs(t)
			if tt.encrypt {
				opts.Encrypt, opts.Passphrase = true, []byte("pass")
				opts.KDF = luks.KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}
			}
			var sums []string
			var l *Layout
			for i, seed := range []uint64{7, 7, 8} {
				opts.Output = filepath.Join(t.TempDir(), "disk.img")
				opts.Seed = seed
				if tt.keyRand {
					opts.keyRand = mrand.NewChaCha8([32]byte{1})
				}
				if i == 2 {
					// The other seed writes another fstab: reset it.
					os.Remove(filepath.Join(opts.Root, "etc", "fstab"))
				}
				var err error
				if l, err = Disk(t.Context(), opts); err != nil {
					t.Fatal(err)
				}
				if tt.encrypt && !tt.keyRand {
					sums = append(sums, sha256sumOutside(t, opts.Output, l.RootOffset, l.RootSize))
				} else {
					sums = append(sums, sha256sum(t, opts.Output))
				}
				os.Remove(opts.Output)
			}
			if sums[0] != sums[1] {
				t.Errorf("two builds with seed 7 differ: sha256 %s and %s", sums[0], sums[1])
			}
			if sums[0] == sums[2] {
				t.Errorf("builds with seeds 7 and 8 are the same")
			}
		})
	}
}

// TestDiskSeedNoVolumeKey attacks issue 22: with --seed, the volume key
// used to follow from the seed and the passphrase. Two seeded builds must
// get different volume keys (read back by lib/luks and by cryptsetup),
// neither of them the key the old derivation gives, and the same bytes
// outside the LUKS partition.
func TestDiskSeedNoVolumeKey(t *testing.T) {
	cryptsetup := distritest.NeedTool(t, "cryptsetup")
	opts := inputs(t)
	onlyMkfs(t)
	opts.Encrypt, opts.Passphrase = true, []byte("pass")
	opts.KDF = luks.KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}
	opts.Seed = 7
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, opts.Passphrase, 0o600); err != nil {
		t.Fatal(err)
	}
	var keys [][]byte
	var outside []string
	for i := range 3 {
		// Build 0 is the control: fed the old derivation through the
		// test-only key source, it must get seedDerivedKey, which shows
		// that the check below would catch the old code.
		control := i == 0
		opts.keyRand = nil
		if control {
			opts.keyRand = oldKeyStream(opts.Seed, opts.Passphrase)
		}
		opts.Output = filepath.Join(t.TempDir(), "disk.img")
		l, err := Disk(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		outside = append(outside, sha256sumOutside(t, opts.Output, l.RootOffset, l.RootSize))
		part := extract(t, opts.Output, l.RootOffset, l.RootSize)
		os.Remove(opts.Output)
		f, err := os.Open(part)
		if err != nil {
			t.Fatal(err)
		}
		v, err := luks.Unlock(f, opts.Passphrase)
		f.Close()
		if err != nil {
			t.Fatalf("luks.Unlock: %v", err)
		}
		out, err := exec.Command(cryptsetup, "luksDump", "--dump-volume-key", "--batch-mode",
			"--key-file", passFile, part).CombinedOutput()
		if err != nil {
			t.Fatalf("cryptsetup luksDump --dump-volume-key: %v\n%s", err, out)
		}
		if got, want := dumpedKey(t, string(out)), hex.EncodeToString(v.Key); got != want {
			t.Errorf("cryptsetup dumps volume key %s, lib/luks unlocks %s", got, want)
		}
		os.Remove(part)
		derived := bytes.Equal(v.Key, seedDerivedKey(opts.Seed, opts.Passphrase, len(v.Key)))
		if control {
			if !derived {
				t.Fatalf("control build: volume key %x is not the old seed-derived key", v.Key)
			}
			continue
		}
		if derived {
			t.Errorf("the volume key is the one derived from seed %d and the passphrase", opts.Seed)
		}
		keys = append(keys, v.Key)
	}
	if bytes.Equal(keys[0], keys[1]) {
		t.Errorf("two builds with seed %d have the same volume key %x", opts.Seed, keys[0])
	}
	for i := 1; i < len(outside); i++ {
		if outside[0] != outside[i] {
			t.Errorf("builds %d and %d with seed %d differ outside the LUKS partition", 0, i, opts.Seed)
		}
	}
}

// oldKeyStream is how lib/image made LUKS key material from a seed before
// issue 22: a ChaCha8 stream keyed with sha256(seed, "luks", passphrase).
// Kept here only to show that the key no longer follows from it.
func oldKeyStream(seed uint64, passphrase []byte) io.Reader {
	h := sha256.New()
	binary.Write(h, binary.LittleEndian, seed)
	io.WriteString(h, "luks")
	h.Write(passphrase)
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return mrand.NewChaCha8(k)
}

// seedDerivedKey is the volume key the old derivation gave: Format reads
// the key first when the UUID is given.
func seedDerivedKey(seed uint64, passphrase []byte, n int) []byte {
	key := make([]byte, n)
	io.ReadFull(oldKeyStream(seed, passphrase), key)
	return key
}

// dumpedKey returns the hex volume key from cryptsetup luksDump
// --dump-volume-key output ("MK dump:" or "Volume key:" followed by hex
// bytes over one or more lines).
func dumpedKey(t *testing.T, out string) string {
	t.Helper()
	var hexKey strings.Builder
	in := false
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.Contains(k, "MK dump") || strings.Contains(k, "Volume key")) {
			in = true
			line = v
		} else if in && (strings.Contains(line, ":") || strings.TrimSpace(line) == "") {
			break
		}
		if in {
			hexKey.WriteString(strings.ReplaceAll(strings.TrimSpace(line), " ", ""))
		}
	}
	if hexKey.Len() == 0 {
		t.Fatalf("no volume key in cryptsetup output:\n%s", out)
	}
	return hexKey.String()
}

// sha256sumOutside hashes the file p without the size bytes at off (the
// LUKS partition), keeping their position.
func sha256sumOutside(t *testing.T, p string, off, size int64) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, off)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(h, "[%d bytes skipped]", size)
	if _, err := io.Copy(h, io.NewSectionReader(f, off+size, fi.Size()-off-size)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256sum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestDiskErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*DiskOptions)
	}{
		{"no root", func(o *DiskOptions) { o.Root = "" }},
		{"root not a dir", func(o *DiskOptions) { o.Root = o.Kernel }},
		{"missing kernel", func(o *DiskOptions) { o.Kernel += ".missing" }},
		{"too small", func(o *DiskOptions) { o.Size = 300 << 20 }},
		{"encrypt without passphrase", func(o *DiskOptions) { o.Encrypt = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := inputs(t)
			tt.modify(&opts)
			if _, err := Disk(t.Context(), opts); err == nil {
				t.Errorf("Disk(%s) succeeded, want an error", tt.name)
			}
			if _, err := os.Stat(opts.Output); err == nil {
				t.Errorf("Disk(%s) failed but left %s", tt.name, opts.Output)
			}
		})
	}
}
