package main

import (
	"context"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRemoveCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "remove PKG...",
		Short: "remove packages from the installed set and the store",
		Long: `remove takes each PKG out of the explicitly installed set and deletes
its installed revisions that the rest of the set does not need. It
prints the full names it deleted. Dependencies nothing needs any more
stay until gc.

Examples:
  % distri-install remove i3status
  i3status-amd64-2.13-10
  % distri-install remove i3status && distri-install gc`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(cmd.Context(), g, args, stdio)
		},
	}
}

func runRemove(ctx context.Context, g *globalOpts, names []string, stdio cli.Stdio) error {
	in, err := g.installer(stdio)
	if err != nil {
		return err
	}
	removed, err := in.Remove(ctx, names)
	if err != nil {
		return err
	}
	printLines(stdio.Out, removed)
	return nil
}
