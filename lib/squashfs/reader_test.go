package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
)

// node is what a test compares of one file system entry.
type node struct {
	Mode   fs.FileMode
	Uid    uint32
	Gid    uint32
	Size   int64 // 0 for directories: the image and the disk count differently
	Mtime  int64
	Nlink  uint32
	Rdev   uint64
	Target string            // symlinks
	Data   string            // regular files: sha256, or the content when short
	Xattrs map[string]string // nil when none
}

func digest(b []byte) string {
	if len(b) <= 32 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// readAll reads the file ino with reads of an odd size, so that they
// straddle block boundaries.
func readAll(r *Reader, ino Inode, size int64) ([]byte, error) {
	var out []byte
	buf := make([]byte, 100003)
	for {
		n, err := r.ReadAt(ino, buf, int64(len(out)))
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ReadAt(%v, off %d): %w", ino, len(out), err)
		}
		if n != len(buf) {
			return nil, fmt.Errorf("ReadAt(%v, off %d) = %d, nil; want %d bytes or io.EOF", ino, len(out), n, len(buf))
		}
		if int64(len(out)) == size {
			// A full read that ends at the end may return nil: the
			// next one must say EOF.
			if n, err := r.ReadAt(ino, buf[:1], size); n != 0 || err != io.EOF {
				return nil, fmt.Errorf("ReadAt(%v, off %d = size) = %d, %v; want 0, io.EOF", ino, size, n, err)
			}
			return out, nil
		}
	}
}

// imageNodes walks the image through the API. It also returns the inode
// reference of every path, to check hard links.
func imageNodes(t testing.TB, r *Reader) (map[string]node, map[string]Inode) {
	t.Helper()
	nodes, refs, err := walkNodes(r)
	if err != nil {
		t.Fatal(err)
	}
	return nodes, refs
}

func walkNodes(r *Reader) (map[string]node, map[string]Inode, error) {
	nodes := map[string]node{}
	refs := map[string]Inode{}
	var walk func(p string, ino Inode) error
	walk = func(p string, ino Inode) error {
		st, err := r.Stat(ino)
		if err != nil {
			return fmt.Errorf("Stat(%s): %w", p, err)
		}
		n := node{Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Size: st.Size, Mtime: st.Mtime.Unix(), Nlink: st.Nlink, Rdev: st.Rdev}
		xattrs, err := r.Xattrs(ino)
		if err != nil {
			return fmt.Errorf("Xattrs(%s): %w", p, err)
		}
		for _, x := range xattrs {
			if n.Xattrs == nil {
				n.Xattrs = map[string]string{}
			}
			n.Xattrs[x.Name] = string(x.Value)
		}
		switch st.Mode.Type() {
		case fs.ModeDir:
			n.Size = 0
			var entries []DirEntry
			if err := r.ReadDir(ino, 0, func(e DirEntry) bool {
				entries = append(entries, e)
				return true
			}); err != nil {
				return fmt.Errorf("ReadDir(%s): %w", p, err)
			}
			for _, e := range entries {
				child, err := r.Stat(e.Inode)
				if err != nil {
					return fmt.Errorf("Stat(%s/%s): %w", p, e.Name, err)
				}
				if e.Type != child.Mode.Type() || e.Ino != child.Ino {
					return fmt.Errorf("%s/%s: entry type %v ino %d, inode says %v %d", p, e.Name, e.Type, e.Ino, child.Mode.Type(), child.Ino)
				}
				if err := walk(path.Join(p, e.Name), e.Inode); err != nil {
					return err
				}
			}
		case fs.ModeSymlink:
			if n.Target, err = r.Readlink(ino); err != nil {
				return fmt.Errorf("Readlink(%s): %w", p, err)
			}
		case 0:
			b, err := readAll(r, ino, st.Size)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			n.Data = digest(b)
		}
		nodes[p] = n
		refs[p] = ino
		return nil
	}
	if err := walk(".", r.Root()); err != nil {
		return nil, nil, err
	}
	return nodes, refs, nil
}

