package luks

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
)

// keepDir keeps the volumes the interop tests make, for inspection with
// cryptsetup: go test ./lib/luks -run Cryptsetup -luks_keep=/tmp/luks
var keepDir = flag.String("luks_keep", "", "copy the volumes of the cryptsetup tests into this directory")

// Cheap KDF costs for tests that are not about KDF costs.
var (
	cheapArgon2 = KDF{Type: "argon2id", Time: 1, Memory: 64, Threads: 1}
	cheapPBKDF2 = KDF{Type: "pbkdf2", Iterations: 1000}
)

// cryptsetup runs cryptsetup with args and returns its combined output.
func cryptsetup(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(distritest.NeedTool(t, "cryptsetup"), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %w\n%s", cmd.Args, err, out)
	}
	return string(out), nil
}

// exitCode returns the exit status of a failed command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// keep copies the file at path into -luks_keep, if set.
func keep(t *testing.T, path string) {
	t.Helper()
	if *keepDir == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer("/", "_").Replace(t.Name()) + ".img"
	if err := os.WriteFile(filepath.Join(*keepDir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sparseFile creates a file of size bytes in a temp dir.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "volume.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeKeyFile(t *testing.T, passphrase []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, passphrase, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCryptsetupOpensFormat checks that cryptsetup accepts what Format
// writes: luksDump shows it, and --test-passphrase takes the right
// passphrase and refuses a wrong one.
func TestCryptsetupOpensFormat(t *testing.T) {
	distritest.NeedTool(t, "cryptsetup")
	for _, tt := range []struct {
		name string
		opts FormatOptions
		want []string // lines luksDump must show
	}{
		{
			name: "pbkdf2",
			opts: FormatOptions{KDF: cheapPBKDF2},
			want: []string{"PBKDF:      pbkdf2", "Iterations: 1000", "sector: 512 [bytes]", "offset: 16777216 [bytes]"},
		},
		{
			name: "argon2id-cheap-4096",
			opts: FormatOptions{KDF: cheapArgon2, SectorSize: 4096, DataOffset: 1 << 20, Label: "root", Subsystem: "distri"},
			want: []string{"PBKDF:      argon2id", "Memory:     64", "sector: 4096 [bytes]", "offset: 1048576 [bytes]", "Label:         \troot", "Subsystem:     \tdistri"},
		},
		{
			name: "argon2i-aes128",
			opts: FormatOptions{KDF: KDF{Type: "argon2i", Time: 2, Memory: 1024, Threads: 2}, KeySize: 32, DataOffset: 1 << 20},
			want: []string{"PBKDF:      argon2i", "Key:        256 bits", "Threads:    2"},
		},
		{
			// Our default costs (argon2id, 4 passes, 256 MiB, 4 lanes), to
			// show that cryptsetup opens them, not only toy costs.
			name: "argon2id-defaults",
			opts: FormatOptions{},
			want: []string{"PBKDF:      argon2id", "Time cost:  4", "Memory:     262144", "Threads:    4", "AF stripes: 4000", "Key:        512 bits"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			passphrase := []byte("correct horse battery staple\n")
			path := sparseFile(t, 20<<20)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			tt.opts.UUID = "0d15ea5e-0000-4000-8000-00000000d157"
			v, err := Format(f, passphrase, tt.opts)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatalf("Format: %v", err)
			}
			keep(t, path)

			dump, err := cryptsetup(t, nil, "luksDump", path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range append(tt.want, "UUID:          \t"+tt.opts.UUID, "cipher: aes-xts-plain64") {
				if !strings.Contains(dump, w) {
					t.Errorf("luksDump output lacks %q:\n%s", w, dump)
				}
			}

			if _, err := cryptsetup(t, passphrase, "open", "--test-passphrase", "--key-file=-", path); err != nil {
				t.Errorf("right passphrase: %v", err)
			}
			// A key file is the passphrase's bytes: the trailing newline counts.
			if _, err := cryptsetup(t, nil, "open", "--test-passphrase", "--key-file", writeKeyFile(t, passphrase), path); err != nil {
				t.Errorf("right key file: %v", err)
			}
			_, err = cryptsetup(t, passphrase[:len(passphrase)-1], "open", "--test-passphrase", "--key-file=-", path)
			if got, want := exitCode(err), 2; got != want {
				t.Errorf("wrong passphrase: exit code %d (%v), want %d (no key available)", got, err, want)
			}

			// cryptsetup recovers the same volume key.
			vkPath := filepath.Join(t.TempDir(), "vk")
			if _, err := cryptsetup(t, passphrase, "luksDump", "--batch-mode", "--dump-volume-key", "--volume-key-file", vkPath, "--key-file=-", path); err != nil {
				t.Fatal(err)
			}
			vk, err := os.ReadFile(vkPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(vk, v.Key) {
				t.Errorf("cryptsetup's volume key %x, want %x", vk, v.Key)
			}
		})
	}
}

// cryptsetupFormat makes a volume with cryptsetup luksFormat and returns
// its path and volume key.
func cryptsetupFormat(t *testing.T, passphrase []byte, args ...string) (path string, key []byte) {
	t.Helper()
	path = sparseFile(t, 20<<20)
	argv := append([]string{"luksFormat", "--type", "luks2", "--batch-mode", "--key-file", writeKeyFile(t, passphrase)}, args...)
	if _, err := cryptsetup(t, nil, append(argv, path)...); err != nil {
		t.Fatal(err)
	}
	vkPath := filepath.Join(t.TempDir(), "vk")
	if _, err := cryptsetup(t, passphrase, "luksDump", "--batch-mode", "--dump-volume-key", "--volume-key-file", vkPath, "--key-file=-", path); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(vkPath)
	if err != nil {
		t.Fatal(err)
	}
	keep(t, path)
	return path, key
}

// TestUnlockCryptsetupVolume checks that Unlock opens what cryptsetup
// luksFormat writes and recovers the same volume key.
func TestUnlockCryptsetupVolume(t *testing.T) {
	distritest.NeedTool(t, "cryptsetup")
	cheap := []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}
	for _, tt := range []struct {
		name       string
		args       []string
		sectorSize int
		skipWrong  bool // skip the (slow) wrong-passphrase attempt
	}{
		{
			// cryptsetup's defaults: argon2id with benchmarked costs
			// (about 2 s on the formatting machine), 4096-byte sectors
			// on a file.
			name:       "defaults",
			sectorSize: 4096,
			skipWrong:  true,
		},
		{
			name:       "pbkdf2",
			args:       cheap,
			sectorSize: 4096,
		},
		{
			name:       "argon2id-cheap",
			args:       []string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "2"},
			sectorSize: 4096,
		},
		{
			name:       "argon2i-sector512",
			args:       []string{"--pbkdf", "argon2i", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "1024", "--sector-size", "512"},
			sectorSize: 512,
		},
		{
			name:       "pbkdf2-sha512-aes128",
			args:       append([]string{"--hash", "sha512", "--key-size", "256"}, cheap...),
			sectorSize: 4096,
		},
		{
			name:       "metadata-64k",
			args:       append([]string{"--luks2-metadata-size", "64k", "--luks2-keyslots-size", "1m", "--offset", "4096"}, cheap...),
			sectorSize: 4096,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			passphrase := []byte("distri")
			path, key := cryptsetupFormat(t, passphrase, tt.args...)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v, err := Unlock(f, passphrase)
			if err != nil {
				t.Fatalf("Unlock: %v", err)
			}
			if !bytes.Equal(v.Key, key) {
				t.Errorf("Unlock key = %x, want %x (from cryptsetup)", v.Key, key)
			}
			if got, want := v.Segment.SectorSize, tt.sectorSize; got != want {
				t.Errorf("sector size = %d, want %d", got, want)
			}
			if tt.skipWrong {
				return
			}
			if _, err := Unlock(f, []byte("distri\n")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("Unlock(wrong passphrase) = %v, want ErrWrongPassphrase", err)
			}
		})
	}

	t.Run("second-keyslot", func(t *testing.T) {
		path, key := cryptsetupFormat(t, []byte("first"), cheap...)
		if _, err := cryptsetup(t, nil, "luksAddKey", "--batch-mode", "--key-file", writeKeyFile(t, []byte("first")),
			"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "1024", path, writeKeyFile(t, []byte("second"))); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h, err := ReadHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			passphrase string
			keyslot    int
		}{{"first", 0}, {"second", 1}} {
			v, err := h.Unlock(f, []byte(tt.passphrase))
			if err != nil {
				t.Fatalf("Unlock(%q): %v", tt.passphrase, err)
			}
			if got, want := v.Keyslot, tt.keyslot; got != want {
				t.Errorf("Unlock(%q) opened keyslot %d, want %d", tt.passphrase, got, want)
			}
			if !bytes.Equal(v.Key, key) {
				t.Errorf("Unlock(%q) key = %x, want %x", tt.passphrase, v.Key, key)
			}
		}
		if _, err := h.Unlock(f, []byte("third")); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("Unlock(wrong passphrase) = %v, want ErrWrongPassphrase", err)
		}
	})
}

