package kmod

import (
	"bufio"
	"bytes"

	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sync/errgroup"
)

// Module is what a module file says about itself in its .modinfo
// section.
type Module struct {
	Name string // e.g. "dm_crypt"
	// Path is relative to the release directory, e.g.
	// "kernel/drivers/md/dm-crypt.ko" (or .ko.zst, .ko.gz).
	Path    string
	Depends []string // module names, e.g. ["dm_mod"]
	Aliases []string // e.g. ["crypto-xts", "pci:v00008086d*"]
	// Softdeps are the pre: and post: modules of softdep= (names or
	// aliases), which modprobe loads alongside: e.g. ext4's "crc32c".
	Softdeps []string
}

// Tree is every module of one kernel release directory.
type Tree struct {
	Dir     string             // e.g. /lib/modules/6.1.0-56-cloud-amd64
	Modules map[string]*Module // by Name
	Builtin map[string]bool    // names from modules.builtin
	// BuiltinAliases are the aliases of built-in modules (from
	// modules.builtin.modinfo), e.g. "fs-ext4" → ["ext4"].
	BuiltinAliases map[string][]string
	aliases        map[string][]string
}

// Scan reads every module under dir (a /lib/modules/<release>
// directory), in parallel, modules.builtin and, if it exists,
// modules.builtin.modinfo.
func Scan(dir string) (*Tree, error) {
	t := &Tree{Dir: dir, Modules: map[string]*Module{}, Builtin: map[string]bool{},
		BuiltinAliases: map[string][]string{}, aliases: map[string][]string{}}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "build" || d.Name() == "source") && filepath.Dir(p) == dir {
			return filepath.SkipDir
		}
		if !isModuleFile(d.Name()) {
			return nil
		}
		// In a booted distri system /lib/modules/<release> is an
		// exchange directory (/ro/lib/…): each module is a symlink into
		// the kernel package.
		if d.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no kernel modules", dir)
	}
	var mu sync.Mutex
	var g errgroup.Group
	// Reading a cold tree waits for the disk more than for the CPU: 16
	// reads in flight scan Debian's 1121 modules in 1.8 s instead of
	// 2.3 s in a 1-CPU TCG guest.
	g.SetLimit(max(runtime.GOMAXPROCS(0)*2, 16))
	for _, rel := range paths {
		g.Go(func() error {
			m, err := ReadModinfo(filepath.Join(dir, rel))
			if err != nil {
				return err
			}
			m.Path = rel
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := t.Modules[m.Name]; ok && prev.Path < rel {
				return nil // the same module twice (e.g. updates/): keep one, deterministically
			}
			t.Modules[m.Name] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, m := range t.Modules {
		for _, a := range m.Aliases {
			t.aliases[a] = append(t.aliases[a], m.Name)
		}
	}
	for _, names := range t.aliases {
		slices.Sort(names)
	}
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if l := strings.TrimSpace(s.Text()); l != "" {
				t.Builtin[Normalize(l)] = true
			}
		}
		if err := s.Err(); err != nil {
			return nil, err
		}
	}
	if err := t.readBuiltinModinfo(filepath.Join(dir, "modules.builtin.modinfo")); err != nil {
		return nil, err
	}
	return t, nil
}

// readBuiltinModinfo reads the aliases of built-in modules from the
// kernel's modules.builtin.modinfo ("module.alias=value" strings, each
// ending in NUL). A missing file is no error.
func (t *Tree) readBuiltinModinfo(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		mod, key, dot := strings.Cut(k, ".")
		if !ok || !dot || key != "alias" {
			continue
		}
		mod = Normalize(mod)
		if !slices.Contains(t.BuiltinAliases[v], mod) {
			t.BuiltinAliases[v] = append(t.BuiltinAliases[v], mod)
		}
	}
	return nil
}

func isModuleFile(name string) bool {
	for _, s := range []string{".ko", ".ko.zst", ".ko.xz", ".ko.gz"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// Resolve returns the modules that provide name: the module of that
// name, else every module with that exact alias (e.g. "crypto-xts" or
// "aes"). It returns builtin=true for a name or alias (e.g. "fs-ext4")
// built into the kernel, and neither for a name this kernel does not
// have.
func (t *Tree) Resolve(name string) (mods []string, builtin bool) {
	n := Normalize(name)
	if _, ok := t.Modules[n]; ok {
		return []string{n}, false
	}
	if t.Builtin[n] {
		return nil, true
	}
	if mods := t.aliases[name]; len(mods) > 0 {
		return mods, false
	}
	return nil, len(t.BuiltinAliases[name]) > 0
}

// Closure returns names together with every module they need (depends=
// and softdeps, recursively), sorted.
func (t *Tree) Closure(names []string) []string {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		m, ok := t.Modules[n]
		if !ok || seen[n] {
			return
		}
		seen[n] = true
		for _, d := range m.Depends {
			visit(d)
		}
		for _, s := range m.Softdeps {
			mods, _ := t.Resolve(s)
			for _, d := range mods {
				visit(d)
			}
		}
	}
	for _, n := range names {
		visit(n)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ReadModinfo reads the .modinfo section of the module file at path
// (.ko, .ko.zst, .ko.xz or .ko.gz).
func ReadModinfo(path string) (*Module, error) {
	var r io.ReaderAt
	if strings.HasSuffix(path, ".ko") {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else {
		b, err := ReadModuleFile(path)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := &Module{Name: Normalize(path)}
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.Name = v
		case "depends":
			for d := range strings.SplitSeq(v, ",") {
				if d != "" {
					m.Depends = append(m.Depends, Normalize(d))
				}
			}
		case "alias":
			m.Aliases = append(m.Aliases, v)
		case "softdep":
			for _, f := range strings.Fields(v) {
				if f != "pre:" && f != "post:" {
					m.Softdeps = append(m.Softdeps, f)
				}
			}
		}
	}
	return m, nil
}

// MaxModuleSize bounds a decompressed module: the largest modules of a
// distribution kernel (GPU drivers) are tens of MiB, and a file that
// decompresses to more is refused rather than allowed to exhaust the
// memory of an initramfs.
const MaxModuleSize = 256 << 20

// ReadModuleFile returns the contents of a module file, decompressed if
// its name ends in .zst, .xz or .gz; at most MaxModuleSize bytes.
func ReadModuleFile(path string) ([]byte, error) {
	return readModuleFile(path, MaxModuleSize)
}

func readModuleFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".zst"):
		d, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer d.Close()
		r = d
	case strings.HasSuffix(path, ".gz"):
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer z.Close()
		r = z
	case strings.HasSuffix(path, ".xz"):
		x, err := xz.NewReader(bufio.NewReader(f))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = x
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil && !errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err != nil || int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: decompresses to more than %d bytes", path, limit)
	}
	return b, nil
}
