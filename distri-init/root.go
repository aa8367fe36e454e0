// Command distri-init is the init process (PID 1) of distri, both in the
// initramfs (find the root, unlock LUKS, switch root) and in the booted
// system (start /ro, then run the system).
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "distri-init",
		Short: "distri's PID 1",
		Long: `distri-init is PID 1 in the distri initramfs and in the booted system.

Booting arrives with the init work; this release provides --help and
--version only.`,
	}
}
