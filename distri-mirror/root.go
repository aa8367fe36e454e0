// Command distri-mirror turns a folder of distri packages into a signed
// repository and serves repositories over HTTP.
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "distri-mirror",
		Short: "make and serve signed package repositories",
		Long: `distri-mirror makes signed repositories from folders of packages
(index, keygen) and serves them over HTTP (serve).

Repositories arrive with the mirror work; this release provides --help
and --version only.`,
	}
}
