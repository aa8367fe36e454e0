package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"distri.dev/distri/lib/initramfs"
)

// benchInitramfs compares distri's initramfs with Debian's mkinitramfs
// (initramfs-tools) and dracut, for Debian's cloud kernel and the same
// module set: generation time and size, and boot time under QEMU (TCG)
// from QEMU's start to the root's /init, against an initramfs-tools
// initrd booting the same root.
//
// mkinitramfs only reads /lib/modules/<release>: for the run, that is a
// symlink to a depmod'ed copy of the kernel's tree in the test cache,
// removed afterwards (and so is /boot/config-<release>). Needs initramfs-tools-core, dracut-core, kmod and
// qemu-system-x86.
func benchInitramfs(work, _ string, rounds int) ([]result, error) {
	k, cache, err := kernelAndTools("initramfs-tools-core dracut-core kmod qemu-system-x86 e2fsprogs",
		"mkinitramfs", "dracut", "depmod", "qemu-system-x86_64", "mkfs.ext4")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "initramfs-bin")
	initBin, err := goBuildStatic(bin, "./distri-init")
	if err != nil {
		return nil, err
	}
	rootInit, err := goBuildStatic(bin, "./distri-init/testdata/rootinit")
	if err != nil {
		return nil, err
	}
	// The peers want modules.dep: a depmod'ed copy (hard links) of the tree.
	peerMods := filepath.Join(cache, "bench-modules", k.Release)
	if _, err := os.Stat(filepath.Join(peerMods, "lib/modules", k.Release, "modules.dep")); err != nil {
		os.RemoveAll(peerMods)
		if err := os.MkdirAll(filepath.Join(peerMods, "lib/modules"), 0o755); err != nil {
			return nil, err
		}
		if err := run("cp", "-al", filepath.Join(k.Modules, k.Release), filepath.Join(peerMods, "lib/modules", k.Release)); err != nil {
			return nil, err
		}
		if err := run("depmod", "-b", peerMods, k.Release); err != nil {
			return nil, err
		}
	}
	libModules := filepath.Join("/lib/modules", k.Release)
	if _, err := os.Lstat(libModules); err == nil {
		return nil, fmt.Errorf("%s exists; not replacing it", libModules)
	}
	if err := os.MkdirAll("/lib/modules", 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join(peerMods, "lib/modules", k.Release), libModules); err != nil {
		return nil, err
	}
	defer os.Remove(libModules)
	// … and /boot/config-<release>, to see which compressions the kernel
	// unpacks.
	bootConfig := filepath.Join("/boot", "config-"+k.Release)
	if _, err := os.Lstat(bootConfig); err != nil {
		os.MkdirAll("/boot", 0o755)
		if err := os.Symlink(filepath.Join(filepath.Dir(filepath.Dir(k.Vmlinuz)), "boot", "config-"+k.Release), bootConfig); err != nil {
			return nil, err
		}
		defer os.Remove(bootConfig)
	}

	modules := append(append([]string{}, initramfs.DefaultDrivers...), initramfs.DefaultLoad...)
	// initramfs-tools: MODULES=list with our module set, zstd.
	conf := filepath.Join(work, "initramfs-tools")
	if err := os.MkdirAll(filepath.Join(conf, "conf.d"), 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{"hooks", "scripts"} {
		os.MkdirAll(filepath.Join(conf, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(conf, "initramfs.conf"), []byte("MODULES=list\nBUSYBOX=auto\nCOMPRESS=zstd\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(conf, "modules"), []byte(strings.Join(modules, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	ours := filepath.Join(work, "distri-initramfs.img")
	mkinitramfs := filepath.Join(work, "mkinitramfs.img")
	dracut := filepath.Join(work, "dracut.img")
	genOurs := func() error {
		_, err := initramfs.WriteFile(ours, initramfs.Options{Init: initBin, KernelRelease: k.Release, ModulesDir: k.Modules})
		return err
	}
	genMkinitramfs := func() error {
		return run("mkinitramfs", "-d", conf, "-o", mkinitramfs, k.Release)
	}
	genDracut := func() error {
		return run("dracut", "--quiet", "--force", "--no-hostonly", "--kver", k.Release,
			"--kmoddir", filepath.Join(peerMods, "lib/modules", k.Release),
			"--drivers", strings.Join(modules, " "), "--zstd", dracut)
	}
	var results []result
	o, p, err := measure(rounds, genOurs, genMkinitramfs)
	if err != nil {
		return nil, err
	}
	results = append(results, result{
		name: "initramfs generation", ours: o, peer: p, peerName: "mkinitramfs (MODULES=list)",
		note: fmt.Sprintf("size ours %s, peer %s (zstd)", size(ours), size(mkinitramfs)),
	})
	o, p, err = measure(rounds, genOurs, genDracut)
	if err != nil {
		return nil, err
	}
	results = append(results, result{
		name: "initramfs generation", ours: o, peer: p, peerName: "dracut --no-hostonly --drivers",
		note: fmt.Sprintf("size ours %s, peer %s (zstd)", size(ours), size(dracut)),
	})

	// Boot: the same ext4 root, found by UUID, whose /init prints a
	// marker and powers off.
	const uuid = "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77"
	tree := filepath.Join(work, "boot-root")
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	if err := run("cp", rootInit, filepath.Join(tree, "init")); err != nil {
		return nil, err
	}
	img := filepath.Join(work, "boot-root.img")
	if err := run("mkfs.ext4", "-q", "-F", "-d", tree, "-U", uuid, img, "32M"); err != nil {
		return nil, err
	}
	cmdline := "loglevel=4 root=UUID=" + uuid + " ro init=/init"
	o, p, err = measure(rounds, func() error {
		return bootToRoot(k.Vmlinuz, ours, cmdline, img)
	}, func() error {
		return bootToRoot(k.Vmlinuz, mkinitramfs, cmdline, img)
	})
	if err != nil {
		return nil, err
	}
	results = append(results, result{
		name: "boot to root's /init (TCG)", ours: o, peer: p, peerName: "initramfs-tools initrd",
		note: "QEMU start to the root's first line, ext4 root=UUID= on virtio",
	})
	return results, nil
}

// goBuildStatic builds a main package of this module without cgo into
// dir and returns the binary's path.
func goBuildStatic(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %w\n%s", cmd.Args, err, b)
	}
	return out, nil
}

// bootToRoot boots QEMU until the root's init prints its marker.
func bootToRoot(kernel, initrd, cmdline, disk string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-machine", "q35,accel=tcg", "-cpu", "max", "-m", "512", "-smp", "1",
		"-display", "none", "-vga", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nodefaults",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 "+cmdline,
		"-drive", "file="+disk+",if=virtio,format=raw,snapshot=on")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	s := bufio.NewScanner(out)
	var last []string
	for s.Scan() {
		if strings.Contains(s.Text(), "ROOT INIT REACHED") {
			return nil
		}
		last = append(last, s.Text())
		if len(last) > 20 {
			last = last[1:]
		}
	}
	return errors.New("QEMU exited before the root's init ran; last lines:\n" + strings.Join(last, "\n"))
}
