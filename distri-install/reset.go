package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newResetCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset FILE|-",
		Short: "delete every package a saved list does not name",
		Long: `reset returns the store to a list of full names saved earlier (distri
list > FILE, one a line; - reads it from standard input): every package
the list does not name and every half-installed image is deleted, and
entries of the explicitly installed set left without a package are
dropped. Listed packages the store lacks are named on stderr, not
fetched. It prints what it deleted; --dry-run only prints it. An empty
list is refused.

Examples:
  % distri-install list > before.txt
  % distri-install install i3status
  % distri-install reset --dry-run before.txt
  i3status-amd64-2.13-10
  % distri-install reset - < before.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := readList(args[0], stdio)
			if err != nil {
				return err
			}
			in, err := g.installer(stdio)
			if err != nil {
				return err
			}
			removed, err := in.Reset(cmd.Context(), names)
			printLines(stdio.Out, removed)
			return err
		},
	}
	g.addDryRun(cmd.Flags())
	return cmd
}

// readList reads the names in file, or standard input for -.
func readList(file string, stdio cli.Stdio) ([]string, error) {
	if file == "-" {
		return cli.ReadArgs([]string{"-"}, stdio.In)
	}
	return cli.ReadFileLines(file)
}

func newEnvCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "env [NAME...]",
		Short: "print the places and settings distri-install uses",
		Long: `env prints NAME=value lines: the root, its package store, where
repositories (repos.d), trusted keys and the index time stamps are, and
the architecture of names without one. With NAMEs it prints only their
values, one a line. It creates nothing.

Examples:
  % distri-install env
  DISTRI_ROOT=/
  DISTRI_STORE=/roimg
  ...
  % ls $(distri-install env DISTRI_REPOS)`,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := g.reader(stdio)
			if err != nil {
				return err
			}
			vars := in.Env()
			if len(args) == 0 {
				for _, v := range vars {
					fmt.Fprintf(stdio.Out, "%s=%s\n", v[0], v[1])
				}
				return nil
			}
			for _, a := range args {
				found := false
				for _, v := range vars {
					if v[0] == a {
						fmt.Fprintln(stdio.Out, v[1])
						found = true
					}
				}
				if !found {
					var names []string
					for _, v := range vars {
						names = append(names, v[0])
					}
					return cli.Usagef("env: unknown name %q (known: %s)", a, strings.Join(names, ", "))
				}
			}
			return nil
		},
	}
}
