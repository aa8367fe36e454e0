package blkid

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/luks"
)

// probeImage probes the image file img.
func probeImage(t *testing.T, img string) Info {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := Probe(f)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestProbeExt4(t *testing.T) {
	distritest.NeedTool(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "ext4.img")
	const uuid = "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77"
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-U", uuid, "-L", "root", img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	got := probeImage(t, img)
	if diff := cmp.Diff(Info{Type: "ext4", UUID: uuid, Label: "root"}, got); diff != "" {
		t.Errorf("Probe(ext4) mismatch (-want +got):\n%s", diff)
	}
}

func TestProbeLUKS(t *testing.T) {
	img := filepath.Join(t.TempDir(), "luks.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const uuid = "ba0504ec-11b1-4015-b9fe-80939af15a81"
	if _, err := luks.Format(f, []byte("x"), luks.FormatOptions{
		UUID: uuid, Label: "cryptroot", KDF: luks.KDF{Type: "pbkdf2", Iterations: 1000}, DigestIterations: 1000,
	}); err != nil {
		t.Fatal(err)
	}
	got, err := Probe(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Info{Type: "crypto_LUKS", UUID: uuid, Label: "cryptroot"}, got); diff != "" {
		t.Errorf("Probe(luks) mismatch (-want +got):\n%s", diff)
	}
}

// TestProbeSwap reads a swap area that mkswap wrote.
func TestProbeSwap(t *testing.T) {
	distritest.NeedTool(t, "mkswap")
	img := filepath.Join(t.TempDir(), "swap.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	const uuid = "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58"
	if out, err := exec.Command("mkswap", "-U", uuid, "-L", "myswap", img).CombinedOutput(); err != nil {
		t.Fatalf("mkswap: %v\n%s", err, out)
	}
	got := probeImage(t, img)
	if diff := cmp.Diff(Info{Type: "swap", UUID: uuid, Label: "myswap"}, got); diff != "" {
		t.Errorf("Probe(swap) mismatch (-want +got):\n%s", diff)
	}
}

func TestProbeUnknown(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(1 << 20)
	got, err := Probe(f)
	if err != nil || got != (Info{}) {
		t.Errorf("Probe(zeros) = %+v, %v, want empty Info", got, err)
	}
}

// TestPartitionsGPT reads a GPT that sfdisk wrote.
func TestPartitionsGPT(t *testing.T) {
	distritest.NeedTool(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "gpt.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 16<<20)
	const (
		u1 = "a6a3f6b2-4d1c-4c8e-9a51-2b7f0e3d9c14"
		u2 = "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58"
	)
	script := fmt.Sprintf("label: gpt\nstart=2048, size=2048, uuid=%s, name=esp\nstart=4096, size=8192, uuid=%s, name=\"distri root\"\n", u1, u2)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Partitions(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{{1, u1, "esp"}, {2, u2, "distri root"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Partitions mismatch (-want +got):\n%s", diff)
	}
}

// TestPartitionsMBR reads an MBR that sfdisk wrote.
func TestPartitionsMBR(t *testing.T) {
	distritest.NeedTool(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "mbr.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 8<<20)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader("label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=4096, type=83\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Partitions(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Partition{{Number: 1, UUID: "1234abcd-01"}}, got); diff != "" {
		t.Errorf("Partitions mismatch (-want +got):\n%s", diff)
	}
}
