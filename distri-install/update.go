package main

import (
	"context"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newUpdateCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update",
		Short: "install the newest revision of every installed package",
		Long: `update installs the newest revision (across all repositories) of every
package name in the store and in the explicitly installed set, with its
closure, and prints the full names it added. Pinned full names stay as
they are. Older revisions stay until gc.

Examples:
  % distri-install update
  bash-amd64-5.2.15-4
  % distri-install update && distri-install gc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpdate(cmd.Context(), g, stdio)
		},
	}
	g.addDryRun(cmd.Flags())
	return cmd
}

func runUpdate(ctx context.Context, g *globalOpts, stdio cli.Stdio) error {
	in, err := g.installer(stdio)
	if err != nil {
		return err
	}
	added, err := in.Update(ctx)
	if err != nil {
		return err
	}
	printLines(stdio.Out, added)
	return nil
}
