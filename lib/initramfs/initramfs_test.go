package initramfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/initconfig"
)

func TestCPIOAgainstCpioTool(t *testing.T) {
	cpioTool := distritest.NeedTool(t, "cpio")
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.Dir("dev", 0o755)
	c.CharDev("dev/console", 0o600, 5, 1)
	c.Dir("etc", 0o755)
	c.File("etc/a", 0o644, 3, strings.NewReader("abc"))
	c.File("etc/b", 0o600, 0, strings.NewReader(""))
	c.Symlink("etc/l", "/etc/a")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(cpioTool, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "console") {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/a")); err != nil || string(b) != "abc" {
		t.Errorf("etc/a = %q, %v; want abc", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "etc/l")); err != nil || l != "/etc/a" {
		t.Errorf("etc/l -> %q, %v; want /etc/a", l, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/b")); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/b: %v, %v; want empty, 0600", fi, err)
	}
	list := exec.Command(cpioTool, "-itv", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	if !strings.Contains(string(out), "5,   1") || strings.Count(string(out), "\n") != 6 {
		t.Errorf("cpio -itv:\n%s\nwant 6 entries including the console device 5,1", out)
	}
}

// testInit is a static binary to use as /init.
func testInit(t *testing.T) string {
	return distritest.StaticBinary(t, "distri.dev/distri/distri-init")
}

func TestWriteDebianKernel(t *testing.T) {
	distritest.NeedTool(t, "depmod")
	k := distritest.DebianKernel(t)
	opts := Options{Init: testInit(t), KernelRelease: k.Release, ModulesDir: k.Modules,
		Files: map[string]string{"etc/extra": "/etc/hostname"}}
	var first bytes.Buffer
	st, err := Write(&first, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: the same inputs give the same bytes.
	out := filepath.Join(t.TempDir(), "initramfs.img")
	if _, err := WriteFile(out, opts); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second) {
		t.Errorf("two writes with the same options differ (%d and %d bytes)", first.Len(), len(second))
	}
	for _, m := range []string{"virtio_blk", "virtio_pci", "virtio_scsi", "dm_crypt", "dm_mod", "xts", "ecb", "squashfs", "fuse", "sd_mod", "scsi_mod"} {
		if !slices.Contains(st.Modules, m) {
			t.Errorf("modules %v lack %s", st.Modules, m)
		}
	}
	files := extract(t, first.Bytes(), Zstd)
	rel := "lib/modules/" + k.Release + "/"
	for _, f := range []string{"init", "sbin/modprobe", "etc/initrd-release", "etc/distri/initramfs.json", "dev/console", "etc/extra",
		rel + "modules.dep", rel + "modules.alias", rel + "modules.builtin", rel + "kernel/drivers/block/virtio_blk.ko"} {
		if _, ok := files[f]; !ok {
			t.Errorf("archive lacks %s", f)
		}
	}
	dep := string(files[rel+"modules.dep"])
	if !strings.Contains(dep, "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko") &&
		!strings.Contains(dep, "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko") {
		t.Errorf("modules.dep has no virtio_blk line with its dependencies:\n%s", dep)
	}
	if strings.Count(dep, "\n") != len(st.Modules) {
		t.Errorf("modules.dep has %d lines for %d modules", strings.Count(dep, "\n"), len(st.Modules))
	}
	var cfg initconfig.Config
	if err := json.Unmarshal(files["etc/distri/initramfs.json"], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.KernelRelease != k.Release || !slices.Contains(cfg.Load, "fuse") ||
		!slices.Contains(cfg.Crypt, "dm_crypt") || !slices.Contains(cfg.Crypt, "xts") {
		t.Errorf("config %+v: want release %s, fuse to load, and dm_crypt, xts for LUKS", cfg, k.Release)
	}

	// gzip works too.
	var gz bytes.Buffer
	opts.Compression = Gzip
	if _, err := Write(&gz, opts); err != nil {
		t.Fatal(err)
	}
	if got := extract(t, gz.Bytes(), Gzip); len(got) != len(files) {
		t.Errorf("gzip archive has %d entries, zstd %d", len(got), len(files))
	}
}

func TestWriteRejectsDynamicInit(t *testing.T) {
	_, err := Write(io.Discard, Options{Init: "/bin/true", KernelRelease: "x"})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("Write(init /bin/true) = %v, want a dynamically linked error", err)
	}
}

// extract returns the files of a compressed archive by name, with
// cpio(1) as the reader.
func extract(t *testing.T, b []byte, c Compression) map[string][]byte {
	t.Helper()
	cpioTool := distritest.NeedTool(t, "cpio")
	var r io.Reader
	switch c {
	case Zstd:
		d, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	case Gzip:
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = z
	}
	dir := t.TempDir()
	cmd := exec.Command(cpioTool, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = r
	cmd.Run() // the console node fails to be made unless root; the rest extracts
	files := map[string][]byte{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.Mode().IsRegular() {
			files[rel], _ = os.ReadFile(p)
		} else {
			files[rel] = nil
		}
		return nil
	})
	return files
}

// TestWriteFileFailureLeavesOld: a write that fails (here: an init
// that is not static) leaves the old file and no temporary file.
func TestWriteFileFailureLeavesOld(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "initramfs.img")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFile(out, Options{Init: "/bin/true", KernelRelease: "x"}); err == nil {
		t.Fatal("WriteFile with a dynamic init succeeded")
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "old" {
		t.Errorf("after a failed write: %q, %v; want the old contents", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("after a failed write the directory holds %d entries, want only the old file", len(ents))
	}
}

// TestWriteRescue adds a rescue shell: bin/bb and a symlink per command,
// bin/sh to the shell; read back with u-root's cpio reader. Bad rescue
// options are refused, naming the problem.
func TestWriteRescue(t *testing.T) {
	distritest.NeedTool(t, "depmod")
	k := distritest.DebianKernel(t)
	bb := testInit(t) // any static binary stands in for the busybox here
	opts := Options{Init: testInit(t), KernelRelease: k.Release, ModulesDir: k.Modules, Compression: None,
		Rescue: &Rescue{Busybox: bb, Commands: []string{"gosh", "ls", "dmesg"}}}
	var buf bytes.Buffer
	if _, err := Write(&buf, opts); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		switch r.Mode & cpio.S_IFMT {
		case cpio.S_IFLNK:
			b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			got[r.Name] = "-> " + string(b)
		case cpio.S_IFREG:
			got[r.Name] = fmt.Sprintf("file %d bytes, mode %o", r.FileSize, r.Mode&0o777)
		}
	}
	fi, err := os.Stat(bb)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"bin/bb":   fmt.Sprintf("file %d bytes, mode %o", fi.Size(), fi.Mode().Perm()),
		"bin/gosh": "-> bb", "bin/ls": "-> bb", "bin/dmesg": "-> bb", "bin/sh": "-> gosh",
	} {
		if got[name] != want {
			t.Errorf("%s: %q, want %q", name, got[name], want)
		}
	}

	for _, tt := range []struct {
		name   string
		rescue Rescue
		files  map[string]string
		want   string
	}{
		{"no shell", Rescue{Busybox: bb, Commands: []string{"ls"}}, nil, "no shell (gosh or elvish)"},
		{"path in a name", Rescue{Busybox: bb, Commands: []string{"gosh", "../../init"}}, nil, `bad command name "../../init"`},
		{"sh as a command", Rescue{Busybox: bb, Commands: []string{"gosh", "sh"}}, nil, `bad command name "sh"`},
		{"dynamic busybox", Rescue{Busybox: "/bin/true", Commands: []string{"gosh"}}, nil, "rescue shell: "},
		{"bin/sh also a file", Rescue{Busybox: bb, Commands: []string{"gosh"}}, map[string]string{"bin/sh": bb}, "bin/sh is also given as a file"},
		{"bin/bb also a file", Rescue{Busybox: bb, Commands: []string{"gosh"}}, map[string]string{"bin/bb": bb}, "bin/bb is also given as a file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := opts
			o.Rescue, o.Files = &tt.rescue, tt.files
			if _, err := Write(io.Discard, o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
