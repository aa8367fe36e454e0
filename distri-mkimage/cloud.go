package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/image"
)

func newGCECmd(stdio cli.Stdio) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "gce -o FILE.tar.gz DISK",
		Short: "write a disk image as a tar.gz holding disk.raw, for Google Compute Engine",
		Long: `gce writes the raw disk image DISK (from distri-mkimage disk) as a gzipped
GNU tar holding disk.raw, the form Google Compute Engine imports. The
output is replaced atomically.

Examples:
  % distri-mkimage gce -o distri-gce.tar.gz distri-disk.img
  % gsutil cp distri-gce.tar.gz gs://distri-gce
  % gcloud compute images create distri0 --source-uri gs://distri-gce/distri-gce.tar.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := image.GCE(cmd.Context(), args[0], output); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "tar.gz file to write (required)")
	cmd.MarkFlagRequired("output")
	return cmd
}

// newConvertCmd returns the verb that converts a raw disk image to
// format with qemu-img: vdi (VirtualBox) or qcow2.
func newConvertCmd(stdio cli.Stdio, format, what string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   format + " DISK -o FILE." + format,
		Short: "convert a raw disk image to " + what + " (qemu-img)",
		Long: format + ` writes the raw disk image DISK (from distri-mkimage disk) as ` + what + `,
with qemu-img convert (Debian package qemu-utils). The output is
replaced atomically.

Examples:
  % distri-mkimage ` + format + ` distri-disk.img -o distri.` + format,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := image.Convert(cmd.Context(), args[0], output, format); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (required)")
	cmd.MarkFlagRequired("output")
	return cmd
}
