// Package rootfs makes a distri root file system tree (DESIGN.md §3): the
// package store with the packages asked for and their closures, the
// symlinks into /ro, /init and /distri-fuse, the empty mount points and
// a minimal /etc. The tree is what distri-mkimage disk puts on the root
// partition and what the docker and LXD outputs archive.
//
// # Layout
//
//	roimg/                  the store (lib/install), with the explicitly installed set
//	ro proc sys dev run boot                                  empty, 0755
//	tmp var/tmp             empty, 1777
//	root                    empty, 0700
//	bin sbin -> /ro/bin     lib -> /ro/lib     include -> /ro/include
//	share -> /ro/share      usr -> /           var/run -> /run
//	lib64/ld-linux-x86-64.so.2 -> /ro/<newest glibc>/out/…/ld-linux-x86-64.so.2
//	                        (lib64 -> /ro/lib64 when no glibc is installed)
//	boot/vmlinuz-<release>  from a kernel package, with boot/initramfs-<release>.img
//	                        made by lib/install with Init (see FindBootFiles)
//	var/cache/distri/kmod/<release>@<kernel package>/   the kernel's module index
//	                        (lib/install; the booted system's modprobe reads it)
//	init                    distri-init (PID 1 of the booted system)
//	distri-fuse             serves /roimg on /ro (initconfig.SystemFuse)
//	etc/passwd group shadow root, password "peace" (SHA-512 crypt)
//	etc/hostname            distri0
//	etc/os-release          ID=distri
//	etc/fstab               the root by label; distri-mkimage disk rewrites it with UUIDs
//	etc/distri/repos.d/distri.repo   the repositories, one a line
//	etc/distri/keys/*.pub   the trusted public keys
//
// # Decisions
//
//   - The /etc files written here replace what packages installed there:
//     the image's accounts and identity are this package's to decide.
//     lib/install then sees them as changed by the user and never
//     overwrites them on updates.
//   - /lib64 holds only the loader, pointing into the newest glibc
//     package (glibc, or libc6 imported from Debian; by revision), not into the /ro/lib exchange directory:
//     the ELF interpreter path must resolve before anything else, and
//     pinning it to one glibc keeps the loader and libc.so.6 matched.
//   - Every entry's mtime is set to 2020-01-01 00:00:00 UTC, so that
//     the same inputs give the same tree (and the same archives and ext4
//     file system).
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/squashfs"
	"distri.dev/distri/lib/store"
)

// Epoch is the mtime of every entry of a tree Make writes:
// 2020-01-01 00:00:00 UTC, as lib/image uses for seeded images.
var Epoch = time.Unix(1577836800, 0).UTC()

// DefaultHostname is /etc/hostname unless Options.Hostname is set.
const DefaultHostname = "distri0"

// Options describe a root tree.
type Options struct {
	// Dir is the root tree to write, e.g. /tmp/distri-root. It is created
	// if missing; packages already in its store are kept.
	Dir string
	// Packages are the names to install with their closures, e.g. base
	// or bash-amd64-5.2.15-3. At least one is required.
	Packages []string
	// Repos are the repositories to install from (URLs or folders),
	// e.g. http://127.0.0.1:7080. Required.
	Repos []string
	// ImageRepos are the repository URLs the tree's
	// etc/distri/repos.d/distri.repo lists; empty means Repos (folders
	// made absolute).
	ImageRepos []string
	// PubKeyFiles are the public keys trusted to sign the repositories'
	// indexes, e.g. distri.pub. They are copied into etc/distri/keys.
	// Required.
	PubKeyFiles []string
	// Init is the distri-init binary copied to /init. Required.
	Init string
	// Fuse is the distri-fuse binary copied to /distri-fuse. Required.
	Fuse string
	// Hostname goes into etc/hostname; empty means distri0.
	Hostname string
	// Arch of unqualified package names; empty means this machine's.
	Arch string
	// Client makes the HTTP requests; nil means lib/install's default.
	Client *http.Client
	// Log gets progress lines; nil means discard.
	Log *log.Logger
	// Progress, if set, gets the installer's progress display.
	Progress io.Writer
}

