package debian

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// MaxControlFile bounds each file read from a .deb's control.tar: the
// maintainer scripts and control files of real packages are a few KiB
// (openssh-server's postinst, one of the longest, is 7 KiB).
const MaxControlFile = 1 << 20

// ReadControl returns the regular files of the control.tar.* member of
// the .deb at debPath (control, postinst, preinst, prerm, postrm,
// conffiles, triggers, …), by base name. Each is read up to
// [MaxControlFile] bytes; a larger one is an error naming it.
func ReadControl(debPath string) (map[string][]byte, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files, err := readControl(f)
	if err != nil {
		return nil, fmt.Errorf("control of %s: %w", debPath, err)
	}
	return files, nil
}

func readControl(r io.Reader) (map[string][]byte, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		return nil, errors.New("not an ar archive (a .deb)")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if err == io.EOF {
				return nil, errors.New("no control.tar member")
			}
			return nil, fmt.Errorf("read ar header: %w", err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, errors.New("corrupt ar header")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("ar member %q: bad size", name)
		}
		if strings.HasPrefix(name, "control.tar") {
			return untarControl(io.LimitReader(br, size), name)
		}
		if _, err := io.CopyN(io.Discard, br, size+size%2); err != nil {
			return nil, fmt.Errorf("ar member %q: %w", name, err)
		}
	}
}

func untarControl(r io.Reader, member string) (map[string][]byte, error) {
	var tr io.Reader
	switch member {
	case "control.tar":
		tr = r
	case "control.tar.gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		tr = zr
	case "control.tar.xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		tr = zr
	case "control.tar.zst":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		defer zr.Close()
		tr = zr
	default:
		return nil, fmt.Errorf("ar member %q: unknown compression", member)
	}
	files := make(map[string][]byte)
	t := tar.NewReader(tr)
	for {
		h, err := t.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Base(path.Clean(h.Name))
		if h.Size > MaxControlFile {
			return nil, fmt.Errorf("%s: %s is %d bytes (more than %d)", member, name, h.Size, MaxControlFile)
		}
		b, err := io.ReadAll(io.LimitReader(t, MaxControlFile))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", member, name, err)
		}
		files[name] = b
	}
}
