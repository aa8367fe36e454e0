package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/cli"
)

type scaffoldOptions struct {
	pkgsDir string
}

func (o *scaffoldOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.pkgsDir, "output", "o", "pkgs", "directory of recipes to write <name>/build.textproto into")
}

func newScaffoldCmd(stdio cli.Stdio) *cobra.Command {
	var opts scaffoldOptions
	cmd := &cobra.Command{
		Use:   "scaffold debian:NAME [-o PKGSDIR]",
		Short: "write recipes for a Debian binary package and its dependencies",
		Long: `scaffold writes PKGSDIR/<name>/build.textproto for the Debian binary
package NAME and for each package in the closure of what it depends on
(Pre-Depends and Depends, the first alternative, virtual packages resolved
to a provider). Packages that already have a recipe in PKGSDIR are left
alone. Each recipe pins the package's archive path, sha256 and version as
apt-cache knows them, and lists its direct dependencies as runtime_dep.
It prints the recipe files it wrote.

Examples:
  % distri-build scaffold debian:hello -o pkgs
  pkgs/hello/build.textproto
  pkgs/libc6/build.textproto
  …`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, ok := strings.CutPrefix(args[0], "debian:")
			if !ok || name == "" {
				return cli.Usagef("scaffold %q: want debian:NAME", args[0])
			}
			files, err := debian.Scaffold(cmd.Context(), name, debian.ScaffoldOptions{PkgsDir: opts.pkgsDir})
			for _, f := range files {
				fmt.Fprintln(stdio.Out, f)
			}
			return err
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}
