package install

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"distri.dev/distri/lib/initramfs"
	"distri.dev/distri/lib/kmod"
	"distri.dev/distri/lib/squashfs"
)

// A kernel package provides lib/modules/<release>/modules.order (from its
// out/lib/modules) and a kernel image out/boot/vmlinuz-<release>.
// Installing one puts /boot/vmlinuz-<release> and a fresh
// /boot/initramfs-<release>.img into the root, made with lib/initramfs and
// the root's /init (distri-init), and the index of its modules into
// /var/cache/distri/kmod/<release>@<full> for the booted system's
// modprobe (lib/kmod's cache; Debian's kernel has no modules.dep) — the
// distri equivalent of a kernel package's postinst hook (initramfs and
// depmod), run by the installer because packages have no hooks.

// kernelReleases returns the kernel releases full provides modules for.
func (in *Installer) kernelReleases(full string) ([]string, error) {
	meta, err := in.store.Meta(full)
	if err != nil {
		return nil, err
	}
	var releases []string
	for _, p := range meta.GetProvides() {
		// lib/modules/<release>/modules.order
		if rest, ok := strings.CutPrefix(p, "lib/modules/"); ok {
			if rel, file, ok := strings.Cut(rest, "/"); ok && file == "modules.order" {
				releases = append(releases, rel)
			}
		}
	}
	return releases, nil
}

// bootKernels installs the kernel and initramfs of every kernel package
// among the newly installed packages.
func (in *Installer) bootKernels(ctx context.Context, installed []string) error {
	for _, full := range installed {
		releases, err := in.kernelReleases(full)
		if err != nil {
			return err
		}
		for _, rel := range releases {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := in.bootKernel(full, rel); err != nil {
				return fmt.Errorf("kernel %s of %s: %w", rel, full, err)
			}
		}
	}
	return nil
}

func (in *Installer) bootKernel(full, release string) error {
	img, err := squashfs.Open(in.store.ImagePath(full))
	if err != nil {
		return err
	}
	defer img.Close()
	tmp, err := os.MkdirTemp(in.store.Dir(), ".kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	modules := filepath.Join(tmp, "modules")
	if err := os.Mkdir(modules, 0o755); err != nil {
		return err
	}
	err = img.Extract(filepath.Join(modules, release), squashfs.ExtractOptions{Path: path.Join("out/lib/modules", release)})
	if err != nil {
		return err
	}
	// One scan of the modules for the booted system's index and the
	// initramfs.
	start := time.Now()
	tree, err := kmod.Scan(filepath.Join(modules, release))
	if err != nil {
		return fmt.Errorf("module index: %w", err)
	}
	index, err := writeModuleIndex(in.opts.Root, tree, release, full)
	if err != nil {
		return err
	}
	index += fmt.Sprintf(" (%v)", time.Since(start).Round(time.Millisecond))
	init := in.opts.Init
	if init == "" {
		init = filepath.Join(in.opts.Root, "init")
	}
	if _, err := os.Stat(init); err != nil {
		in.logf("installed kernel %s (module index %s), but made no initramfs: %v (distri-init is the root's /init)", release, index, err)
		return nil
	}
	boot := filepath.Join(in.opts.Root, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		return err
	}
	if err := copyFromImage(img, path.Join("out/boot", "vmlinuz-"+release), filepath.Join(boot, "vmlinuz-"+release)); err != nil {
		return err
	}
	out := filepath.Join(boot, "initramfs-"+release+".img")
	if _, err := initramfs.WriteFile(out, initramfs.Options{
		Init:          init,
		KernelRelease: release,
		ModulesDir:    modules,
		Tree:          tree,
		Log:           in.opts.Log,
	}); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	in.logf("installed kernel %s: %s, %s, module index %s", release, filepath.Join(boot, "vmlinuz-"+release), out, index)
	return nil
}

// writeModuleIndex writes the index of the kernel package full's
// modules of release (tree) where the booted root's modprobe looks
// first, under the key of the package's tree
// (root/var/cache/distri/kmod/<release>@<full>, see kmod.CacheKey), so
// that no boot scans them. It returns the index directory.
func writeModuleIndex(root string, tree *kmod.Tree, release, full string) (string, error) {
	cache := filepath.Join(root, kmod.SystemCacheDirs[0])
	key := kmod.PackageKey(release, full)
	if err := kmod.WriteCache(tree.Index(), cache, key); err != nil {
		return "", fmt.Errorf("module index in %s: %w", cache, err)
	}
	return filepath.Join(cache, key), nil
}

// copyFromImage copies the file at name in img to dst, atomically.
func copyFromImage(img *squashfs.Reader, name, dst string) error {
	f, err := img.FS().Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := renameio.NewPendingFile(dst, renameio.WithTempDir(filepath.Dir(dst)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return err
	}
	defer out.Cleanup()
	if _, err := io.Copy(out, f); err != nil {
		return err
	}
	return out.CloseAtomicallyReplace()
}
