package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/mirror"
)

type keygenOptions struct {
	output string
	force  bool
}

func (o *keygenOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.output, "output", "o", "", "write the key pair as NAME.pub and NAME.key (required)")
	fs.BoolVar(&o.force, "force", false, "replace existing key files")
}

func newKeygenCmd(stdio cli.Stdio) *cobra.Command {
	var opts keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen -o NAME",
		Short: "make a key pair to sign repositories with",
		Long: `keygen makes an Ed25519 key pair in minisign's formats: NAME.pub, the
public key installers trust (distri-install --pubkey, or a file in
<root>/etc/distri/keys/), and NAME.key, the unencrypted secret key
(mode 0600) that distri-mirror index signs with. It prints both paths.

The minisign tool reads both files: minisign -V -p NAME.pub verifies a
repository's index, and a key made by minisign -G -W signs with
distri-mirror index.

Examples:
  % distri-mirror keygen -o distri
  distri.pub
  distri.key
  % minisign -V -p distri.pub -m repo/pkg/index`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeygen(opts, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func runKeygen(opts keygenOptions, stdio cli.Stdio) error {
	if opts.output == "" {
		return cli.Usagef("--output is required")
	}
	pub, key, err := mirror.Keygen(opts.output, opts.force)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, pub)
	fmt.Fprintln(stdio.Out, key)
	return nil
}
