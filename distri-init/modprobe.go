package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/kmod"
)

type modprobeOptions struct {
	quiet bool
	dir   string
}

func newModprobeCmd(stdio cli.Stdio) *cobra.Command {
	var opts modprobeOptions
	cmd := &cobra.Command{
		Use:   "modprobe [-q] [--] NAME...",
		Short: "load kernel modules by name or alias, with their dependencies",
		Long: `modprobe loads modules and what they depend on from the index depmod
wrote in /lib/modules/<running release>. In the initramfs /sbin/modprobe
is distri-init, so the kernel's module autoloader ("modprobe -q -- NAME")
works there too.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModprobe(opts, args, stdio)
		},
	}
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "do not say which modules failed, only how many")
	cmd.Flags().StringVar(&opts.dir, "dir", "", "module directory (default /lib/modules/<running release>)")
	return cmd
}

func runModprobe(opts modprobeOptions, names []string, stdio cli.Stdio) error {
	dir := opts.dir
	if dir == "" {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			return err
		}
		dir = filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	}
	x, err := kmod.ReadIndex(dir)
	if err != nil {
		return err
	}
	l := kmod.NewLoader(x, nil)
	var errs []error
	for _, n := range names {
		if _, err := l.Load(n); err != nil {
			errs = append(errs, err)
		}
	}
	err = errors.Join(errs...)
	if err != nil && opts.quiet {
		// modprobe -q fails quietly: the exit status is the answer.
		return fmt.Errorf("%d of %d modules not loaded", len(errs), len(names))
	}
	return err
}