// TestDecryptCryptsetupData decrypts data that cryptsetup encrypted
// without device-mapper (offline reencrypt --encrypt of a plain file),
// which checks our AES-XTS and IV numbering against cryptsetup's.
func TestDecryptCryptsetupData(t *testing.T) {
	distritest.NeedTool(t, "cryptsetup")
	for _, sectorSize := range []int{512, 4096} {
		t.Run(fmt.Sprint("sector", sectorSize), func(t *testing.T) {
			plain := make([]byte, 40<<20)
			if _, err := rand.Read(plain); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "volume.img")
			if err := os.WriteFile(path, plain, 0o644); err != nil {
				t.Fatal(err)
			}
			passphrase := []byte("distri")
			// --reduce-device-size makes room for the header: the device
			// is taken to be 32 MiB shorter than the file (the
			// filesystem must have been shrunk), and its data move to
			// the data segment, which starts at half of that, 16 MiB.
			if _, err := cryptsetup(t, nil, "reencrypt", "--encrypt", "--type", "luks2", "--batch-mode",
				"--reduce-device-size", "32M", "--sector-size", fmt.Sprint(sectorSize),
				"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
				"--key-file", writeKeyFile(t, passphrase), path); err != nil {
				t.Fatal(err)
			}
			keep(t, path)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			v, err := Unlock(f, passphrase)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := v.DecryptTo(&got, f, fi.Size()); err != nil {
				t.Fatal(err)
			}
			n := len(plain) - 32<<20 // what cryptsetup encrypted
			if got.Len() < n {
				t.Fatalf("decrypted segment has %d bytes, want at least %d", got.Len(), n)
			}
			if !bytes.Equal(got.Bytes()[:n], plain[:n]) {
				t.Errorf("decrypted segment differs from the original data")
			}
		})
	}
}

