// Package initramfs writes distri's initramfs: a deterministic newc cpio
// archive, compressed with zstd or gzip, holding distri-init as /init
// and the kernel modules needed to find and open a root file system
// (storage drivers, ext4, dm-crypt with its ciphers, squashfs, fuse)
// with their dependencies and the index files depmod makes for them.
//
// The layout of the archive is the contract in lib/initconfig; what
// distri-init does with it is lib/earlyinit.
//
// # Decisions
//
//   - Modules are found by reading each module's .modinfo section, not
//     modules.dep: a kernel package's files have no modules.dep until
//     its postinst runs depmod, and this package must work on those.
//     depmod (from kmod) then indexes exactly the selected subset, so
//     modules.dep and modules.alias in the archive match its contents.
//   - distri-init must be static: nothing else (no libc, no shell, no
//     cryptsetup) goes into the archive unless asked for with Files.
//   - Hardware drivers (Drivers) are only shipped; distri-init loads
//     them when a device asks (coldplug by modalias). File systems are
//     loaded when the root needs one, dm-crypt and its ciphers when a
//     LUKS volume is opened, and Load (fuse) once the root is found:
//     under TCG every module costs tens of milliseconds, so nothing
//     waits for modules the boot does not need.
package initramfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/kmod"
)

// DefaultDrivers are the storage (and console keyboard) drivers shipped
// for coldplug, by module name. Names the kernel does not have, or has
// built in, are skipped.
var DefaultDrivers = []string{
	// virtio (QEMU, most clouds)
	"virtio_pci", "virtio_mmio", "virtio_blk", "virtio_scsi",
	// NVMe, SATA/AHCI, legacy IDE in SATA mode, SCSI disks
	"nvme", "ahci", "ata_piix", "sd_mod",
	// USB storage and the host controllers it sits behind
	"usb_storage", "uas", "xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd",
	// SD/MMC
	"mmc_block", "sdhci_pci",
	// Hyper-V, Xen, VMware
	"hv_storvsc", "xen_blkfront", "vmw_pvscsi",
	// keyboards, to type a passphrase
	"usbhid", "hid_generic", "atkbd",
}

// DefaultFileSystems are shipped for the root file system; distri-init
// loads the one the root needs before mounting it.
var DefaultFileSystems = []string{"ext4", "crc32c", "squashfs"}

// DefaultLoad are the modules distri-init loads on every boot: fuse,
// which the booted system needs for /ro before it has modules of its
// own. (The modules of dm-crypt, initconfig.CryptModules, are always
// shipped and loaded when a LUKS volume is opened.)
var DefaultLoad = []string{"fuse"}

// Compression of the archive.
type Compression string

// Compressions the kernel unpacks and Write writes.
const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	None Compression = "none"
)

// Options configure Write.
type Options struct {
	// Init is the distri-init binary to install as /init; it must be
	// statically linked. E.g. /usr/lib/distri/distri-init.
	Init string
	// KernelRelease is the release the modules are for, e.g.
	// "6.1.0-56-cloud-amd64".
	KernelRelease string
	// ModulesDir is a /lib/modules tree (holding KernelRelease/) or the
	// release directory itself. Empty means /lib/modules.
	ModulesDir string
	// Tree, if not nil, is a scan of the release directory (kmod.Scan),
	// for a caller that scanned it already; nil means Write scans it.
	Tree *kmod.Tree
	// Drivers are shipped for coldplug; nil means DefaultDrivers.
	Drivers []string
	// FileSystems are shipped for mounting the root; nil means
	// DefaultFileSystems.
	FileSystems []string
	// Load are shipped and loaded at start; nil means DefaultLoad.
	Load []string
	// Files adds files: archive path (e.g. "bin/sh" or "etc/key") →
	// host path. Their modes are kept; symlinks are followed.
	Files map[string]string
	// Rescue, if not nil, adds a rescue shell: a busybox-style binary
	// of u-root's commands (see Rescue).
	Rescue *Rescue
	// Compression of the archive; empty means Zstd.
	Compression Compression
	// Depmod is the depmod program; empty means "depmod" from $PATH or
	// /sbin, /usr/sbin.
	Depmod string
	// Log, if not nil, gets what was skipped and why.
	Log *log.Logger
}

// Rescue is a rescue shell for the initramfs: one static binary that
// holds u-root's shell and core commands, built with gobusybox's makebb
// (which picks the command by the name it is run as). It goes to bin/bb
// with a symlink bin/<command> -> bb for each of Commands, and bin/sh
// -> the shell (gosh or elvish, which must be among Commands), which is
// what distri-init starts on the console when the root cannot be found
// or unlocked.
type Rescue struct {
	Busybox  string   // host path of the binary
	Commands []string // the commands built into it, e.g. RescueCommands
}

// RescueCommands are the u-root commands (of
// github.com/u-root/u-root/cmds/core) a rescue shell is built with: a
// shell, and what it takes to look around, read the kernel's log and
// mount a disk by hand.
var RescueCommands = []string{"gosh", "ls", "cat", "dmesg", "tail", "mount", "umount", "mkdir", "cp", "rm", "ps"}

