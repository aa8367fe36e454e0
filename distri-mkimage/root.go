// Command distri-mkimage makes root file system trees, bootable disk
// images (optionally encrypted), initramfs archives and container, cloud
// and VM images from distri packages.
package main

import (
	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "distri-mkimage",
		Short: "make root trees, disk images and initramfs archives",
		Long: `distri-mkimage assembles images from distri packages: root file system
trees, GPT disk images, initramfs archives, and GCE, docker, LXD,
VirtualBox and qcow2 outputs.

Each command prints the path of what it wrote on stdout.

Examples:
  % distri-mkimage root --repo ./repo --pubkey distri.pub -o root base
  % distri-mkimage initramfs --kernel-release 6.1.0-56-cloud-amd64 -o initramfs.img
  % distri-mkimage disk -o distri-disk.img --root root --kernel vmlinuz --initramfs initramfs.img
  % distri-mkimage docker --root root -o distri-docker.tar
  % distri-mkimage vdi distri-disk.img -o distri.vdi`,
	}
	root.AddCommand(
		newRootTreeCmd(stdio),
		newInitramfsCmd(stdio),
		newDiskCmd(stdio),
		newDockerCmd(stdio),
		newLXDCmd(stdio),
		newGCECmd(stdio),
		newConvertCmd(stdio, "vdi", "a VirtualBox VDI image"),
		newConvertCmd(stdio, "qcow2", "a QEMU qcow2 image"),
	)
	return root
}