// Make writes the root tree opts describe and returns the full names of
// the packages it added to the store.
func Make(ctx context.Context, opts Options) ([]string, error) {
	if opts.Dir == "" || len(opts.Packages) == 0 || len(opts.Repos) == 0 ||
		len(opts.PubKeyFiles) == 0 || opts.Init == "" || opts.Fuse == "" {
		return nil, errors.New("root tree: Dir, Packages, Repos, PubKeyFiles, Init and Fuse are required")
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log.Printf(format, args...)
		}
	}
	for _, p := range []string{opts.Init, opts.Fuse} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("root tree: %w", err)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := makeSkeleton(opts.Dir); err != nil {
		return nil, err
	}
	in, err := install.New(install.Options{
		Root:        opts.Dir,
		Repos:       opts.Repos,
		PubKeyFiles: opts.PubKeyFiles,
		Init:        opts.Init,
		Arch:        opts.Arch,
		Client:      opts.Client,
		Log:         opts.Log,
		Progress:    opts.Progress,
	})
	if err != nil {
		return nil, err
	}
	added, err := in.Install(ctx, opts.Packages)
	if err != nil {
		return nil, err
	}
	logf("installed %d packages into %s", len(added), in.Store().Dir())
	// The store's staging folder is the installer's scratch space.
	os.Remove(filepath.Join(in.Store().Dir(), store.StagingDir))
	if err := linkLoader(opts.Dir, in.Store()); err != nil {
		return nil, err
	}
	for dst, src := range map[string]string{"init": opts.Init, strings.TrimPrefix(initconfig.SystemFuse, "/"): opts.Fuse} {
		if err := copyFile(src, filepath.Join(opts.Dir, dst), 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeEtc(opts, in.Store()); err != nil {
		return nil, err
	}
	// writeEtc wrote passwd and group afresh: add the packages' users.
	pkgs, err := in.Store().List()
	if err != nil {
		return nil, err
	}
	var fulls []string
	for _, n := range pkgs {
		fulls = append(fulls, n.String())
	}
	users, err := install.ApplySysusers(opts.Dir, in.Store(), fulls)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		logf("added %s", u)
	}
	if err := fixTimes(opts.Dir); err != nil {
		return nil, err
	}
	return added, nil
}

// makeSkeleton makes the mount points and the symlinks into /ro.
func makeSkeleton(dir string) error {
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{
		{"ro", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"run", 0o755},
		{"boot", 0o755}, {"etc", 0o755}, {"var", 0o755},
		{"tmp", 0o777 | os.ModeSticky}, {"var/tmp", 0o777 | os.ModeSticky}, {"root", 0o700},
	} {
		p := filepath.Join(dir, d.name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		// MkdirAll is subject to the umask and sets no sticky bit.
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{
		"bin": "/ro/bin", "sbin": "/ro/bin", "lib": "/ro/lib", "include": "/ro/include",
		"share": "/ro/share", "usr": "/", "var/run": "/run",
	} {
		if err := symlink(target, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// loaders are where Debian's and distri's glibc packages keep the x86-64
// ELF interpreter, most specific first.
var loaders = []string{
	"out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	"out/lib64/ld-linux-x86-64.so.2",
	"out/lib/ld-linux-x86-64.so.2",
}

// linkLoader makes /lib64/ld-linux-x86-64.so.2 point at the loader of
// the newest glibc in the store, or /lib64 point at /ro/lib64 when there
// is no such glibc.
func linkLoader(dir string, st *store.Store) error {
	p := filepath.Join(dir, "lib64")
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	pkgs, err := st.List()
	if err != nil {
		return err
	}
	var newest *pkgname.Name
	for i, n := range pkgs {
		if (n.Pkg == "glibc" || n.Pkg == "libc6") && n.Arch == "amd64" && (newest == nil || n.Rev > newest.Rev) {
			newest = &pkgs[i]
		}
	}
	if newest != nil {
		loader, err := findLoader(st.ImagePath(newest.String()))
		if err != nil {
			return err
		}
		if loader != "" {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			return os.Symlink("/ro/"+newest.String()+"/"+loader, filepath.Join(p, "ld-linux-x86-64.so.2"))
		}
	}
	return os.Symlink("/ro/lib64", p)
}

// findLoader returns the first of loaders that is a file in image, or "".
func findLoader(image string) (string, error) {
	r, err := squashfs.Open(image)
	if err != nil {
		return "", err
	}
	defer r.Close()
	for _, l := range loaders {
		if fi, err := fs.Lstat(r.FS(), l); err == nil && fi.Mode().IsRegular() {
			return l, nil
		}
	}
	return "", nil
}

// symlink makes path a symlink to target, replacing what is there.
func symlink(target, path string) error {
	if t, err := os.Readlink(path); err == nil && t == target {
		return nil
	}
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	return os.Symlink(target, path)
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(dst, b, mode)
}

// fixTimes sets the mtime and atime of every entry under dir (dir
// included, symlinks themselves) to Epoch.
func fixTimes(dir string) error {
	ts := []unix.Timespec{unix.NsecToTimespec(Epoch.UnixNano()), unix.NsecToTimespec(Epoch.UnixNano())}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set times of %s: %w", p, err)
		}
		return nil
	})
}