// treeNodes describes the tree at dir like imageNodes does an image.
func treeNodes(t testing.TB, dir string) map[string]node {
	t.Helper()
	nodes := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{Mode: fi.Mode(), Uid: st.Uid, Gid: st.Gid, Size: fi.Size(), Mtime: fi.ModTime().Unix(), Nlink: uint32(st.Nlink)}
		switch fi.Mode().Type() {
		case fs.ModeDir:
			n.Size = 0
		case fs.ModeSymlink:
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			n.Rdev = st.Rdev
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Data = digest(b)
		}
		xattrs, err := listXattrs(p)
		if err != nil {
			return err
		}
		n.Xattrs = xattrs
		rel, _ := filepath.Rel(dir, p)
		nodes[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func openFixture(t testing.TB, name string) *Reader {
	t.Helper()
	r, err := Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fixtureNodes is what every image testdata/gen.sh writes (but
// dirindex.sqfs) holds.
func fixtureNodes() map[string]node {
	mtime := int64(1700000000)
	lcg := make([]byte, 1500)
	x := uint32(12345)
	for i := range lcg {
		x = (x*1103515245 + 12345) & 0x7fffffff
		lcg[i] = byte(x >> 16)
	}
	var seq bytes.Buffer
	for i := 1; i <= 1200; i++ {
		fmt.Fprintln(&seq, i)
	}
	sparse := make([]byte, 6*4096+10)
	copy(sparse, "start")
	copy(sparse[3*4096:], "middle")
	big := strings.Repeat("v", 300)
	dir := func(perm fs.FileMode, nlink uint32) node {
		return node{Mode: fs.ModeDir | perm, Mtime: mtime, Nlink: nlink}
	}
	return map[string]node{
		".":            dir(0o755, 4),
		"dir":          {Mode: fs.ModeDir | 0o755, Mtime: mtime, Nlink: 3, Xattrs: map[string]string{"user.dir": "d"}},
		"dir/sub":      dir(0o755, 2),
		"dir/sub/up":   {Mode: fs.ModeSymlink | 0o777, Size: 11, Mtime: mtime, Nlink: 1, Target: "../../hello"},
		"dir/numbers":  {Mode: fs.ModeSetuid | 0o755, Size: int64(seq.Len()), Mtime: mtime, Nlink: 1, Data: digest(seq.Bytes()), Xattrs: map[string]string{"user.big": big}},
		"dir/random":   {Mode: 0o644, Size: 1500, Mtime: mtime, Nlink: 1, Data: digest(lcg)},
		"dir/hardlink": {Mode: 0o644, Size: 16, Mtime: mtime, Nlink: 2, Data: digest([]byte("hello, squashfs\n")), Xattrs: map[string]string{"user.greeting": "hi", "user.big": big}},
		"hello":        {Mode: 0o644, Size: 16, Mtime: mtime, Nlink: 2, Data: digest([]byte("hello, squashfs\n")), Xattrs: map[string]string{"user.greeting": "hi", "user.big": big}},
		"empty":        dir(fs.ModeSticky|0o777, 2),
		"link":         {Mode: fs.ModeSymlink | 0o777, Size: 5, Mtime: mtime, Nlink: 1, Target: "hello"},
		"sparse":       {Mode: 0o644, Size: int64(len(sparse)), Mtime: mtime, Nlink: 1, Data: digest(sparse)},
		"chr":          {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o644, Mtime: mtime, Nlink: 1, Rdev: mkdev(1, 3)},
		"blk":          {Mode: fs.ModeDevice | 0o600, Mtime: mtime, Nlink: 1, Rdev: mkdev(8, 1)},
		"fifo":         {Mode: fs.ModeNamedPipe | 0o644, Mtime: mtime, Nlink: 1},
		"sock":         {Mode: fs.ModeSocket | 0o755, Mtime: mtime, Nlink: 1},
	}
}

// TestReadFixtures reads the committed images, one per compressor and
// layout, and compares them with what gen.sh put in.
func TestReadFixtures(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		comp       Compression
	}{
		{"gzip", "gzip.sqfs", Gzip},
		{"xz", "xz.sqfs", XZ},
		{"zstd", "zstd.sqfs", Zstd},
		{"lz4", "lz4.sqfs", LZ4},
		{"uncompressed", "none.sqfs", Gzip},
		{"no-fragments", "nofrag.sqfs", Zstd},
		{"always-use-fragments", "allfrag.sqfs", Gzip},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := openFixture(t, tt.file)
			if got, want := Compression(r.sb.Compression), tt.comp; got != want {
				t.Errorf("compression = %v, want %v", got, want)
			}
			got, refs := imageNodes(t, r)
			if diff := cmp.Diff(fixtureNodes(), got); diff != "" {
				t.Errorf("image mismatch (-want +got):\n%s", diff)
			}
			if refs["hello"] != refs["dir/hardlink"] {
				t.Errorf("hello and dir/hardlink are inodes %v and %v, want one", refs["hello"], refs["dir/hardlink"])
			}
			for p, ino := range refs {
				got, err := r.LookupPath(p)
				if err != nil || got != ino {
					t.Errorf("LookupPath(%q) = %v, %v; want %v", p, got, err, ino)
				}
			}
		})
	}
}

func TestReaderLookup(t *testing.T) {
	r := openFixture(t, "zstd.sqfs")
	for _, tt := range []struct {
		name    string
		path    string
		wantErr error
	}{
		{"root", "", nil},
		{"dot", ".", nil},
		{"leading slash", "/dir/numbers", nil},
		{"doubled slash", "dir//sub/up", nil},
		{"symlink last", "link", nil},
		{"missing", "dir/nope", fs.ErrNotExist},
		{"file as dir", "hello/x", syscall.ENOTDIR},
		{"symlink as dir", "link/x", syscall.ENOTDIR},
		{"dotdot", "dir/..", fs.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.LookupPath(tt.path)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("LookupPath(%q) = %v, want %v", tt.path, err, tt.wantErr)
			}
		})
	}
	hello, err := r.LookupPath("hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(hello, "x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Lookup(file, x) = %v, want ENOTDIR", err)
	}
	if err := r.ReadDir(hello, 0, func(DirEntry) bool { return true }); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("ReadDir(file) = %v, want ENOTDIR", err)
	}
	if _, err := r.ReadAt(r.Root(), make([]byte, 1), 0); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("ReadAt(dir) = %v, want EISDIR", err)
	}
	if _, err := r.Readlink(hello); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Readlink(file) = %v, want EINVAL", err)
	}
	if _, err := r.ReadAt(hello, make([]byte, 1), -1); err == nil {
		t.Errorf("ReadAt(off -1) succeeded")
	}
}

