package kmod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"virtio:d00000002v*", "virtio:d00000002v00001AF4", true},
		{"virtio:d00000002v*", "virtio:d00000001v00001AF4", false},
		{"pci:v00001AF4d00001001sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", true},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc05i01", false},
		{"scsi:t-0x0[07e]*", "scsi:t-0x00", true},
		{"scsi:t-0x0[07e]*", "scsi:t-0x05", false},
		{"scsi:t-0x0[!07e]*", "scsi:t-0x05", true},
		{"acpi*:PNP0303:*", "acpi:PNP0303:", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"of:N*T*Cfoo/bar*", "of:NxTyCfoo/bar", true}, // '*' crosses '/'
		{"crypto-xts", "crypto-xts", true},
		{"crypto-xts", "crypto-xtsx", false},
	} {
		if got := match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/md/dm-crypt.ko":      "dm_crypt",
		"kernel/fs/fuse/fuse.ko.zst":         "fuse",
		"virtio-blk":                         "virtio_blk",
		"kernel/crypto/crc32c_generic.ko.gz": "crc32c_generic",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadIndex(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("modules.dep", `kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/crypto/xts.ko:
`)
	write("modules.alias", `# Aliases extracted from modules themselves.
alias virtio:d00000002v* virtio_blk
alias crypto-xts xts
alias xts xts
`)
	write("modules.softdep", "softdep virtio_blk pre: crc32c\n")
	write("modules.builtin", "kernel/fs/ext4/ext4.ko\n")
	x, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"virtio_ring", "virtio"}, x.Deps["virtio_blk"]); diff != "" {
		t.Errorf("Deps[virtio_blk] mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		name        string
		wantMods    []string
		wantBuiltin bool
	}{
		{"virtio-blk", []string{"virtio_blk"}, false},
		{"crypto-xts", []string{"xts"}, false},
		{"virtio:d00000002v00001AF4", []string{"virtio_blk"}, false},
		{"ext4", nil, true},
		{"nonesuch", nil, false},
	} {
		mods, builtin := x.Resolve(tt.name)
		if !cmp.Equal(mods, tt.wantMods) || builtin != tt.wantBuiltin {
			t.Errorf("Resolve(%q) = %v, %v, want %v, %v", tt.name, mods, builtin, tt.wantMods, tt.wantBuiltin)
		}
	}
	if diff := cmp.Diff([]string{"crc32c"}, x.Softdeps["virtio_blk"]); diff != "" {
		t.Errorf("Softdeps mismatch (-want +got):\n%s", diff)
	}
}
