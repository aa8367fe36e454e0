package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/kmod"
	"distri.dev/distri/lib/modprobe"
)

func newModprobeCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "modprobe [-q] [-v] [-R] [-D] [-d ROOT] [-S RELEASE] [--] NAME...",
		Short: "load kernel modules by name or alias, with their dependencies",
		Long: `modprobe loads the modules that provide each NAME (module name or alias)
and what they depend on, from /lib/modules/<running release>: depmod's
index if there is one, else every module's .modinfo (the index is then
cached in ` + strings.Join(kmod.SystemCacheDirs, " or ") + `). Started under the name modprobe,
distri-init runs this: /sbin/modprobe in the initramfs and
` + modprobe.HelperPath + ` in the booted system are the kernel's module
autoloader ("modprobe -q -- NAME").

` + modprobe.Usage,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := modprobe.Command(args)
			if err != nil {
				return cli.Usagef("%v", err)
			}
			if o.Help {
				return cmd.Help()
			}
			if err := modprobe.Run(o, stdio.Out, stdio.Err); err != nil {
				return fmt.Errorf("modprobe: %w", err)
			}
			return nil
		},
	}
}
