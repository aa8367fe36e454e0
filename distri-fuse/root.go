// Command distri-fuse serves a distri package store as the /ro file
// system: every package under /ro/<full name>/, merged exchange
// directories such as /ro/bin and /ro/lib.
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "distri-fuse",
		Short: "serve a package store as /ro",
		Long: `distri-fuse serves the package store (a folder of <full>.squashfs images)
as the /ro file system.

Mounting arrives with the FUSE work; this release provides --help and
--version only.`,
	}
}
