package mirror

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// TestProvidesEmptyDirectory: an empty directory a package ships under an
// exchange directory (automake's out/share/aclocal) is in the index's
// provides, with a trailing slash, as lib/pack writes it into the meta;
// before, the index listed files only and the directory was lost.
func TestProvidesEmptyDirectory(t *testing.T) {
	fsys := fstest.MapFS{
		"out/bin/automake-1.16":  {Data: []byte("perl")},
		"out/share/aclocal":      {Mode: fs.ModeDir | 0o755},
		"out/share/doc/x/README": {Data: []byte("doc")},
	}
	got, err := Provides(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin/automake-1.16", "share/aclocal/", "share/doc/x/README"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Provides mismatch (-want +got):\n%s", diff)
	}
}
