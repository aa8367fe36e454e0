// Command distri-mkimage makes root file system trees, bootable disk
// images (optionally encrypted), initramfs archives and container, cloud
// and VM images from distri packages.
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "distri-mkimage",
		Short: "make root trees, disk images and initramfs archives",
		Long: `distri-mkimage assembles images from distri packages: root file system
trees, GPT disk images, initramfs archives, and GCE, docker, LXD,
VirtualBox and qcow2 outputs.

Image making arrives with the image work; this release provides --help
and --version only.`,
	}
}
