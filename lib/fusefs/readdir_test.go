package fusefs

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// A listing read in two parts, with a rescan that changed the directory
// in between, repeats no name and skips none that is in both listings.
func TestListDirOffsetsSurviveChanges(t *testing.T) {
	mk := func(names []string) listDir {
		var es []fuse.DirEntry
		for _, n := range names {
			es = append(es, fuse.DirEntry{Name: n})
		}
		return newListDir(1, 1, es)
	}
	var before, after []string
	for i := range 500 {
		name := fmt.Sprintf("lib%03d.so", i)
		if i%7 != 0 {
			before = append(before, name)
		}
		if i%5 != 0 {
			after = append(after, name)
		}
	}
	for cut := 0; cut <= len(before)+2; cut += 37 {
		d := mk(before)
		var got []string
		var off uint64
		for range cut {
			e, _ := d.Readdirent(t.Context())
			if e == nil {
				break
			}
			got = append(got, e.Name)
			off = e.Off
		}
		d = mk(after) // the kernel's next READDIR, after a rescan
		d.Seekdir(t.Context(), off)
		for {
			e, _ := d.Readdirent(t.Context())
			if e == nil {
				break
			}
			got = append(got, e.Name)
		}
		seen := map[string]bool{}
		for _, n := range got {
			if seen[n] {
				t.Fatalf("cut after %d entries: %q listed twice", cut, n)
			}
			seen[n] = true
		}
		for _, n := range append([]string{".", ".."}, after...) {
			if slices.Contains(before, n) || n == "." || n == ".." {
				if !seen[n] {
					t.Fatalf("cut after %d entries: %q, in both listings, was skipped", cut, n)
				}
			}
		}
	}
}
