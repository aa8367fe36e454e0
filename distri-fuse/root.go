// Command distri-fuse serves a distri package store as the /ro file
// system: every package under /ro/<full name>/, and the exchange
// directories /ro/bin, /ro/lib, /ro/share, … that merge them. It tells a
// running daemon to pick up installed and removed packages (ctl rescan)
// and says which package owns a path (owner). docs/fuse.md has the
// details.
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	var opts serveOptions
	root := &cobra.Command{
		Use:   "distri-fuse [--store /roimg] [--readiness-fd N] MOUNTPOINT",
		Short: "serve a package store as /ro",
		Long: `distri-fuse mounts the package store (a folder of <full>.squashfs images
and their <full>.meta.textproto files) at MOUNTPOINT, normally /ro, and
serves it until SIGTERM, SIGINT or umount. It prints MOUNTPOINT on stdout
once the mount is ready.

MOUNTPOINT shows:
  <full>/       every package, e.g. /ro/bash-amd64-5.2.15-3/out/bin/bash;
                its image is opened on first access
  bin/ lib/ …   exchange directories: symlinks into the packages, the newest
                revision of each package; between different packages that
                ship the same path, the package whose <name>-<arch> sorts
                first wins (ask "distri-fuse owner PATH")
  .ctl          symlink to the control socket

SIGHUP or "distri-fuse ctl rescan" make the daemon rescan the store.

The kernel opens files and directories without asking the daemon and
keeps what it read in its caches: a cached package is read and listed at
the kernel's own speed. With --passthrough, every open goes to the daemon,
which (as root, where the kernel offers FUSE passthrough) lets the kernel
read files of 128 KiB or more from its own mount of the image.

Examples:
  % distri-fuse --store /roimg /ro
  /ro
  % distri-fuse ctl rescan /ro
  % distri-fuse owner /bin/bash
  bash-amd64-5.2.15-3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), opts, args[0], stdio)
		},
	}
	opts.addFlags(root.Flags())
	root.AddCommand(
		newCtlCmd(stdio),
		newOwnerCmd(stdio),
	)
	return root
}
