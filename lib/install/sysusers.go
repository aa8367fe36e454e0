package install

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/squashfs"
	"distri.dev/distri/lib/store"
	"distri.dev/distri/lib/sysusers"
)

// sysusersDir is where a package image keeps its sysusers.d files (it
// feeds /ro/lib/sysusers.d, which systemd-sysusers reads at boot).
const sysusersDir = "out/lib/sysusers.d"

// ApplySysusers merges the system users and groups that the packages
// fulls of st declare in out/lib/sysusers.d/*.conf into root's
// etc/passwd, etc/group and etc/shadow (package lib/sysusers), and
// returns a line per account it added. Files are taken in name order
// (a file name shadows the same name of a package later in fulls' sorted
// order, as systemd's directories do), so the result does not depend on
// the order packages were installed in.
//
// A root without etc/passwd (a tree distri-mkimage is still making; it
// applies the files of every package once it has written /etc) is left
// alone.
func ApplySysusers(root string, st *store.Store, fulls []string) ([]string, error) {
	if _, err := os.Lstat(filepath.Join(root, "etc/passwd")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	files := map[string][]sysusers.Entry{}
	for _, full := range slices.Sorted(slices.Values(fulls)) {
		r, err := squashfs.Open(st.ImagePath(full))
		if err != nil {
			return nil, fmt.Errorf("sysusers of %s: %w", full, err)
		}
		fsys := r.FS()
		ents, err := fs.ReadDir(fsys, sysusersDir)
		if err != nil {
			r.Close()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("sysusers of %s: %w", full, err)
		}
		for _, ent := range ents {
			name := ent.Name()
			if !strings.HasSuffix(name, ".conf") || files[name] != nil {
				continue
			}
			b, err := fs.ReadFile(fsys, path.Join(sysusersDir, name))
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("sysusers of %s: %w", full, err)
			}
			es, err := sysusers.Parse(full+"/"+sysusersDir+"/"+name, b)
			if err != nil {
				r.Close()
				return nil, err
			}
			files[name] = append(es, sysusers.Entry{}) // never nil: marks the name as taken
		}
		r.Close()
	}
	var all []sysusers.Entry
	for _, name := range slices.Sorted(maps.Keys(files)) {
		es := files[name]
		all = append(all, es[:len(es)-1]...)
	}
	return sysusers.Apply(root, all)
}
