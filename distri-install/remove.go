package main

import (
	"context"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRemoveCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove PKG...",
		Short: "remove packages from the installed set and the store",
		Long: `remove takes each PKG out of the explicitly installed set and deletes
its installed revisions that the rest of the set does not need. It
prints the full names it deleted. Dependencies nothing needs any more
stay until gc. A PKG of - reads names from standard input, one a line;
--dry-run prints what would be deleted and changes nothing.

Examples:
  % distri-install remove i3status
  i3status-amd64-2.13-10
  % distri-install remove i3status && distri-install gc`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: g.completeNames(stdio, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, err := cli.ReadArgs(args, stdio.In)
			if err != nil {
				return err
			}
			return runRemove(cmd.Context(), g, args, stdio)
		},
	}
	g.addDryRun(cmd.Flags())
	return cmd
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