// TestReaderDirIndex reads a directory whose listing spans metadata
// blocks, which mksquashfs writes as an extended directory with an index.
func TestReaderDirIndex(t *testing.T) {
	r := openFixture(t, "dirindex.sqfs")
	many, err := r.LookupPath("many")
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.inode(many)
	if err != nil {
		t.Fatal(err)
	}
	if in.typ != inodeLDir || in.indexCount == 0 {
		t.Errorf("many: inode type %d with %d index entries, want an extended directory with an index", in.typ, in.indexCount)
	}
	var want []string
	for i := range 600 {
		want = append(want, fmt.Sprintf("entry-with-a-longish-name-%d", i))
	}
	slices.Sort(want)
	checkReadDir(t, r, many, want)
}

// checkReadDir checks that dir lists want and that reading from offset k
// returns entries k… in order, and that stopping early works.
func checkReadDir(t *testing.T, r *Reader, dir Inode, want []string) {
	t.Helper()
	list := func(offset, limit int) []string {
		var names []string
		err := r.ReadDir(dir, offset, func(e DirEntry) bool {
			names = append(names, e.Name)
			return len(names) < limit
		})
		if err != nil {
			t.Fatalf("ReadDir(%v, %d): %v", dir, offset, err)
		}
		return names
	}
	if diff := cmp.Diff(want, list(0, len(want)+1)); diff != "" {
		t.Errorf("ReadDir mismatch (-want +got):\n%s", diff)
	}
	for _, k := range []int{1, 7, 255, 256, 257, len(want) / 2, len(want) - 1, len(want), len(want) + 5} {
		if k > len(want)+5 {
			continue
		}
		var wantFrom []string
		if k < len(want) {
			wantFrom = want[k:]
		}
		if diff := cmp.Diff(wantFrom, list(k, len(want)+1)); diff != "" {
			t.Errorf("ReadDir from offset %d mismatch (-want +got):\n%s", k, diff)
		}
		if k < len(want) {
			if got := list(k, 3); !slices.Equal(got, want[k:min(k+3, len(want))]) {
				t.Errorf("ReadDir from %d, stopping after 3 = %q, want %q", k, got, want[k:min(k+3, len(want))])
			}
		}
	}
	for _, name := range []string{want[0], want[len(want)/3], want[len(want)-1]} {
		if _, err := r.Lookup(dir, name); err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
		}
	}
}