// TestCryptsetupDecryptsEncrypt has cryptsetup decrypt (offline, in place,
// with a detached copy of the header) a container that Encrypt made.
func TestCryptsetupDecryptsEncrypt(t *testing.T) {
	distritest.NeedTool(t, "cryptsetup")
	for _, sectorSize := range []int{512, 4096} {
		t.Run(fmt.Sprint("sector", sectorSize), func(t *testing.T) {
			plain := make([]byte, 3<<20+8192)
			if _, err := rand.Read(plain); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "volume.img")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			passphrase := []byte("distri")
			v, err := Encrypt(f, bytes.NewReader(plain), passphrase, FormatOptions{KDF: cheapPBKDF2, SectorSize: sectorSize, DataOffset: 1 << 20})
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			keep(t, path)
			// cryptsetup 2.6 decrypts LUKS2 in place only with a detached
			// header and data offset 0: split the container into a header
			// (data offset rewritten to 0) and a data file.
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			hdr := filepath.Join(dir, "header.img")
			header := rewriteMetadata(t, img[:v.Segment.Offset], func(m *metadata) {
				m.Segments["0"].Offset = num(0)
			})
			if err := os.WriteFile(hdr, header, 0o644); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data.img")
			if err := os.WriteFile(data, img[v.Segment.Offset:], 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := cryptsetup(t, nil, "reencrypt", "--decrypt", "--batch-mode", "--force-offline-reencrypt", "--header", hdr,
				"--key-file", writeKeyFile(t, passphrase), data); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Errorf("cryptsetup decrypted %d bytes that differ from the %d bytes encrypted", len(got), len(plain))
			}
		})
	}
}
