package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/recipe"
)

type checkOptions struct {
	skipFiles bool
}

func (o *checkOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.skipFiles, "skip-files", false, "do not require the patches and extra files recipes name to exist")
}

func newCheckCmd(stdio cli.Stdio) *cobra.Command {
	var opts checkOptions
	cmd := &cobra.Command{
		Use:   "check PATH...",
		Short: "validate recipes",
		Long: `check validates recipes: each PATH is a build.textproto file or a tree
holding pkgs/<name>/build.textproto files. check is strict: an unknown
field (a typo) is an error, as are a malformed version or sha256, two
builders, and patches or extra files that do not exist.

Each problem is printed as FILE:LINE: what is wrong. The exit status is 1
if any recipe is bad.

Examples:
  % distri-build check pkgs/
  % distri-build check pkgs/hello/build.textproto
  pkgs/hello/build.textproto:3:1: unknown field: versoin`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(opts, args, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func runCheck(opts checkOptions, paths []string, stdio cli.Stdio) error {
	errs := recipe.Check(paths, recipe.Options{SkipFiles: opts.skipFiles})
	for _, err := range errs {
		fmt.Fprintln(stdio.Err, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d problem(s) found", len(errs))
	}
	return nil
}