// TestReaderConcurrent walks one Reader from many goroutines at once (run
// it with -race).
func TestReaderConcurrent(t *testing.T) {
	want, _ := imageNodes(t, openFixture(t, "gzip.sqfs"))
	r := openFixture(t, "gzip.sqfs") // cold caches: the goroutines race to fill them
	errc := make(chan error, 8)
	for range 8 {
		go func() {
			got, _, err := walkNodes(r)
			if err != nil {
				errc <- err
				return
			}
			if diff := cmp.Diff(want, got); diff != "" {
				errc <- fmt.Errorf("concurrent walk mismatch (-want +got):\n%s", diff)
				return
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

// patch returns a copy of img with b written at off.
func patch(img []byte, off int, b ...byte) []byte {
	out := bytes.Clone(img)
	copy(out[off:], b)
	return out
}

func TestReadErrors(t *testing.T) {
	img, err := os.ReadFile("testdata/zstd.sqfs")
	if err != nil {
		t.Fatal(err)
	}
	comp := func(c Compression) []byte {
		return patch(img, 20, byte(c), byte(c>>8))
	}
	for _, tt := range []struct {
		name    string
		img     []byte
		wantErr string
	}{
		{"empty", nil, "read superblock"},
		{"bad magic", patch(img, 0, 'x'), "bad magic"},
		{"version 3", patch(img, 28, 3), "unsupported version"},
		{"lzo", comp(LZO), "unsupported compression lzo"},
		{"lzma", comp(LZMA), "unsupported compression lzma"},
		{"unknown compression", comp(77), "unknown compression id 77"},
		{"bad block size", patch(img, 12, 0, 0, 0, 3), "bad block size"},
		{"truncated", img[:len(img)-1], "image truncated"},
		{"bytes_used too small", patch(img, 40, 10, 0, 0, 0, 0, 0, 0, 0), "bad bytes_used"},
		{"inode table after directory table", patch(img, 64, 0xff, 0xff, 0, 0), "bad inode table"},
		{"no ids", patch(img, 26, 0, 0), "no id table"},
		{"root not a directory", rootAt(t, img, "hello"), "not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.img))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewReader() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewReader(bytes.NewReader(comp(LZO))); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewReader(lzo image) = %v, want errors.ErrUnsupported", err)
	}
}

// rootAt returns img with its root inode replaced by the inode of p.
func rootAt(t *testing.T, img []byte, p string) []byte {
	t.Helper()
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	ino, err := r.LookupPath(p)
	if err != nil {
		t.Fatal(err)
	}
	return patch(img, 32, binary.LittleEndian.AppendUint64(nil, uint64(ino))...)
}

// TestReadCorrupt damages every fixture in many ways: truncation at
// several points (with and without a known size), flipped bytes all over
// and random overwrites. Whatever happens must be an error, not a panic or
// a hang.
func TestReadCorrupt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.sqfs")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			img, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			tries := 0
			try := func(b []byte) {
				tries++
				for _, ra := range []io.ReaderAt{bytes.NewReader(b), sizeless{bytes.NewReader(b)}} {
					r, err := NewReader(ra)
					if err != nil {
						continue
					}
					done := make(chan struct{})
					go func() {
						defer close(done)
						exercise(r)
						if tries%16 == 0 {
							r.Extract(filepath.Join(dir, fmt.Sprint("x", tries)), ExtractOptions{})
						}
					}()
					select {
					case <-done:
					case <-time.After(20 * time.Second):
						t.Fatalf("walking a damaged image hangs")
					}
				}
			}
			for _, cut := range []int{0, 10, superblockSize, superblockSize + 1, len(img) / 4, len(img) / 2, len(img) - 100, len(img) - 8, len(img) - 1} {
				if cut >= 0 && cut <= len(img) {
					try(img[:cut])
				}
			}
			step := max(1, len(img)/120)
			for off := 0; off < len(img); off += step {
				for _, mask := range []byte{0x01, 0xff} {
					b := bytes.Clone(img)
					b[off] ^= mask
					try(b)
				}
			}
			seed := uint32(1)
			for range 40 {
				b := bytes.Clone(img)
				for range 8 {
					seed = seed*1664525 + 1013904223
					b[int(seed>>8)%len(b)] = byte(seed)
				}
				try(b)
			}
		})
	}
}

