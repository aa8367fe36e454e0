package main

import (
	"context"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newGCCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "delete packages the installed set does not need",
		Long: `gc keeps the newest installed revision of every entry of the explicitly
installed set (ROOT/roimg/installed) and everything those need, and
deletes every other package and half-installed image from the store. It
prints what it deleted. Files it does not recognise are left alone.

Examples:
  % distri-install gc
  bash-amd64-5.2.15-3
  % distri-install --root /mnt gc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGC(cmd.Context(), g, stdio)
		},
	}
	g.addDryRun(cmd.Flags())
	return cmd
}

func runGC(ctx context.Context, g *globalOpts, stdio cli.Stdio) error {
	in, err := g.installer(stdio)
	if err != nil {
		return err
	}
	removed, err := in.GC(ctx)
	printLines(stdio.Out, removed)
	return err
}
