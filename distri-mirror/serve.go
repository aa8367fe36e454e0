package main

import (
	"context"
	"fmt"
	"log"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/mirror"
)

type serveOptions struct {
	listen string
}

func (o *serveOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "localhost:7080", "address to listen on; port 0 picks a free one")
}

func newServeCmd(stdio cli.Stdio) *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] REPO",
		Short: "serve a repository over HTTP",
		Long: `serve serves the repository folder REPO over HTTP until SIGINT or
SIGTERM. It prints its URL on stdout once it accepts connections.

Files are sent precompressed (X.zst as Content-Encoding: zstd, X.gz as
gzip) to clients that accept it; Range, If-Range, ETag/If-None-Match and
Last-Modified/If-Modified-Since work. docs/repository.md shows an nginx
configuration that serves the same folder the same way.

Examples:
  % distri-mirror serve --listen 127.0.0.1:7080 repo/
  http://127.0.0.1:7080
  % distri-mirror serve --listen 127.0.0.1:0 repo/ &`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), opts, args[0], stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func runServe(ctx context.Context, opts serveOptions, repo string, stdio cli.Stdio) error {
	return mirror.Serve(ctx, mirror.ServeOptions{
		Repo:   repo,
		Listen: opts.listen,
		Ready:  func(url string) { fmt.Fprintln(stdio.Out, url) },
		Log:    log.New(stdio.Err, "", 0),
	})
}
