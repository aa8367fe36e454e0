package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/install"
)

type listOptions struct {
	installed bool
	available bool
}

func (o *listOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.installed, "installed", false, "list the packages in the store (the default)")
	fs.BoolVar(&o.available, "available", false, "list the packages the repositories offer")
}

func newListCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	var opts listOptions
	cmd := &cobra.Command{
		Use:   "list [--installed|--available] [PREFIX]",
		Short: "list installed or available packages",
		Long: `list prints full package names, one a line, sorted: those in the store
(--installed, the default) or those the repositories offer
(--available), limited to names starting with PREFIX. It creates and
locks nothing.

Examples:
  % distri-install list
  % distri-install list --available --repo http://127.0.0.1:7080 --pubkey distri.pub bash
  bash-amd64-5.2.15-3`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(cmd.Context(), g, opts, args, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagsMutuallyExclusive("installed", "available")
	return cmd
}

func runList(ctx context.Context, g *globalOpts, opts listOptions, args []string, stdio cli.Stdio) error {
	in, err := g.reader(stdio)
	if err != nil {
		return err
	}
	lo := install.ListOptions{Available: opts.available}
	if len(args) > 0 {
		lo.Prefix = args[0]
	}
	names, err := in.List(ctx, lo)
	if err != nil {
		return err
	}
	printLines(stdio.Out, names)
	return nil
}
