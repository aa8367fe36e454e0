// Command distri-install installs distri packages with their dependency
// closure from signed repositories into a package store (/roimg).
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "distri-install",
		Short: "install distri packages into a package store",
		Long: `distri-install installs packages with their dependency closure from
repositories into <root>/roimg, where distri-fuse serves them under /ro.

Installing, updating and removing packages arrive with the install work
(see docs/); this release provides --help and --version only.`,
	}
}