// members returns the archive members of r: bin/bb and the symlinks.
func (r *Rescue) members() (links map[string]string, err error) {
	if err := checkStatic(r.Busybox); err != nil {
		return nil, fmt.Errorf("rescue shell: %w", err)
	}
	links = map[string]string{}
	shell := ""
	for _, c := range r.Commands {
		if c == "" || strings.ContainsAny(c, "/\x00") || c == "." || c == ".." || c == "bb" || c == "sh" {
			return nil, fmt.Errorf("rescue shell: bad command name %q", c)
		}
		links["bin/"+c] = "bb"
		if shell == "" && (c == "gosh" || c == "elvish") {
			shell = c
		}
	}
	if shell == "" {
		return nil, fmt.Errorf("rescue shell %s: no shell (gosh or elvish) among its commands %v", r.Busybox, r.Commands)
	}
	links["bin/sh"] = shell
	return links, nil
}

// Stats says what Write put into the archive.
type Stats struct {
	Modules      []string // module names, sorted
	Missing      []string // requested names this kernel has neither as module nor built in
	Uncompressed int64    // size of the cpio archive
}

// WriteFile writes the initramfs to path atomically (renameio): to a
// temporary file in the same directory, synced and renamed over path,
// mode 0644. On error path is left as it was.
func WriteFile(path string, opts Options) (*Stats, error) {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return nil, err
	}
	defer f.Cleanup()
	st, err := Write(f, opts)
	if err != nil {
		return nil, err
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return nil, err
	}
	return st, nil
}

// Write writes the compressed initramfs to w.
func Write(w io.Writer, opts Options) (*Stats, error) {
	if opts.KernelRelease == "" {
		return nil, errors.New("no kernel release given")
	}
	if err := checkStatic(opts.Init); err != nil {
		return nil, err
	}
	relDir, err := releaseDir(opts.ModulesDir, opts.KernelRelease)
	if err != nil {
		return nil, err
	}
	tree := opts.Tree
	if tree == nil {
		if tree, err = kmod.Scan(relDir); err != nil {
			return nil, err
		}
	}
	st := &Stats{}
	resolve := func(names []string) []string {
		var mods []string
		for _, n := range names {
			m, builtin := tree.Resolve(n)
			switch {
			case builtin:
			case len(m) == 0:
				st.Missing = append(st.Missing, n)
			default:
				mods = append(mods, m...)
			}
		}
		return mods
	}
	drivers, fss, load := opts.Drivers, opts.FileSystems, opts.Load
	if drivers == nil {
		drivers = DefaultDrivers
	}
	if fss == nil {
		fss = DefaultFileSystems
	}
	if load == nil {
		load = DefaultLoad
	}
	loadMods := resolve(load)
	cryptMods := resolve(initconfig.CryptModules)
	st.Modules = tree.Closure(slices.Concat(resolve(drivers), resolve(fss), loadMods, cryptMods))
	if len(st.Missing) > 0 && opts.Log != nil {
		opts.Log.Printf("not in kernel %s (neither module nor built in), skipped: %s", opts.KernelRelease, strings.Join(st.Missing, " "))
	}
	slices.Sort(loadMods)
	loadMods = slices.Compact(loadMods)
	slices.Sort(cryptMods)
	cryptMods = slices.Compact(cryptMods)

	stage, err := os.MkdirTemp("", "distri-initramfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	if err := stageModules(stage, tree, st.Modules, opts); err != nil {
		return nil, err
	}

	var zw io.WriteCloser
	switch opts.Compression {
	case Zstd, "":
		zw, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	case Gzip:
		zw, err = gzip.NewWriterLevel(w, gzip.BestCompression)
	case None:
		zw = nopCloser{w}
	default:
		return nil, fmt.Errorf("unknown compression %q (want zstd, gzip or none)", opts.Compression)
	}
	if err != nil {
		return nil, err
	}
	cw := &countWriter{w: zw}
	c := newCPIOWriter(cw)
	cfg := initconfig.Config{KernelRelease: opts.KernelRelease, Load: loadMods, Crypt: cryptMods}
	if err := writeArchive(c, stage, cfg, opts); err != nil {
		return nil, err
	}
	if err := c.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	st.Uncompressed = cw.n
	return st, nil
}

// releaseDir finds the directory of release in dir.
func releaseDir(dir, release string) (string, error) {
	if dir == "" {
		dir = "/lib/modules"
	}
	for _, d := range []string{filepath.Join(dir, release), filepath.Join(dir, "lib/modules", release), dir} {
		if fi, err := os.Stat(filepath.Join(d, "kernel")); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("no modules of kernel %s in %s (want %s/%s/kernel/)", release, dir, dir, release)
}

// checkStatic makes sure the init has no program interpreter: in the
// initramfs there is no libc to load it with.
func checkStatic(init string) error {
	if init == "" {
		return errors.New("no init binary given")
	}
	f, err := elf.Open(init)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("init %s is dynamically linked; build it with CGO_ENABLED=0", init)
		}
	}
	return nil
}

