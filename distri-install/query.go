package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/fusefs"
	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/query"
)

// catalog merges the store's packages and, if available, the
// repositories' offers. Read-only: nothing is created or locked.
func (o *globalOpts) catalog(ctx context.Context, stdio cli.Stdio, available bool) (*query.Catalog, *install.Installer, error) {
	in, err := o.reader(stdio)
	if err != nil {
		return nil, nil, err
	}
	installed, err := query.Installed(in.Store())
	if err != nil {
		return nil, nil, err
	}
	var offers []query.Package
	if available {
		if offers, err = in.Available(ctx); err != nil {
			return nil, nil, err
		}
	}
	arch, _ := pkgname.ArchForGOARCH(runtime.GOARCH)
	return query.NewCatalog(arch, installed, offers), in, nil
}

// hasRepos reports whether --repo was given or ROOT lists repositories,
// for the queries that also work offline.
func (o *globalOpts) hasRepos() bool {
	if len(o.repos) > 0 {
		return true
	}
	files, _ := install.ReadRepoFiles(o.root)
	return len(files) > 0
}

// completeNames completes package names: installed ones, and with
// available those the repositories offer (fetched quietly; a failure
// just leaves them out).
func (o *globalOpts) completeNames(stdio cli.Stdio, available bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		quiet := cli.Stdio{In: stdio.In, Out: io.Discard, Err: io.Discard}
		cat, _, err := o.catalog(cmd.Context(), quiet, available && o.hasRepos())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		seen := map[string]bool{}
		var out []cobra.Completion
		add := func(s string) {
			if strings.HasPrefix(s, toComplete) && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		for _, full := range cat.Names() {
			if n, err := pkgname.Parse(full); err == nil {
				add(n.Pkg)
			}
			add(full)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func newSearchCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	var installedOnly bool
	cmd := &cobra.Command{
		Use:   "search [--installed] WORD",
		Short: "print packages whose name or provided paths contain WORD",
		Long: `search prints the full names, one a line, sorted, of the installed and
available packages whose name contains WORD (ignoring case), or, for
installed packages, that provide a path under /ro containing it (such as
bin/i3status). Without repositories (no --repo, none in repos.d) or with
--installed only the store is searched. It creates and locks nothing.

Examples:
  % distri-install search i3
  i3status-amd64-2.13-10
  % distri-install search --installed libz
  zlib-amd64-1.3-4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, _, err := g.catalog(cmd.Context(), stdio, !installedOnly && g.hasRepos())
			if err != nil {
				return err
			}
			cli.PrintLines(stdio.Out, cat.Search(args[0]))
			return nil
		},
	}
	cmd.Flags().BoolVar(&installedOnly, "installed", false, "search only the store")
	return cmd
}

func newInfoCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "info PKG...",
		Short: "describe packages: version, size, dependencies, repository",
		Long: `info prints, for each PKG (a name, name-arch or full name; - reads
them from standard input), "key: value" lines: full name, version,
image size in bytes, whether it is installed, the repository offering
it, its runtime dependencies and the packages that depend on it, with
an empty line between packages. A name means its newest revision,
installed or available. It creates and locks nothing.

Examples:
  % distri-install info hello
  name: hello-amd64-2.12-1
  version: 2.12-1
  size: 69632
  installed: true
  repository: http://127.0.0.1:7080
  depends: glibc-amd64-2.36-9
  required-by:`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: g.completeNames(stdio, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, err := cli.ReadArgs(args, stdio.In)
			if err != nil {
				return err
			}
			cat, _, err := g.catalog(cmd.Context(), stdio, g.hasRepos())
			if err != nil {
				return err
			}
			for i, name := range args {
				info, err := cat.Info(name)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(stdio.Out)
				}
				cli.PrintLines(stdio.Out, info.Lines())
			}
			return nil
		},
	}
}

func newFilesCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "files PKG...",
		Short: "print the files of installed packages",
		Long: `files prints the path under /ro of every file and symlink of each
installed PKG (a name means its newest installed revision; - reads names
from standard input), one a line, sorted; directories are left out. It
reads the package images in the store, so distri-fuse need not run, and
creates and locks nothing.

Examples:
  % distri-install files hello
  /ro/hello-amd64-2.12-1/bin/hello
  /ro/hello-amd64-2.12-1/out/bin/hello
  % distri-install files hello | xargs distri-install owner`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: g.completeNames(stdio, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, err := cli.ReadArgs(args, stdio.In)
			if err != nil {
				return err
			}
			cat, in, err := g.catalog(cmd.Context(), stdio, false)
			if err != nil {
				return err
			}
			for _, name := range args {
				full, err := cat.Resolve(name)
				if err != nil {
					return fmt.Errorf("files: %w (not installed)", err)
				}
				files, err := query.Files(in.Store(), full)
				if err != nil {
					return err
				}
				cli.PrintLines(stdio.Out, files)
			}
			return nil
		},
	}
}

func newOwnerCmd(g *globalOpts, stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "owner PATH...",
		Short: "print the installed package that provides a path",
		Long: `owner prints, for each PATH (- reads them from standard input), the full
name of the installed package that provides it: for an exchange entry
such as /ro/bin/bash (or /bin/bash, through the root's symlinks) the
package whose file /ro serves there, conflicts resolved as distri-fuse
resolves them; for a path below /ro/FULL/ that package; for an
exchange directory every package with entries below it. With --root /
and distri-fuse serving /ro it asks the mount (as distri-fuse owner
does); otherwise it reads the store of ROOT, PATH being as seen inside
ROOT. It prints only names, one a line, in the order of the PATHs, so
that its output feeds other commands (sort -u to merge). It creates and
locks nothing.

Examples:
  % distri-install owner /bin/bash
  bash-amd64-5.2.15-3
  % distri-install --root /mnt owner /ro/lib/libz.so.1
  zlib-amd64-1.3-4`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, err := cli.ReadArgs(args, stdio.In)
			if err != nil {
				return err
			}
			in, err := g.reader(stdio)
			if err != nil {
				return err
			}
			for _, p := range args {
				owners, err := owner(g.root, in, p)
				if err != nil {
					return err
				}
				cli.PrintLines(stdio.Out, owners)
			}
			return nil
		},
	}
}

// owner asks a mounted /ro when the root is this machine's, else (or if
// no distri-fuse serves the path) the store.
func owner(root string, in *install.Installer, p string) ([]string, error) {
	if root == "/" {
		owners, err := fusefs.Owner(p)
		if err == nil || errors.Is(err, fusefs.ErrNoOwner) {
			return owners, err
		}
	}
	return query.Owner(root, in.Store(), p)
}
