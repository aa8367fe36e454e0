package source

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Extract unpacks archive into dst, which must not exist yet: every build
// gets a fresh tree, never one left over from an earlier build. name is
// the archive's name (its source location), whose suffix gives the
// format: .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz, .tar.zst, .tar, or
// .deb (whose data.tar.* member is unpacked).
//
// Tarballs lose their first path component (tar --strip-components=1),
// as upstream tarballs hold one top-level directory; .deb contents are
// unpacked as they are. Entries with absolute paths or ".." components
// are rejected, and all writes go through an [os.Root], so a symlink in
// the archive cannot redirect a later entry outside dst. Files keep the
// archive's permission bits except setuid, setgid and sticky, and its
// modification times; device nodes and fifos are skipped.
func Extract(archive, name, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("extract %s: %s already exists (extraction always starts fresh)", name, dst)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	base := path.Base(name)
	if strings.HasSuffix(base, ".deb") {
		r, member, err := debData(f)
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		tr, err := decompress(r, member)
		if err != nil {
			return fmt.Errorf("extract %s: %s: %w", name, member, err)
		}
		defer tr.Close()
		return untar(tr, dst, 0, name)
	}
	r, err := decompress(bufio.NewReader(f), base)
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	defer r.Close()
	return untar(r, dst, 1, name)
}

// decompress returns a reader of the tar stream inside r, by name suffix.
func decompress(r io.Reader, name string) (io.ReadCloser, error) {
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case strings.HasSuffix(name, ".tar.bz2"), strings.HasSuffix(name, ".tbz2"):
		return io.NopCloser(bzip2.NewReader(r)), nil
	case strings.HasSuffix(name, ".tar.xz"), strings.HasSuffix(name, ".txz"):
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(zr), nil
	case strings.HasSuffix(name, ".tar.zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case strings.HasSuffix(name, ".tar"):
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown archive format of %q (want .tar.gz, .tgz, .tar.bz2, .tar.xz, .tar.zst, .tar or .deb)", name)
}

// debData finds the data.tar.* member of the ar archive r (a .deb) and
// returns a reader of it and its name.
func debData(r io.Reader) (io.Reader, string, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		return nil, "", errors.New("not an ar archive")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if err == io.EOF {
				return nil, "", errors.New("no data.tar member")
			}
			return nil, "", fmt.Errorf("read ar header: %w", err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, "", errors.New("corrupt ar header")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return nil, "", fmt.Errorf("ar member %q: bad size", name)
		}
		if strings.HasPrefix(name, "data.tar") {
			return io.LimitReader(br, size), name, nil
		}
		if _, err := io.CopyN(io.Discard, br, size+size%2); err != nil {
			return nil, "", fmt.Errorf("ar member %q: %w", name, err)
		}
	}
}

// cleanName returns the path of a tar entry relative to the extraction
// root after stripping strip leading components, "" to skip the entry.
func cleanName(name string, strip int) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("entry %q: absolute path", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("entry %q: path escapes the extraction directory", name)
		}
	}
	p := path.Clean(name)
	if p == "." {
		return "", nil
	}
	els := strings.Split(p, "/")
	if len(els) <= strip {
		return "", nil
	}
	return strings.Join(els[strip:], "/"), nil
}

func untar(r io.Reader, dst string, strip int, name string) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		if err := extractEntry(root, tr, h, strip); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
	}
}

func extractEntry(root *os.Root, tr *tar.Reader, h *tar.Header, strip int) error {
	p, err := cleanName(h.Name, strip)
	if err != nil || p == "" {
		return err
	}
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	perm := os.FileMode(h.Mode) & 0o777
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(p, 0o755); err != nil {
			return err
		}
		return root.Chmod(p, perm|0o700)
	case tar.TypeReg, tar.TypeRegA:
		root.Remove(p)
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		// Keep the archive's time stamps, so that packages are reproducible.
		return root.Chtimes(p, h.ModTime, h.ModTime)
	case tar.TypeSymlink:
		root.Remove(p)
		return root.Symlink(h.Linkname, p)
	case tar.TypeLink:
		target, err := cleanName(h.Linkname, strip)
		if err != nil {
			return err
		}
		if target == "" {
			return fmt.Errorf("entry %q: bad hard link target %q", h.Name, h.Linkname)
		}
		root.Remove(p)
		return root.Link(target, p)
	case tar.TypeXGlobalHeader, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return nil // device nodes and fifos have no place in a package
	}
	return fmt.Errorf("entry %q: unsupported type %q", h.Name, h.Typeflag)
}

// Prepare extracts the archive into dst (see [Extract]), applies the
// patches in order with patch -p1 and copies the extra files into dst.
// Patch and extra file names are relative to dir, the recipe directory.
//
// Patched and extra files get the time stamp of the newest file of the
// archive, not the time of the build, so that what the build derives from
// the source's times (SOURCE_DATE_EPOCH, the package's time stamps) is
// the same every time.
func Prepare(archive, name, dst, dir string, patches, extraFiles []string) error {
	if err := Extract(archive, name, dst); err != nil {
		return err
	}
	newest, err := NewestMtime(dst)
	if err != nil {
		return err
	}
	for _, p := range patches {
		if err := applyPatch(dst, pathJoin(dir, p)); err != nil {
			return err
		}
	}
	for _, e := range extraFiles {
		b, err := os.ReadFile(pathJoin(dir, e))
		if err != nil {
			return err
		}
		if err := os.WriteFile(pathJoin(dst, path.Base(e)), b, 0o644); err != nil {
			return err
		}
	}
	return clampMtimes(dst, newest)
}

// NewestMtime returns the newest mtime of the regular files under dir
// (after Extract, the archive's time stamps), or 1970-01-01 00:00:01
// without any.
func NewestMtime(dir string) (time.Time, error) {
	newest := time.Unix(1, 0)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return err
	})
	return newest, err
}

// clampMtimes sets the mtime of files and directories under dir that are
// newer than t to t.
func clampMtimes(dir string, t time.Time) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().After(t) {
			return err
		}
		return os.Chtimes(p, t, t)
	})
}

func pathJoin(dir, p string) string {
	if path.IsAbs(p) {
		return p
	}
	return path.Join(dir, p)
}

var errNoPatch = errors.New("patch not in $PATH")

// applyPatch runs the host's patch(1): patch -p1 --batch --forward.
func applyPatch(dst, patchFile string) error {
	b, err := os.ReadFile(patchFile)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := runPatch(dst, b, &out); err != nil {
		return fmt.Errorf("apply %s: %w\n%s", patchFile, err, out.String())
	}
	return nil
}
