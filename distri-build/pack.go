package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/env"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/squashfs"
)

type packOptions struct {
	name        string
	meta        string
	outDir      string
	compression string
	level       int
}

func (o *packOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.name, "name", "", "full package name, e.g. hello-amd64-2.12-1 (required)")
	fs.StringVar(&o.meta, "meta", "", "meta.textproto to package with the image (default: one made from --name)")
	fs.StringVarP(&o.outDir, "output", "o", ".", "directory to write <name>.squashfs and <name>.meta.textproto into")
	fs.StringVar(&o.compression, "compression", "none", "image compression: none, zstd or gzip (distri compresses on the wire, so none is usual)")
	fs.IntVar(&o.level, "level", 0, "compression level (0: the compressor's default)")
}

func newPackCmd(stdio cli.Stdio) *cobra.Command {
	var opts packOptions
	cmd := &cobra.Command{
		Use:   "pack --name FULLNAME [--meta FILE] DIR -o OUTDIR",
		Short: "turn a directory tree into a package",
		Long: `pack writes DIR as the SquashFS image OUTDIR/FULLNAME.squashfs and a meta
file OUTDIR/FULLNAME.meta.textproto beside it, and prints the image's path.

The image is reproducible: the same tree gives the same bytes. Time stamps
come from the tree; with SOURCE_DATE_EPOCH set, it is the image's time and
no mtime in the image is newer.

Examples:
  % distri-build pack --name hello-amd64-2.12-1 destdir/ -o repo/pkg
  repo/pkg/hello-amd64-2.12-1.squashfs
  % SOURCE_DATE_EPOCH=1700000000 distri-build pack --compression zstd \
      --name hello-amd64-2.12-1 --meta hello.meta.textproto destdir/ -o out/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPack(opts, args[0], stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagRequired("name")
	return cmd
}

func runPack(opts packOptions, dir string, stdio cli.Stdio) error {
	e, err := env.Load()
	if err != nil {
		return err
	}
	comp, err := squashfs.ParseCompression(opts.compression)
	if err != nil {
		return cli.Usagef("--compression: %v", err)
	}
	image, err := pack.Pack(pack.Options{
		Name:     opts.name,
		Dir:      dir,
		MetaFile: opts.meta,
		OutDir:   opts.outDir,
		Image: squashfs.WriterOptions{
			Compression:     comp,
			Level:           opts.level,
			SourceDateEpoch: e.SourceDateEpoch,
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, image)
	return nil
}