// listXattrs returns the xattrs of p (not following symlinks), nil when
// there are none.
func listXattrs(p string) (map[string]string, error) {
	m, err := distritest.Xattrs(p)
	if len(m) == 0 {
		return nil, err
	}
	return m, err
}

var readerKeepImages = flag.String("reader_keep_images", "", "copy the images the tools-tier tests build into this directory, for inspection")

// mksquashfs builds an image of src with squashfs-tools.
func mksquashfs(t *testing.T, src string, args ...string) string {
	t.Helper()
	tool := distritest.NeedTool(t, "mksquashfs")
	img := filepath.Join(t.TempDir(), "image.sqfs")
	argv := append([]string{src, img, "-noappend", "-quiet", "-no-progress"}, args...)
	cmd := exec.Command(tool, argv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	if *readerKeepImages != "" {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".sqfs"
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*readerKeepImages, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// richSource builds distritest.RichTree plus what it lacks for a reader:
// a large sparse file and a file whose blocks alternate between
// compressible and not.
func richSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	distritest.RichTree(t, src)
	f, err := os.Create(filepath.Join(src, "sizes/sparse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		off  int64
		data []byte
	}{
		{0, []byte("head")},
		{40 << 20, distritest.Bytes(300<<10, 3)}, // after a 40 MiB hole
	} {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(64<<20 + 5); err != nil { // and a hole at the end
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var mixed []byte
	for i := range 12 {
		if i%2 == 0 {
			mixed = append(mixed, bytes.Repeat([]byte{byte(i)}, 100<<10)...)
		} else {
			mixed = append(mixed, distritest.Bytes(100<<10, int64(i))...)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "sizes/mixed"), mixed, 0o644); err != nil {
		t.Fatal(err)
	}
	distritest.FixMtimes(t, src)
	return src
}

// mksquashfsVariants are the mksquashfs invocations the tools-tier tests
// read back.
var mksquashfsVariants = []struct {
	name string
	args []string
}{
	{"gzip", []string{"-comp", "gzip"}},
	{"xz", []string{"-comp", "xz"}},
	{"zstd", []string{"-comp", "zstd"}},
	{"lz4", []string{"-comp", "lz4"}},
	{"lz4-hc", []string{"-comp", "lz4", "-Xhc"}},
	{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX"}},
	{"no-fragments", []string{"-comp", "zstd", "-no-fragments"}},
	{"always-use-fragments", []string{"-comp", "gzip", "-always-use-fragments"}},
	{"block-4k", []string{"-comp", "zstd", "-b", "4096"}},
	{"block-1m", []string{"-comp", "xz", "-b", "1M"}},
	{"exports", []string{"-comp", "gzip", "-exports", "-no-duplicates"}},
}

// TestReadMksquashfs reads images mksquashfs writes of a rich tree, with
// every compressor and layout option, and compares them through the API
// with the tree: content, modes, owners, mtimes, xattrs, symlinks, device
// numbers, hard links, and directory reads from every kind of offset.
func TestReadMksquashfs(t *testing.T) {
	distritest.NeedTool(t, "mksquashfs")
	distritest.NeedRoot(t) // owners, devices and security.capability
	src := richSource(t)
	want := treeNodes(t, src)
	for _, tt := range mksquashfsVariants {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(mksquashfs(t, src, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, refs := imageNodes(t, r)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("image mismatch (-want +got):\n%s", diff)
			}
			for _, group := range [][]string{{"links/hard1", "links/sub/hard2", "links/hard3"}} {
				for _, p := range group[1:] {
					if refs[p] != refs[group[0]] {
						t.Errorf("%s is inode %v, %s is %v: want one inode", p, refs[p], group[0], refs[group[0]])
					}
				}
			}
			for p, ino := range refs {
				if got, err := r.LookupPath(p); err != nil || got != ino {
					t.Errorf("LookupPath(%q) = %v, %v; want %v", p, got, err, ino)
				}
			}
			big, err := r.LookupPath("big")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i := range 3000 {
				names = append(names, fmt.Sprintf("entry-%04d", i))
			}
			checkReadDir(t, r, big, names)
			checkSparseReads(t, r, filepath.Join(src, "sizes/sparse"))
		})
	}
}

// checkSparseReads reads pieces of the sparse file at random offsets.
func checkSparseReads(t *testing.T, r *Reader, srcPath string) {
	t.Helper()
	want, err := os.ReadFile(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	ino, err := r.LookupPath("sizes/sparse")
	if err != nil {
		t.Fatal(err)
	}
	x := uint64(7)
	for range 200 {
		x = x*6364136223846793005 + 1442695040888963407
		off := int64(x>>20) % int64(len(want))
		n := int(x>>8) % (300 << 10)
		buf := make([]byte, n)
		got, err := r.ReadAt(ino, buf, off)
		wantN := min(n, len(want)-int(off))
		if got != wantN || (err != nil && err != io.EOF) || (got < n && err != io.EOF) {
			t.Fatalf("ReadAt(sparse, %d bytes at %d) = %d, %v; want %d", n, off, got, err, wantN)
		}
		if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
			t.Fatalf("ReadAt(sparse, %d bytes at %d): wrong data", n, off)
		}
	}
}

// TestReaderFS checks the io/fs adapter with testing/fstest and symlink
// resolution on an image of a tree without dangling links or devices.
func TestReaderFS(t *testing.T) {
	src := t.TempDir()
	for name, content := range map[string]string{
		"a/b/c.txt":      "c",
		"a/big":          strings.Repeat("0123456789", 30000),
		"a/empty":        "",
		"top.txt":        "top",
		"d/e/f/deep.txt": "deep",
	} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"a/to-c":    "b/c.txt",
		"a/up":      "../top.txt",
		"a/dirlink": "b",
		"d/chain":   "../a/dirlink/c.txt",
		"d/e/f/abs": "/etc/passwd",
		"d/e/f/esc": "../../../../top.txt",
		"loop1":     "loop2",
		"loop2":     "loop1",
	} {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(mksquashfs(t, src, "-comp", "zstd", "-b", "4096"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fsys := r.FS()
	sub, err := fs.Sub(fsys, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "b/c.txt", "big", "empty", "to-c", "dirlink", "up"); err != nil {
		t.Error(err)
	}

	for _, tt := range []struct {
		name, path, want string
		wantErr          error
	}{
		{"relative", "a/to-c", "c", nil},
		{"dotdot", "a/up", "top", nil},
		{"through a dir link", "a/dirlink/c.txt", "c", nil},
		{"chain", "d/chain", "c", nil},
		{"absolute", "d/e/f/abs", "", fs.ErrNotExist},
		{"escapes the root", "d/e/f/esc", "", fs.ErrNotExist},
		{"loop", "loop1", "", syscall.ELOOP},
		{"missing", "a/nope", "", fs.ErrNotExist},
		{"invalid", "a/../top.txt", "", fs.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := fs.ReadFile(fsys, tt.path)
			if !errors.Is(err, tt.wantErr) || string(b) != tt.want {
				t.Errorf("ReadFile(%q) = %q, %v; want %q, %v", tt.path, b, err, tt.want, tt.wantErr)
			}
		})
	}
	if fi, err := fs.Lstat(fsys, "a/to-c"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(a/to-c) = %v, %v; want a symlink", fi, err)
	}
	if fi, err := fs.Stat(fsys, "a/to-c"); err != nil || !fi.Mode().IsRegular() || fi.Name() != "to-c" {
		t.Errorf("Stat(a/to-c) = %v, %v; want a regular file named to-c", fi, err)
	}
	if target, err := fs.ReadLink(fsys, "d/e/f/abs"); err != nil || target != "/etc/passwd" {
		t.Errorf("ReadLink(d/e/f/abs) = %q, %v", target, err)
	}
	if _, err := fs.ReadLink(fsys, "top.txt"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ReadLink(top.txt) = %v, want EINVAL", err)
	}
	f, err := fsys.Open("a/big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs := f.(io.ReadSeeker)
	if _, err := rs.Seek(-5, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rs); err != nil || string(b) != "56789" {
		t.Errorf("read after Seek(-5, end) = %q, %v", b, err)
	}
	buf := make([]byte, 4)
	if n, err := f.(io.ReaderAt).ReadAt(buf, 10); n != 4 || err != nil || string(buf) != "0123" {
		t.Errorf("ReadAt(4 bytes at 10) = %d, %v, %q", n, err, buf)
	}
}
