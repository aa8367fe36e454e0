package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/fusefs"
)

func newOwnerCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "owner PATH...",
		Short: "print the package that provides a path in /ro",
		Long: `owner prints, for each PATH, the full name of the package that provides it:
for an exchange entry such as /ro/bin/bash (or /bin/bash, through the
root's symlinks) the package whose file /ro serves there, conflicts
resolved; for a path below /ro/<full>/ that package. For an exchange
directory it prints every package with entries below it, one per line.
With several PATHs, each line is prefixed with "PATH: ".

Examples:
  % distri-fuse owner /bin/bash
  bash-amd64-5.2.15-3
  % distri-fuse owner /ro/lib/libz.so.1 /ro/bin/sh
  /ro/lib/libz.so.1: zlib-amd64-1.3-4
  /ro/bin/sh: bash-amd64-5.2.15-3`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range args {
				owners, err := fusefs.Owner(p)
				if err != nil {
					return err
				}
				prefix := ""
				if len(args) > 1 {
					prefix = p + ": "
				}
				fmt.Fprintln(stdio.Out, prefix+strings.Join(owners, "\n"+prefix))
			}
			return nil
		},
	}
}
