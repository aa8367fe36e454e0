package squashfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader opens arbitrary bytes as an image and walks everything in
// it through the API. It checks only that the reader returns errors
// rather than panicking, hanging or allocating without bound. The seeds
// are the images testdata/gen.sh writes.
func FuzzReader(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.sqfs")
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed images in testdata (run testdata/gen.sh)")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ra io.ReaderAt = bytes.NewReader(data)
		if len(data)%2 == 1 {
			// Without a size, NewReader can't check the tables
			// against it: the reads must catch what is missing.
			ra = sizeless{ra}
		}
		r, err := NewReader(ra)
		if err != nil {
			return
		}
		exercise(r)
	})
}

// sizeless hides the Size method of a bytes.Reader.
type sizeless struct{ r io.ReaderAt }

func (s sizeless) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }

// exercise walks the whole image: every directory from every offset
// class, every inode's stat, xattrs, symlink target and (some of the)
// data. It returns the first error, if any, and the number of inodes it
// visited. Cycles in a corrupt image are cut by remembering directories.
func exercise(r *Reader) (int, error) {
	const (
		maxNodes = 5000
		maxRead  = 256 << 10 // per file: a corrupt size may claim terabytes
	)
	budget := int64(16 << 20) // bytes read in all
	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	seen := map[Inode]bool{}
	queue := []Inode{r.Root()}
	nodes := 0
	buf := make([]byte, 64<<10+3) // odd-sized: reads straddle blocks
	for len(queue) > 0 && nodes < maxNodes {
		ino := queue[0]
		queue = queue[1:]
		if seen[ino] {
			continue
		}
		seen[ino] = true
		nodes++
		st, err := r.Stat(ino)
		if err != nil {
			note(err)
			continue
		}
		_, err = r.Xattrs(ino)
		note(err)
		switch {
		case st.Mode.IsDir():
			var names []string
			err := r.ReadDir(ino, 0, func(e DirEntry) bool {
				names = append(names, e.Name)
				queue = append(queue, e.Inode)
				return true
			})
			note(err)
			if len(names) > 1 {
				note(r.ReadDir(ino, len(names)/2, func(DirEntry) bool { return false }))
				_, err := r.Lookup(ino, names[len(names)-1])
				note(err)
			}
			_, err = r.Lookup(ino, "does-not-exist")
			if !errors.Is(err, os.ErrNotExist) {
				note(err)
			}
		case st.Mode.IsRegular():
			var off int64
			for off < min(st.Size, maxRead) && budget > 0 {
				n, err := r.ReadAt(ino, buf, off)
				off += int64(n)
				budget -= int64(len(buf))
				if err != nil {
					if err != io.EOF {
						note(err)
					}
					break
				}
				if n == 0 {
					break
				}
			}
			if st.Size > 10 {
				_, err := r.ReadAt(ino, buf[:10], st.Size-10)
				note(err)
			}
		case st.Mode&os.ModeSymlink != 0:
			_, err := r.Readlink(ino)
			note(err)
		}
	}
	return nodes, first
}
