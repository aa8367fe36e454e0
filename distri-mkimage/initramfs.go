package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/initramfs"
)

type initramfsOptions struct {
	release     string
	modules     string
	init        string
	output      string
	compression string
	drivers     []string
	fss         []string
	load        []string
	files       []string
	depmod      string
	rescue      string
	verbose     bool
}

func (o *initramfsOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.release, "kernel-release", "", "kernel release the modules are for, e.g. 6.1.0-56-cloud-amd64 (required)")
	fs.StringVar(&o.modules, "modules", "/lib/modules", "a lib/modules tree holding RELEASE/, or the release directory itself")
	fs.StringVar(&o.init, "init", "", "static distri-init binary to install as /init (default: distri-init next to this program)")
	fs.StringVarP(&o.output, "output", "o", "", "file to write (required)")
	fs.StringVar(&o.compression, "compression", "zstd", "zstd, gzip or none")
	fs.StringSliceVar(&o.drivers, "drivers", nil, "storage drivers shipped for coldplug (default: virtio, nvme, ahci, usb-storage, mmc, hyper-v, xen, vmware)")
	fs.StringSliceVar(&o.fss, "file-systems", nil, "file system modules shipped for the root (default: ext4 crc32c squashfs)")
	fs.StringSliceVar(&o.load, "load", nil, "modules loaded on every boot (default: fuse); dm-crypt's are always shipped and loaded for LUKS")
	fs.StringArrayVar(&o.files, "file", nil, "add a host file as ARCHIVE-PATH=HOST-PATH, e.g. bin/sh=/bin/busybox (the rescue shell); repeatable")
	fs.StringVar(&o.depmod, "depmod", "", "depmod program (default: from $PATH, /sbin or /usr/sbin)")
	fs.StringVar(&o.rescue, "rescue", "", "a u-root busybox (go tool makebb of u-root's gosh and core commands, see docs/boot.md) to include as the rescue shell")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "say which requested modules this kernel lacks")
}

func newInitramfsCmd(stdio cli.Stdio) *cobra.Command {
	var opts initramfsOptions
	cmd := &cobra.Command{
		Use:   "initramfs --kernel-release RELEASE [--modules DIR] -o FILE",
		Short: "write an initramfs with distri-init and the modules to find and open a root",
		Long: `initramfs writes a compressed newc cpio archive: distri-init as /init and
the kernel modules needed to find and open the root file system (virtio,
NVMe, SATA, USB storage, ext4, dm-crypt with aes-xts, squashfs, fuse)
with everything they depend on, indexed by depmod. The output is the
same for the same inputs, and replaced atomically.

distri-init must be statically linked (CGO_ENABLED=0).

Examples:
  % distri-mkimage initramfs --kernel-release 6.1.0-56-cloud-amd64 -o /boot/initramfs.img
  % distri-mkimage initramfs --kernel-release 6.1.0-56-cloud-amd64 --modules pkg/lib/modules \
        --init bin/distri-init --compression gzip -o initramfs.img`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInitramfs(cmd.Context(), opts, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagRequired("kernel-release")
	cmd.MarkFlagRequired("output")
	return cmd
}

func runInitramfs(_ context.Context, opts initramfsOptions, stdio cli.Stdio) error {
	if opts.init == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		opts.init = filepath.Join(filepath.Dir(exe), "distri-init")
	}
	files := map[string]string{}
	for _, f := range opts.files {
		name, src, ok := strings.Cut(f, "=")
		if !ok || name == "" || src == "" {
			return cli.Usagef("--file %q: want ARCHIVE-PATH=HOST-PATH", f)
		}
		files[name] = src
	}
	var rescue *initramfs.Rescue
	if opts.rescue != "" {
		rescue = &initramfs.Rescue{Busybox: opts.rescue, Commands: initramfs.RescueCommands}
	}
	var logger *log.Logger
	if opts.verbose {
		logger = log.New(stdio.Err, "distri-mkimage: ", 0)
	}
	st, err := initramfs.WriteFile(opts.output, initramfs.Options{
		Init:          opts.init,
		KernelRelease: opts.release,
		ModulesDir:    opts.modules,
		Drivers:       opts.drivers,
		FileSystems:   opts.fss,
		Load:          opts.load,
		Files:         files,
		Compression:   initramfs.Compression(opts.compression),
		Depmod:        opts.depmod,
		Log:           logger,
		Rescue:        rescue,
	})
	if err != nil {
		return err
	}
	if logger != nil {
		logger.Printf("%d modules: %s", len(st.Modules), strings.Join(st.Modules, " "))
	}
	fmt.Fprintln(stdio.Out, opts.output)
	return nil
}
