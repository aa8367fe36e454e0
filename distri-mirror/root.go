// Command distri-mirror turns a folder of distri packages into a signed
// repository (index), makes the key that signs it (keygen) and serves
// repositories over HTTP (serve). docs/repository.md describes the
// repository format and an equivalent nginx configuration.
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "distri-mirror",
		Short: "make and serve signed package repositories",
		Long: `distri-mirror makes signed repositories from folders of packages and
serves them over HTTP.

A repository is a folder whose pkg/ holds <full>.squashfs and
<full>.meta.textproto files. index writes pkg/index (every package with
its sizes, sha256s, dependency closure and exchange paths), signs it
(pkg/index.minisig, minisign's format), writes the pointer metas for
unqualified names and precompressed .zst and .gz siblings.

Examples:
  % distri-mirror keygen -o distri
  distri.pub
  distri.key
  % distri-mirror index --key distri.key repo/
  repo/pkg/index
  % distri-mirror serve --listen 127.0.0.1:7080 repo/
  http://127.0.0.1:7080`,
	}
	root.AddCommand(
		newKeygenCmd(stdio),
		newIndexCmd(stdio),
		newServeCmd(stdio),
		newReleaseCmd(stdio),
	)
	return root
}
