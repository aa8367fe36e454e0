package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
)

// GCE writes output, a gzipped GNU tar holding the raw disk image disk
// as disk.raw, which is what Google Compute Engine imports (`gcloud
// compute images create --source-uri`). The tar is not sparse: the
// zeros of the image's holes compress to almost nothing. The output is
// the same for the same disk, and replaced atomically.
func GCE(ctx context.Context, disk, output string) error {
	f, err := os.Open(disk)
	if err != nil {
		return fmt.Errorf("gce image: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("gce image: %s is not a file", disk)
	}
	return writeAtomic(output, func(w io.Writer) error {
		// The gzip header carries no name and no time.
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		if err := tw.WriteHeader(&tar.Header{
			Name:     "disk.raw",
			Typeflag: tar.TypeReg,
			Mode:     0o644,
			Size:     fi.Size(),
			ModTime:  archiveTime,
			Format:   tar.FormatGNU,
		}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, &ctxReader{ctx: ctx, r: f}); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	})
}

// ConvertFormats are the formats Convert writes: qemu-img's names.
var ConvertFormats = []string{"qcow2", "vdi"}

// Convert writes the raw disk image disk as output in format (qcow2 or
// vdi, for VirtualBox) with qemu-img convert (Debian's qemu-utils). The
// output is replaced atomically.
func Convert(ctx context.Context, disk, output, format string) (err error) {
	switch format {
	case "qcow2", "vdi":
	default:
		return fmt.Errorf("convert: unknown format %q (want qcow2 or vdi)", format)
	}
	if _, err := os.Stat(disk); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("convert: %w (install qemu-utils)", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".tmp*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	cmd := exec.CommandContext(ctx, qemuImg, "convert", "-q", "-f", "raw", "-O", format, disk, tmp.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w: %s", cmd.Args, err, out)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), output)
}
