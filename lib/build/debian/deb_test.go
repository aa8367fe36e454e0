package debian

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// makeDeb writes an ar archive with debian-binary, control.tar.gz
// holding files, and an empty data.tar.
func makeDeb(t *testing.T, files map[string]string) string {
	t.Helper()
	var ctl bytes.Buffer
	zw := gzip.NewWriter(&ctl)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(content))})
		tw.Write([]byte(content))
	}
	tw.Close()
	zw.Close()
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		b    []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctl.Bytes()}, {"data.tar", make([]byte, 1024)}} {
		fmt.Fprintf(&ar, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m.name, "0", "0", "0", "100644", len(m.b))
		ar.Write(m.b)
		if len(m.b)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	p := filepath.Join(t.TempDir(), "x.deb")
	if err := os.WriteFile(p, ar.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadControl(t *testing.T) {
	deb := makeDeb(t, map[string]string{"control": "Package: x\n", "postinst": "#!/bin/sh\nadduser --system x\n"})
	files, err := ReadControl(deb)
	if err != nil {
		t.Fatal(err)
	}
	if string(files["postinst"]) != "#!/bin/sh\nadduser --system x\n" || string(files["control"]) != "Package: x\n" || len(files) != 2 {
		t.Errorf("files %q", files)
	}
}

// TestReadControlBad attacks the reader with a script over the size
// bound and with files that are not .debs: each is an error naming the
// file, not a partial result.
func TestReadControlBad(t *testing.T) {
	huge := makeDeb(t, map[string]string{"postinst": strings.Repeat("x", MaxControlFile+1)})
	if _, err := ReadControl(huge); err == nil || !strings.Contains(err.Error(), "postinst is") || !strings.Contains(err.Error(), huge) {
		t.Errorf("oversized postinst: err %v", err)
	}
	notDeb := filepath.Join(t.TempDir(), "y.deb")
	os.WriteFile(notDeb, []byte("not an archive at all, but long enough"), 0o644)
	if _, err := ReadControl(notDeb); err == nil || !strings.Contains(err.Error(), "not an ar archive") {
		t.Errorf("not a deb: err %v", err)
	}
	noCtl := filepath.Join(t.TempDir(), "z.deb")
	os.WriteFile(noCtl, []byte("!<arch>\n"), 0o644)
	if _, err := ReadControl(noCtl); err == nil || !strings.Contains(err.Error(), "no control.tar") {
		t.Errorf("no control member: err %v", err)
	}
}
