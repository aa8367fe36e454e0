// Package pack turns a directory tree into a distri package: a SquashFS
// image <full>.squashfs and its meta file <full>.meta.textproto, written
// atomically into an output directory.
package pack

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/exchange"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/squashfs"
)

// Options says what to pack and where.
type Options struct {
	// Name is the package's full name, e.g. bash-amd64-5.2.15-3.
	Name string
	// Dir is the tree that becomes the image's root (holding out/, bin/,
	// lib/, etc/), e.g. /tmp/destdir.
	Dir string
	// Meta, if set, is the package's meta; else MetaFile, if set, is a
	// meta.textproto to read it from. Its version must match Name's.
	// Neither means a meta with the version and source package taken from
	// Name. Pack fills in the version, source package and provides.
	Meta     *pb.Meta
	MetaFile string
	// OutDir receives <Name>.squashfs and <Name>.meta.textproto.
	OutDir string
	// Image says how the image is written (compression, time stamps).
	Image squashfs.WriterOptions
}

// Pack writes the package and returns the image's path. The image appears
// under its final name only once complete, and the meta file after it, so
// a reader never sees half a package.
func Pack(opts Options) (string, error) {
	name, err := pkgname.Parse(opts.Name)
	if err != nil {
		return "", fmt.Errorf("package name %q: %w", opts.Name, err)
	}
	if name.String() != opts.Name {
		return "", fmt.Errorf("package name %q: no revision (want <name>-<arch>-<upstream>-<rev>, e.g. %s)", opts.Name, name)
	}
	fi, err := os.Stat(opts.Dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s: not a directory", opts.Dir)
	}
	meta, metaFrom := &pb.Meta{}, "meta"
	switch {
	case opts.Meta != nil:
		meta = proto.CloneOf(opts.Meta)
	case opts.MetaFile != "":
		if meta, err = pb.ReadMetaFile(opts.MetaFile); err != nil {
			return "", err
		}
		metaFrom = opts.MetaFile
	}
	if v := meta.GetVersion(); v != "" && v != name.Version() {
		return "", fmt.Errorf("%s: version %q does not match package %s (version %q)", metaFrom, v, name, name.Version())
	}
	if meta.Version == nil {
		meta.Version = new(name.Version())
	}
	if meta.SourcePkg == nil {
		meta.SourcePkg = new(name.Pkg)
	}
	// What the package adds to /ro/bin, /ro/lib, …, so that serving /ro
	// needs the meta only, not a walk of the image.
	if meta.Provides, err = exchange.Paths(os.DirFS(opts.Dir)); err != nil {
		return "", fmt.Errorf("list exchange paths of %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return "", err
	}
	image := filepath.Join(opts.OutDir, name.String()+".squashfs")
	if err := writeImage(image, opts.Dir, opts.Image); err != nil {
		return "", err
	}
	if err := pb.WriteMetaFile(filepath.Join(opts.OutDir, name.String()+".meta.textproto"), meta); err != nil {
		return "", err
	}
	return image, nil
}

func writeImage(image, dir string, opts squashfs.WriterOptions) error {
	out, err := renameio.NewPendingFile(image, renameio.WithTempDir(filepath.Dir(image)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return err
	}
	defer out.Cleanup()
	if err := squashfs.WriteDir(out.File, dir, opts); err != nil {
		return fmt.Errorf("write image of %s: %w", dir, err)
	}
	return out.CloseAtomicallyReplace()
}
