package main

import (
	"fmt"
	"log"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
)

type indexOptions struct {
	key      string
	jobs     int
	verbose  bool
	validFor time.Duration
	name     string
}

func (o *indexOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.key, "key", "", "secret key to sign the index with, e.g. distri.key (required)")
	fs.IntVarP(&o.jobs, "jobs", "j", 0, "files to hash and compress at once (0: one per CPU)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log each file hashed or compressed")
	fs.DurationVar(&o.validFor, "valid-for", 0, "sign the index to expire after this long, e.g. 168h (0: never); clients refuse an expired index")
	fs.StringVar(&o.name, "name", "", "sign the index for the repository NAME (repos.d name=NAME); clients configured with another name refuse it")
}

func newIndexCmd(stdio cli.Stdio) *cobra.Command {
	var opts indexOptions
	cmd := &cobra.Command{
		Use:   "index --key NAME.key [--name NAME] [--valid-for DURATION] REPO",
		Short: "index and sign a folder of packages",
		Long: `index turns REPO/pkg, a folder of <full>.squashfs and
<full>.meta.textproto files, into a repository: it writes REPO/pkg/index
and its signature REPO/pkg/index.minisig, a copy of each package's newest
meta as <name>-<arch>.meta.textproto, and .zst and .gz siblings of the
index, the metas and the images. It prints the index's path.

Run it again after adding packages: it hashes and compresses only files
that are new or changed (by name, size and mtime; REPO/pkg/.index-cache).

The signature's trusted comment carries the time of signing (clients
refuse an index older than one they accepted before), the repository's
name with --name (clients whose repos.d entry says another name=, refuse
it) and an expiry with --valid-for (clients refuse it afterwards: re-run
index, e.g. daily from cron, well within the validity).

Examples:
  % distri-mirror index --key distri.key repo/
  repo/pkg/index
  % distri-build pack --name hello-amd64-2.12-2 destdir/ -o repo/pkg
  % distri-mirror index -v --key distri.key repo/
  % distri-mirror index --key distri.key --name distri --valid-for 168h repo/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runIndex(opts, args[0], stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func runIndex(opts indexOptions, repo string, stdio cli.Stdio) error {
	if opts.key == "" {
		return cli.Usagef("--key is required")
	}
	if opts.validFor < 0 {
		return cli.Usagef("--valid-for %v: negative", opts.validFor)
	}
	key, err := minisign.ReadPrivateKeyFile(opts.key)
	if err != nil {
		return err
	}
	var logger *log.Logger
	if opts.verbose {
		logger = log.New(stdio.Err, "", 0)
	}
	p, err := mirror.Index(mirror.IndexOptions{Repo: repo, Key: key, Parallel: opts.jobs, Log: logger, ValidFor: opts.validFor, Name: opts.name})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, p)
	return nil
}
