package image

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// Entrypoint is the path of the docker image's entry point, as the
// original's `docker run --entrypoint /entrypoint` uses it.
const Entrypoint = "/entrypoint"

// DockerOptions describe a root file system tar for `docker import`.
type DockerOptions struct {
	// Root is a root tree, e.g. from distri-mkimage root.
	Root string
	// Output is the tar file to write, e.g. distri-docker.tar; replaced
	// atomically.
	Output string
}

// Docker writes the tree at opts.Root as a tar for `docker import`, plus
// /entrypoint (unless the tree has one): a symlink to /init,
// distri-init, which started under that name serves /ro from /roimg
// with /distri-fuse and then execs its arguments (default /bin/sh).
// The tar is deterministic (see treeTar).
func Docker(opts DockerOptions) error {
	if err := checkTree(opts.Root); err != nil {
		return fmt.Errorf("docker tar: %w", err)
	}
	_, err := os.Lstat(filepath.Join(opts.Root, Entrypoint))
	hasEntrypoint := err == nil
	return writeAtomic(opts.Output, func(w io.Writer) error {
		t := newTreeTar(w)
		if err := t.addTree(opts.Root); err != nil {
			return err
		}
		if !hasEntrypoint {
			// Appended after the tree: tar extracts it all the same, and
			// the tree's own order stays sorted.
			if err := t.addSymlink("."+Entrypoint, "/init"); err != nil {
				return err
			}
		}
		return t.close()
	})
}

// LXDOptions describe an LXD split image: a root file system tar and a
// metadata tar, for `lxc image import META ROOTFS`.
type LXDOptions struct {
	// Root is a root tree, e.g. from distri-mkimage root.
	Root string
	// Prefix names the outputs PREFIX-rootfs.tar and PREFIX-metadata.tar,
	// e.g. /tmp/distri-lxd.
	Prefix string
	// Release goes into the metadata's properties; empty means "distri".
	Release string
	// Arch is the LXD architecture name; empty means this machine's
	// (x86_64, aarch64 or i686).
	Arch string
}

// LXD writes an LXD split image of opts.Root and returns the paths of
// the metadata tar and the rootfs tar, in the order `lxc image import`
// takes them. LXD runs /sbin/init by default, which is in /ro: set
// `lxc config set NAME raw.lxc lxc.init.cmd=/init` on the container.
func LXD(opts LXDOptions) (metadata, rootfs string, err error) {
	if err := checkTree(opts.Root); err != nil {
		return "", "", fmt.Errorf("lxd image: %w", err)
	}
	arch := opts.Arch
	if arch == "" {
		arch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686"}[runtime.GOARCH]
	}
	release := opts.Release
	if release == "" {
		release = "distri"
	}
	// The creation date is the archives' fixed time, for determinism.
	yaml := fmt.Sprintf("architecture: %s\ncreation_date: %d\nproperties:\n"+
		"  description: distri\n  os: distri\n  release: %s\ntemplates: {}\n",
		arch, archiveTime.Unix(), release)
	metadata, rootfs = opts.Prefix+"-metadata.tar", opts.Prefix+"-rootfs.tar"
	if err := writeAtomic(metadata, func(w io.Writer) error {
		t := newTreeTar(w)
		if err := t.addFile("metadata.yaml", 0o644, []byte(yaml)); err != nil {
			return err
		}
		return t.close()
	}); err != nil {
		return "", "", err
	}
	if err := writeAtomic(rootfs, func(w io.Writer) error {
		t := newTreeTar(w)
		if err := t.addTree(opts.Root); err != nil {
			return err
		}
		return t.close()
	}); err != nil {
		return "", "", err
	}
	return metadata, rootfs, nil
}
