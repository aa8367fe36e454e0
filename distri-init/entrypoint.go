package main

import (
	"log"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/sysinit"
)

func newEntrypointCmd(stdio cli.Stdio) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "entrypoint [--] [COMMAND [ARG...]]",
		Short: "serve /ro from /roimg with /distri-fuse, then exec COMMAND (default /bin/bash)",
		Long: `entrypoint is a container's entry point: it starts /distri-fuse serving
/roimg on /ro, waits until the mount is ready, and execs COMMAND with
PATH=/bin (default /bin/bash, else /bin/sh). Started through a symlink
named entrypoint, distri-init runs this command with its arguments.

Examples:
  % docker run --privileged --entrypoint /entrypoint -ti distri
  % docker run --privileged --entrypoint /entrypoint distri ls /bin`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var logger *log.Logger
			if verbose {
				logger = log.New(stdio.Err, "distri-init: ", 0)
			}
			return sysinit.Entrypoint(sysinit.EntrypointOptions{Args: args, Log: logger})
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "say when /ro is served")
	return cmd
}