// stageModules copies the modules (decompressed) and the files depmod
// reads into stage/lib/modules/<release>, then runs depmod there.
func stageModules(stage string, tree *kmod.Tree, mods []string, opts Options) error {
	dst := filepath.Join(stage, initconfig.ModulesDir, opts.KernelRelease)
	for _, name := range mods {
		m := tree.Modules[name]
		rel := m.Path
		for _, ext := range []string{".zst", ".xz", ".gz"} {
			rel = strings.TrimSuffix(rel, ext)
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		src := filepath.Join(tree.Dir, m.Path)
		if rel == m.Path {
			if err := os.Link(src, out); err == nil {
				continue
			}
			if err := copyFile(out, src); err != nil {
				return err
			}
			continue
		}
		b, err := kmod.ReadModuleFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if err := copyFile(filepath.Join(dst, f), filepath.Join(tree.Dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	depmod := opts.Depmod
	if depmod == "" {
		var err error
		if depmod, err = findDepmod(); err != nil {
			return err
		}
	}
	cmd := exec.Command(depmod, "-b", stage, opts.KernelRelease)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %w: %s", cmd.Args, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func findDepmod() (string, error) {
	if p, err := exec.LookPath("depmod"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/sbin/depmod", "/usr/sbin/depmod", "/bin/depmod", "/usr/bin/depmod"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("depmod not found (install kmod)")
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// entry is one file to archive from the host.
type entry struct {
	src  string // host path; empty for a directory
	perm fs.FileMode
	size int64
}

// writeArchive writes every member in path order, parents first.
func writeArchive(c *cpioWriter, stage string, cfg initconfig.Config, opts Options) error {
	files := map[string]entry{}
	var dirs []string
	addDirs := func(p string) {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	addFile := func(name, src string) error {
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", src)
		}
		files[name] = entry{src: src, perm: fi.Mode().Perm(), size: fi.Size()}
		addDirs(name)
		return nil
	}
	if err := addFile(initconfig.InitPath, opts.Init); err != nil {
		return err
	}
	err := filepath.WalkDir(filepath.Join(stage, initconfig.ModulesDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Name() == "modules.order" || d.Name() == "modules.builtin.modinfo" {
			return nil // inputs of depmod, which ran already
		}
		rel, _ := filepath.Rel(stage, p)
		return addFile(filepath.ToSlash(rel), p)
	})
	if err != nil {
		return err
	}
	for name, src := range opts.Files {
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" || name == initconfig.InitPath {
			return fmt.Errorf("cannot add %s as %q", src, name)
		}
		if err := addFile(name, src); err != nil {
			return err
		}
	}
	var rescueLinks map[string]string
	if opts.Rescue != nil {
		if rescueLinks, err = opts.Rescue.members(); err != nil {
			return err
		}
		if _, ok := files["bin/bb"]; ok {
			return errors.New("rescue shell: bin/bb is also given as a file")
		}
		if err := addFile("bin/bb", opts.Rescue.Busybox); err != nil {
			return err
		}
	}
	// Files written from memory and special members.
	mem := map[string][]byte{
		initconfig.ReleaseFile: []byte("NAME=\"distri initramfs\"\nID=distri\nVERSION_ID=" + opts.KernelRelease + "\n"),
		initconfig.ConfigFile:  cfg.Marshal(),
	}
	special := map[string]func(){
		initconfig.ModprobePath: func() { c.Symlink(initconfig.ModprobePath, "/"+initconfig.InitPath) },
		"dev/console":           func() { c.CharDev("dev/console", 0o600, 5, 1) },
	}
	for name, target := range rescueLinks {
		if _, ok := files[name]; ok {
			return fmt.Errorf("rescue shell: %s is also given as a file", name)
		}
		special[name] = func() { c.Symlink(name, target) }
	}
	for n := range mem {
		addDirs(n)
	}
	for n := range special {
		addDirs(n)
	}
	dirs = append(dirs, "dev", "proc", "sys", "run", "tmp", initconfig.SysrootDir)

	var names []string
	names = append(names, dirs...)
	for n := range files {
		names = append(names, n)
	}
	for n := range mem {
		names = append(names, n)
	}
	for n := range special {
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if f, ok := files[n]; ok {
			in, err := os.Open(f.src)
			if err != nil {
				return err
			}
			c.File(n, f.perm, f.size, in)
			in.Close()
		} else if b, ok := mem[n]; ok {
			c.File(n, 0o644, int64(len(b)), bytes.NewReader(b))
		} else if s, ok := special[n]; ok {
			s()
		} else {
			perm := fs.FileMode(0o755)
			if n == "tmp" {
				perm = 0o777 // sticky bit is not in Perm; tmp is only used by the init
			}
			c.Dir(n, perm)
		}
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
