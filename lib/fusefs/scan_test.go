package fusefs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/pb"
)

// TestBadProvidesIgnored: a meta whose provides would make an exchange
// symlink that leaves its package (bin/../../../etc/shadow) or carries a
// newline gets no such entry; its good entries stay.
func TestBadProvidesIgnored(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "evil-amd64-1-1", map[string]string{"bin/evil": "x"}, nil)
	mf := filepath.Join(store, "evil-amd64-1-1"+metaSuffix)
	m, err := pb.ReadMetaFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	m.Provides = []string{"bin/evil", "bin/../../../etc/shadow", "bin/a\nb", "/bin/sh"}
	if err := pb.WriteMetaFile(mf, m); err != nil {
		t.Fatal(err)
	}
	_, mnt, logs := mountStore(t, store)
	ents, err := os.ReadDir(filepath.Join(mnt, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"evil"}, names); diff != "" {
		t.Errorf("/ro/bin mismatch (-want +got):\n%s", diff)
	}
	for _, d := range []string{"etc", "sh"} {
		if _, err := os.Lstat(filepath.Join(mnt, d)); err == nil {
			t.Errorf("/ro/%s exists", d)
		}
	}
	if got := countLines(logs.String(), "entry ignored"); got != 3 {
		t.Errorf("log has %d ignored entries, want 3:\n%s", got, logs)
	}
}
