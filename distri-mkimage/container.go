package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/image"
)

func newDockerCmd(stdio cli.Stdio) *cobra.Command {
	var root, output string
	cmd := &cobra.Command{
		Use:   "docker --root DIR -o FILE.tar",
		Short: "write a root tree as a tar for docker import",
		Long: `docker writes the root tree as a tar for docker import, with
/entrypoint (a symlink to /init, distri-init) added unless the tree has
one. The tar is the same for the same tree: entries sorted, time stamps
fixed, owners as in the tree. The output is replaced atomically.

Examples:
  % distri-mkimage docker --root /tmp/distri-root -o distri-docker.tar
  % docker import distri-docker.tar distri
  % docker run --privileged --entrypoint /entrypoint -ti distri`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := image.Docker(image.DockerOptions{Root: root, Output: output}); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, output)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "root tree, e.g. from distri-mkimage root (required)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "tar file to write (required)")
	cmd.MarkFlagRequired("root")
	cmd.MarkFlagRequired("output")
	return cmd
}

func newLXDCmd(stdio cli.Stdio) *cobra.Command {
	var root, prefix, release string
	cmd := &cobra.Command{
		Use:   "lxd --root DIR -o PREFIX",
		Short: "write a root tree as an LXD split image (metadata tar and rootfs tar)",
		Long: `lxd writes PREFIX-metadata.tar (metadata.yaml) and PREFIX-rootfs.tar
(the root tree), and prints both paths in the order lxc image import
takes them. LXD starts /sbin/init, which lives in /ro: point the
container at /init instead.

Examples:
  % distri-mkimage lxd --root /tmp/distri-root -o /tmp/distri
  % lxc image import /tmp/distri-metadata.tar /tmp/distri-rootfs.tar --alias distri
  % lxc init distri distri-01
  % lxc config set distri-01 raw.lxc lxc.init.cmd=/init`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			meta, rootfs, err := image.LXD(image.LXDOptions{Root: root, Prefix: prefix, Release: release})
			if err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, meta)
			fmt.Fprintln(stdio.Out, rootfs)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "root tree, e.g. from distri-mkimage root (required)")
	cmd.Flags().StringVarP(&prefix, "output", "o", "", "output prefix: writes PREFIX-metadata.tar and PREFIX-rootfs.tar (required)")
	cmd.Flags().StringVar(&release, "release", "distri", "release property in metadata.yaml")
	cmd.MarkFlagRequired("root")
	cmd.MarkFlagRequired("output")
	return cmd
}
