// Command distri-build builds distri packages: it validates recipes
// (check), turns directory trees into packages (pack), writes recipes for
// Debian binary packages (scaffold) and builds recipes (build, and batch
// for every stale recipe of a pkgs/ directory).
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "distri-build",
		Short: "build distri packages",
		Long: `distri-build makes distri packages.

Each package is a SquashFS image <full>.squashfs plus a meta file
<full>.meta.textproto; <full> is <name>-<arch>-<upstream>-<revision>,
e.g. bash-amd64-5.2.15-3.

Examples:
  % distri-build check pkgs/
  % distri-build scaffold debian:hello -o pkgs
  % distri-build build --repo repo pkgs/hello
  % distri-build pack --name hello-amd64-2.12-1 destdir/ -o repo/pkg`,
	}
	root.AddCommand(
		newCheckCmd(stdio),
		newPackCmd(stdio),
		newBuildCmd(stdio),
		newScaffoldCmd(stdio),
		newBatchCmd(stdio),
	)
	return root
}
