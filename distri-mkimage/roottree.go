package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/rootfs"
)

type rootOptions struct {
	output     string
	repos      []string
	imageRepos []string
	pubkeys    []string
	init       string
	fuse       string
	hostname   string
	verbose    bool
}

func (o *rootOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.output, "output", "o", "", "root tree to write (required)")
	fs.StringSliceVar(&o.repos, "repo", nil, "repository to install from, a URL or folder (required; repeatable)")
	fs.StringSliceVar(&o.imageRepos, "image-repo", nil, "repository URL the tree's etc/distri/repos.d lists (default: --repo)")
	fs.StringSliceVar(&o.pubkeys, "pubkey", nil, "public key trusted to sign the index (required; repeatable); copied to etc/distri/keys")
	fs.StringVar(&o.init, "init", "", "distri-init binary to install as /init (default: distri-init next to this program)")
	fs.StringVar(&o.fuse, "fuse", "", "distri-fuse binary to install as /distri-fuse (default: distri-fuse next to this program)")
	fs.StringVar(&o.hostname, "hostname", rootfs.DefaultHostname, "etc/hostname")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log progress on stderr")
}

func newRootTreeCmd(stdio cli.Stdio) *cobra.Command {
	var opts rootOptions
	cmd := &cobra.Command{
		Use:   "root --repo R --pubkey K -o DIR PKG...",
		Short: "write a root file system tree: the store, the symlinks into /ro, /init and /etc",
		Long: `root installs the packages with their closures from the repositories into
DIR/roimg and lays out a distri root around the store: /bin, /sbin, /lib,
/include and /share point into /ro (served from /roimg by /distri-fuse),
/usr points to /, /lib64 holds the newest glibc's loader, /init is
distri-init, and /etc has root (password peace), the hostname
(distri0), os-release, fstab, the repository list and the keys. Every
time stamp is fixed: the same inputs give the same tree.

Examples:
  % distri-mkimage root --repo ./repo --pubkey distri.pub -o /tmp/distri-root base
  % distri-mkimage disk -o distri.img --root /tmp/distri-root --kernel vmlinuz --initramfs initramfs.img`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRootTree(cmd.Context(), opts, args, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	for _, f := range []string{"output", "repo", "pubkey"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

// treeOptions returns the rootfs options for opts, with distri-init and
// distri-fuse next to this program unless given.
func (o rootOptions) treeOptions(pkgs []string, logger *log.Logger) (rootfs.Options, error) {
	for _, b := range []*string{&o.init, &o.fuse} {
		if *b != "" {
			continue
		}
		exe, err := os.Executable()
		if err != nil {
			return rootfs.Options{}, err
		}
		name := "distri-init"
		if b == &o.fuse {
			name = "distri-fuse"
		}
		*b = filepath.Join(filepath.Dir(exe), name)
	}
	return rootfs.Options{
		Dir:         o.output,
		Packages:    pkgs,
		Repos:       o.repos,
		ImageRepos:  o.imageRepos,
		PubKeyFiles: o.pubkeys,
		Init:        o.init,
		Fuse:        o.fuse,
		Hostname:    o.hostname,
		Log:         logger,
	}, nil
}

func runRootTree(ctx context.Context, opts rootOptions, pkgs []string, stdio cli.Stdio) error {
	var logger *log.Logger
	if opts.verbose {
		logger = log.New(stdio.Err, "distri-mkimage: ", 0)
	}
	ro, err := opts.treeOptions(pkgs, logger)
	if err != nil {
		return err
	}
	if _, err := rootfs.Make(ctx, ro); err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, opts.output)
	return nil
}
