package kmod

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/distritest"
)

// compressModule writes the module src to dst, compressed by dst's
// suffix as kernel builds do: xz with CRC32 checks and a 1 MiB
// dictionary (the kernel's own decompressor knows no other), zstd, gzip.
func compressModule(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	switch filepath.Ext(dst) {
	case ".xz":
		cmd := exec.Command(distritest.NeedTool(t, "xz"), "--check=crc32", "--lzma2=dict=1MiB", "-c")
		cmd.Stdin, cmd.Stdout = bytes.NewReader(b), &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("xz: %v", err)
		}
	case ".zst":
		w, _ := zstd.NewWriter(&out)
		w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case ".gz":
		w := gzip.NewWriter(&out)
		w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("compress %s: unknown suffix", dst)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadCompressedModules reads real modules of Debian's kernel
// compressed as .ko.xz (refused before: "xz-compressed modules are not
// supported"), .ko.zst and .ko.gz: the bytes and the modinfo are the
// uncompressed module's, a scan finds them, a truncated file is an
// error naming it, and a file that decompresses beyond the limit is
// refused.
func TestReadCompressedModules(t *testing.T) {
	mods := debianModules(t)
	src := filepath.Join(mods, "kernel/lib/crc7.ko")
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo, err := ReadModinfo(src)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "6.1.0-test")
	for _, suffix := range []string{".xz", ".zst", ".gz"} {
		t.Run(suffix, func(t *testing.T) {
			dst := filepath.Join(tree, "kernel/lib/crc7"+suffix[1:]+".ko"+suffix)
			compressModule(t, src, dst)
			got, err := ReadModuleFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ReadModuleFile(%s): %d bytes differ from the %d of %s", dst, len(got), len(want), src)
			}
			info, err := ReadModinfo(dst)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantInfo, info); diff != "" {
				t.Errorf("ReadModinfo(%s) (-uncompressed +compressed):\n%s", dst, diff)
			}
			if _, err := readModuleFile(dst, int64(len(want)-1)); err == nil || !strings.Contains(err.Error(), "decompresses to more than") {
				t.Errorf("readModuleFile with a limit of one byte less than the module: %v, want refused", err)
			}
			if _, err := readModuleFile(dst, int64(len(want))); err != nil {
				t.Errorf("readModuleFile with a limit of the module's size: %v", err)
			}
			c, _ := os.ReadFile(dst)
			cut := filepath.Join(t.TempDir(), filepath.Base(dst))
			if err := os.WriteFile(cut, c[:len(c)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadModuleFile(cut); err == nil || !strings.Contains(err.Error(), cut) {
				t.Errorf("ReadModuleFile(truncated %s): %v, want an error naming it", cut, err)
			}
		})
	}
	tr, err := Scan(tree)
	if err != nil {
		t.Fatal(err)
	}
	// Three files of one module name: the scan keeps one of them.
	if m, ok := tr.Modules["crc7"]; !ok || !strings.HasPrefix(m.Path, "kernel/lib/crc7") {
		t.Errorf("scan of %s: crc7 %+v, want a compressed file", tree, tr.Modules["crc7"])
	}
}

// TestLoadCompressedVM boots Debian's kernel (built without
// CONFIG_MODULE_DECOMPRESS, so finit_module refuses
// MODULE_INIT_COMPRESSED_FILE) with an initramfs whose /init loads
// crc7.ko.xz, crc-itu-t.ko.zst and md4.ko.gz with a Loader: each must
// reach /proc/modules. Before, the Loader gave every file to
// finit_module as it was, which the kernel refuses for compressed
// ones.
func TestLoadCompressedVM(t *testing.T) {
	distritest.NeedQEMU(t)
	cpio := distritest.NeedTool(t, "cpio")
	k := distritest.DebianKernel(t)
	mods := filepath.Join(k.Modules, k.Release)
	root := t.TempDir()
	tree := filepath.Join(root, "lib/modules", k.Release)
	compressModule(t, filepath.Join(mods, "kernel/lib/crc7.ko"), filepath.Join(tree, "kernel/lib/crc7.ko.xz"))
	compressModule(t, filepath.Join(mods, "kernel/lib/crc-itu-t.ko"), filepath.Join(tree, "kernel/lib/crc-itu-t.ko.zst"))
	compressModule(t, filepath.Join(mods, "kernel/crypto/md4.ko"), filepath.Join(tree, "kernel/crypto/md4.ko.gz"))
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo"} {
		b, err := os.ReadFile(filepath.Join(mods, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "modules.txt"), []byte("crc7 crc_itu_t md4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	init, err := os.ReadFile(distritest.StaticBinary(t, "distri.dev/distri/lib/kmod/testdata/loadmod"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "init"), init, 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.cpio")
	cmd := exec.Command("sh", "-c", `find . | LC_ALL=C sort | "$0" -o -H newc -R 0:0 --quiet > "$1"`, cpio, initrd)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	c := distritest.StartVM(t, distritest.VMOptions{Kernel: k.Vmlinuz, Initrd: initrd, Append: "quiet"})
	for _, m := range []string{"crc7", "crc_itu_t", "md4"} {
		c.Expect(`^(loaded `+m+`|LOADMOD FAIL.*)$`, time.Minute)
	}
	var listed []string
	for {
		m := c.Expect(`^(proc/modules: (\S+)|LOADMOD OK|LOADMOD FAIL.*)$`, 10*time.Second)
		if m[2] == "" {
			if m[1] != "LOADMOD OK" {
				t.Errorf("guest: %s", m[1])
			}
			break
		}
		listed = append(listed, m[2])
	}
	slices.Sort(listed)
	if want := []string{"crc7", "crc_itu_t", "md4"}; !slices.Equal(listed, want) {
		t.Errorf("/proc/modules lists %q, want %q", listed, want)
	}
	c.Wait(30 * time.Second)
}
