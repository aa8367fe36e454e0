package luks

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"github.com/google/go-cmp/cmp"
)

func pseudoRandom(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestEncryptRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name       string
		size       int
		sectorSize int
	}{
		{name: "empty", size: 0, sectorSize: 512},
		{name: "one-byte", size: 1, sectorSize: 512},
		{name: "chunks-and-a-bit-512", size: 3*chunkSize + 777, sectorSize: 512},
		{name: "chunks-and-a-bit-4096", size: 3*chunkSize + 777, sectorSize: 4096},
		{name: "exact-chunks", size: 2 * chunkSize, sectorSize: 4096},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plain := pseudoRandom(uint64(tt.size), tt.size)
			dev := &memDevice{}
			passphrase := []byte("distri")
			v, err := Encrypt(dev, bytes.NewReader(plain), passphrase, FormatOptions{KDF: cheapPBKDF2, SectorSize: tt.sectorSize, DataOffset: 1 << 20})
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			padded := (tt.size + tt.sectorSize - 1) / tt.sectorSize * tt.sectorSize
			if got, want := len(dev.b), 1<<20+padded; got != want {
				t.Errorf("container is %d bytes, want %d", got, want)
			}
			if tt.size > 64 && bytes.Contains(dev.b, plain[:64]) {
				t.Errorf("container holds plaintext")
			}
			want := append(bytes.Clone(plain), make([]byte, padded-tt.size)...)

			u, err := Unlock(dev, passphrase)
			if err != nil {
				t.Fatalf("Unlock: %v", err)
			}
			if !bytes.Equal(u.Key, v.Key) {
				t.Fatalf("Unlock key differs from Encrypt's")
			}
			var got bytes.Buffer
			n, err := u.DecryptTo(&got, dev, int64(len(dev.b)))
			if err != nil {
				t.Fatalf("DecryptTo: %v", err)
			}
			if n != int64(padded) || !bytes.Equal(got.Bytes(), want) {
				t.Errorf("DecryptTo gave %d bytes that differ from the %d encrypted", n, padded)
			}

			r, err := u.NewReader(dev, int64(len(dev.b)))
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			if got, want := r.Size(), int64(padded); got != want {
				t.Errorf("NewReader size = %d, want %d", got, want)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for range 50 {
				if padded == 0 {
					break
				}
				off := rng.IntN(padded)
				n := rng.IntN(3*tt.sectorSize) + 1
				buf := make([]byte, n)
				got, err := r.ReadAt(buf, int64(off))
				wantN := min(n, padded-off)
				if got != wantN || (got < n && err != io.EOF) || (got == n && err != nil) {
					t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", n, off, got, err, wantN)
				}
				if !bytes.Equal(buf[:got], want[off:off+got]) {
					t.Fatalf("ReadAt(%d bytes at %d) returned wrong data", n, off)
				}
			}
			all, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(all, want) {
				t.Errorf("ReadAll = %d bytes, %v; want the %d bytes encrypted", len(all), err, padded)
			}
		})
	}
}

