package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/fusectl"
)

func newCtlCmd(stdio cli.Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "control a running distri-fuse",
	}
	cmd.AddCommand(newCtlRescanCmd(stdio))
	return cmd
}

func newCtlRescanCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "rescan [MOUNTPOINT]",
		Short: "make the daemon pick up added and removed packages",
		Long: `rescan asks the distri-fuse serving MOUNTPOINT (default /ro) to rescan its
store, and returns once the mount shows the store's current contents. It
succeeds quietly when no distri-fuse serves MOUNTPOINT.

Examples:
  % distri-fuse ctl rescan
  % distri-fuse ctl rescan /mnt/ro`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mnt := "/ro"
			if len(args) == 1 {
				mnt = args[0]
			}
			return fusectl.RescanMount(cmd.Context(), mnt)
		},
	}
}
