package kmod

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// modinfoELF returns a minimal ELF64 relocatable file, as a module is,
// with a .modinfo section of the given strings (each NUL-terminated).
func modinfoELF(kv ...string) []byte {
	var modinfo []byte
	for _, s := range kv {
		modinfo = append(append(modinfo, s...), 0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	le := binary.LittleEndian
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 1)  // ET_REL
	le.PutUint16(b[18:], 62) // x86-64
	le.PutUint32(b[20:], 1)
	le.PutUint16(b[52:], 64) // ehsize
	le.PutUint16(b[58:], 64) // shentsize
	le.PutUint16(b[60:], 3)  // shnum
	le.PutUint16(b[62:], 2)  // shstrndx
	modOff := len(b)
	b = append(b, modinfo...)
	strOff := len(b)
	b = append(b, shstrtab...)
	le.PutUint64(b[40:], uint64(len(b))) // shoff
	sh := func(name, typ uint32, off, size int) {
		h := make([]byte, 64)
		le.PutUint32(h[0:], name)
		le.PutUint32(h[4:], typ)
		le.PutUint64(h[24:], uint64(off))
		le.PutUint64(h[32:], uint64(size))
		le.PutUint64(h[48:], 1)
		b = append(b, h...)
	}
	sh(0, 0, 0, 0)
	sh(1, 1, modOff, len(modinfo))   // .modinfo, PROGBITS
	sh(10, 3, strOff, len(shstrtab)) // .shstrtab, STRTAB
	return b
}

// FuzzReadModinfo reads arbitrary module files (a kernel package's
// modules are read when an initramfs is made and when modprobe scans a
// tree) and checks what it finds: names are normalized, no entry is
// empty.
func FuzzReadModinfo(f *testing.F) {
	f.Add(modinfoELF("license=GPL", "depends=dm-mod,,libcrc32c", "alias=crypto-xts", "alias=pci:v00008086d*sv*",
		"softdep=pre: crc32c post: x", "name=dm_crypt", "vermagic=6.1.0 SMP mod_unload"))
	f.Add(modinfoELF("depends=", "softdep=", "noequals", "=x"))
	path := filepath.Join(f.TempDir(), "dm-crypt.ko")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadModinfo(path)
		if err != nil {
			return
		}
		for _, d := range m.Depends {
			if d == "" || d != Normalize(d) {
				t.Errorf("dependency %q", d)
			}
		}
		for _, s := range m.Softdeps {
			if s == "" || s == "pre:" || s == "post:" || strings.ContainsAny(s, " \t\n") {
				t.Errorf("softdep %q", s)
			}
		}
	})
}

// FuzzReadIndex reads arbitrary depmod files (from a kernel package, or
// the cache that OpenIndex writes in /var/cache) and checks the cache
// round trip: what writeIndex writes of an index reads back as that
// index. Needs must terminate and name each module once, whatever
// cycles the files have.
func FuzzReadIndex(f *testing.F) {
	f.Add("kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko kernel/lib/libcrc32c.ko\nkernel/drivers/md/dm-mod.ko:\nkernel/lib/libcrc32c.ko: kernel/drivers/md/dm-crypt.ko\n",
		"# Aliases\nalias dm-crypt dm_crypt\nalias pci:v00008086d*sv*sd*bc01sc[0-9]* e1000\nalias bad\n",
		"softdep dm_crypt pre: crc32c post: aes\nsoftdep x\n",
		"kernel/fs/ext4/ext4.ko\nkernel/lib/crc32c.ko\n",
		"alias fs-ext4 ext4\nalias crypto-crc32c crc32c\n")
	f.Add("a.ko: b.ko\nb.ko: a.ko c\n", "alias x a\nalias x b\n", "softdep a pre: x\n", "c\n", "")
	dir := f.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.Mkdir(in, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, dep, alias, softdep, builtin, builtinAlias string) {
		for name, s := range map[string]string{"modules.dep": dep, "modules.alias": alias, "modules.softdep": softdep,
			"modules.builtin": builtin, "modules.builtin.alias": builtinAlias} {
			if err := os.WriteFile(filepath.Join(in, name), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		x, err := readIndex(in, "/lib/modules/6.1.0")
		if err != nil {
			return
		}
		os.RemoveAll(out)
		if err := writeIndex(x, out); err != nil {
			t.Fatal(err)
		}
		y, err := readIndex(out, "/lib/modules/6.1.0")
		if err != nil {
			t.Fatalf("the index written back does not read: %v", err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Errorf("index %+v\nwritten back reads as %+v", x, y)
		}
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range x.Path {
				if !yield(n) {
					return
				}
			}
		})
		for _, n := range append(names[:min(len(names), 8)], "dm-crypt", "pci:v00008086d00001000sv0sd0bc01sc00i00") {
			mods, _, _ := x.Needs(n)
			seen := map[string]bool{}
			for _, m := range mods {
				if seen[m] {
					t.Errorf("Needs(%q) = %q: %s twice", n, mods, m)
				}
				seen[m] = true
			}
		}
	})
}

// TestFuzzSeeds makes sure the seeds of FuzzReadModinfo are what
// modules look like, so that the fuzzer starts from a parsed file.
func TestFuzzSeeds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dm-crypt.ko")
	if err := os.WriteFile(path, modinfoELF("depends=dm-mod,libcrc32c", "alias=crypto-xts", "softdep=pre: crc32c"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadModinfo(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Module{Name: "dm_crypt", Depends: []string{"dm_mod", "libcrc32c"}, Aliases: []string{"crypto-xts"}, Softdeps: []string{"crc32c"}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("ReadModinfo = %+v, want %+v", m, want)
	}
}

// refMatch is match written as the definition reads (memoized recursion,
// one pattern token at a time), for FuzzMatch to compare against.
func refMatch(p, s string) bool {
	memo := map[[2]int]bool{}
	var m func(i, j int) bool
	m = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(p):
			r = j == len(s)
		case p[i] == '*':
			r = m(i+1, j) || j < len(s) && m(i, j+1)
		case j == len(s):
			r = false
		case p[i] == '?':
			r = m(i+1, j+1)
		case p[i] == '[':
			if end, ok := matchClass(p[i:], s[j]); end > 0 {
				r = ok && m(i+end, j+1)
			} else {
				r = s[j] == '[' && m(i+1, j+1)
			}
		case p[i] == '\\':
			r = i+1 < len(p) && p[i+1] == s[j] && m(i+2, j+1)
		default:
			r = p[i] == s[j] && m(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return m(0, 0)
}

// FuzzMatch compares match, which decides which module a device's
// modalias loads (patterns from modules.alias, modaliases from the
// kernel or a device), with refMatch.
func FuzzMatch(f *testing.F) {
	f.Add("pci:v00008086d*sv*sd*bc01sc[0-9]*", "pci:v00008086d00001000sv0sd0bc01sc06i00")
	f.Add("virtio:d00000002v*", "virtio:d00000002v00001AF4")
	f.Add("a[!b-d]?\\*[]x]*[", "az!*]q[")
	f.Add("*a*b*c", "aabbcc")
	f.Fuzz(func(t *testing.T, p, s string) {
		if got, want := match(p, s), refMatch(p, s); got != want {
			t.Errorf("match(%q, %q) = %v, want %v", p, s, got, want)
		}
	})
}