// TestEncryptExt4 encrypts a real filesystem image into a LUKS2 file and
// reads it back.
func TestEncryptExt4(t *testing.T) {
	mkfs := distritest.NeedTool(t, "mkfs.ext4")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("distri\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "big"), pseudoRandom(5, 5<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	fsImg := filepath.Join(dir, "fs.img")
	cmd := exec.Command(mkfs, "-q", "-F", "-d", root, "-U", "8e1d2c3b-0000-4000-8000-0000000e0f54", fsImg, "16M")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}

	src, err := os.Open(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	luksImg := filepath.Join(dir, "luks.img")
	dst, err := os.Create(luksImg)
	if err != nil {
		t.Fatal(err)
	}
	passphrase := []byte("distri")
	_, err = Encrypt(dst, src, passphrase, FormatOptions{KDF: cheapArgon2, SectorSize: 4096})
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	keep(t, luksImg)

	f, err := os.Open(luksImg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Size(), int64(16<<20+16<<20); got != want {
		t.Errorf("container is %d bytes, want %d (16 MiB header + 16 MiB image)", got, want)
	}
	v, err := Unlock(f, passphrase)
	if err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	out := filepath.Join(dir, "decrypted.img")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DecryptTo(w, f, fi.Size()); err != nil {
		t.Fatalf("DecryptTo: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("decrypted image (%d bytes) differs from the ext4 image (%d bytes)", len(got), len(want))
	}
}

func TestDMCryptParams(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, 64)
	hexKey := strings.Repeat("ab", 64)
	for _, tt := range []struct {
		name    string
		segment Segment
		devSize int64
		want    DMCrypt
		params  string
	}{
		{
			name:    "dynamic-512",
			segment: Segment{Type: "crypt", Offset: 16 << 20, Size: -1, Encryption: "aes-xts-plain64", SectorSize: 512},
			devSize: 1<<30 + 100,
			want:    DMCrypt{Cipher: "aes-xts-plain64", Key: key, Offset: 32768, Length: (1<<30 - 16<<20) / 512, SectorSize: 512},
			params:  "aes-xts-plain64 " + hexKey + " 0 /dev/vda2 32768",
		},
		{
			name:    "dynamic-4096-rounds-down",
			segment: Segment{Type: "crypt", Offset: 16 << 20, Size: -1, Encryption: "aes-xts-plain64", SectorSize: 4096},
			devSize: 1<<30 + 2048,
			want:    DMCrypt{Cipher: "aes-xts-plain64", Key: key, Offset: 32768, Length: (1<<30 - 16<<20) / 512, SectorSize: 4096},
			params:  "aes-xts-plain64 " + hexKey + " 0 /dev/vda2 32768 1 sector_size:4096",
		},
		{
			name:    "fixed-size-tweak",
			segment: Segment{Type: "crypt", Offset: 1 << 20, Size: 8 << 20, Encryption: "aes-xts-plain64", SectorSize: 512, IVTweak: 2048},
			devSize: 1 << 30,
			want:    DMCrypt{Cipher: "aes-xts-plain64", Key: key, IVOffset: 2048, Offset: 2048, Length: 16384, SectorSize: 512},
			params:  "aes-xts-plain64 " + hexKey + " 2048 /dev/vda2 2048",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &Volume{Key: key, Segment: tt.segment}
			got, err := v.DMCrypt(tt.devSize)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DMCrypt(%d) mismatch (-want +got):\n%s", tt.devSize, diff)
			}
			if got, want := got.Params("/dev/vda2"), tt.params; got != want {
				t.Errorf("Params = %q, want %q", got, want)
			}
		})
	}

	v := &Volume{Key: key, Segment: Segment{Type: "crypt", Offset: 16 << 20, Size: 8 << 20, Encryption: "aes-xts-plain64", SectorSize: 512}}
	for _, size := range []int64{1 << 20, 16<<20 + 4096} {
		if _, err := v.DMCrypt(size); err == nil {
			t.Errorf("DMCrypt(%d) succeeded on a device too small for the segment", size)
		}
	}
}

type failingWriter struct{ after int64 }

func (w *failingWriter) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > w.after {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

type failingReader struct {
	r     io.Reader
	after int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		return 0, errors.New("read failed")
	}
	n, err := r.r.Read(p[:min(len(p), r.after)])
	r.after -= n
	return n, err
}

// TestEncryptErrors checks that failures mid-stream surface as errors.
func TestEncryptErrors(t *testing.T) {
	dev := &memDevice{}
	v, err := Format(dev, []byte("x"), FormatOptions{KDF: cheapPBKDF2, DataOffset: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	src := pseudoRandom(1, 10*chunkSize)
	for _, tt := range []struct {
		name string
		dst  io.WriterAt
		src  io.Reader
		vol  *Volume
		want string
	}{
		{name: "write", dst: &failingWriter{after: 1<<20 + 3*chunkSize}, src: bytes.NewReader(src), vol: v, want: "disk full"},
		{name: "read", dst: &memDevice{}, src: &failingReader{r: bytes.NewReader(src), after: 5*chunkSize + 1}, vol: v, want: "read failed"},
		{
			name: "fixed-segment-overflow",
			dst:  &memDevice{},
			src:  bytes.NewReader(src),
			vol:  &Volume{Key: v.Key, Segment: Segment{Offset: 1 << 20, Size: 4 * chunkSize, Encryption: "aes-xts-plain64", SectorSize: 512}},
			want: "larger than the data segment",
		},
		{
			name: "bad-key",
			dst:  &memDevice{},
			src:  bytes.NewReader(src),
			vol:  &Volume{Key: make([]byte, 48), Segment: v.Segment},
			want: "unsupported",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.vol.EncryptFrom(tt.dst, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("EncryptFrom = %v, want an error containing %q", err, tt.want)
			}
		})
	}

	var sink bytes.Buffer
	if _, err := v.DecryptTo(&sink, dev, 1<<19); err == nil {
		t.Errorf("DecryptTo of a device shorter than the data offset succeeded")
	}
	if _, err := v.DecryptTo(&sink, dev, 2<<20); err == nil {
		t.Errorf("DecryptTo past the end of the device succeeded")
	}
}

func BenchmarkEncrypt(b *testing.B) {
	dev := &memDevice{}
	v, err := Format(dev, []byte("x"), FormatOptions{KDF: cheapPBKDF2, DataOffset: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	src := make([]byte, 64<<20)
	dst := &failingWriter{after: 1 << 62}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := v.EncryptFrom(dst, bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
}
