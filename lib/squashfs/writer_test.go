package squashfs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
)

var keepWrittenImages = flag.String("squashfs_keep_written", "", "copy every image the writer tests make into this directory, for inspection")

// writeTestImage writes an image of dir with opts and returns its path.
func writeTestImage(t testing.TB, dir string, opts WriterOptions) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image.squashfs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteDir(f, dir, opts); err != nil {
		t.Fatalf("WriteDir(%s, %+v) = %v, want nil", dir, opts, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%4096 != 0 {
		t.Errorf("image size %d is not a multiple of 4096", st.Size())
	}
	if *keepWrittenImages != "" {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".squashfs"
		if out, err := exec.Command("cp", img, filepath.Join(*keepWrittenImages, name)).CombinedOutput(); err != nil {
			t.Errorf("keep image: %v: %s", err, out)
		}
	}
	return img
}

// checkImage reads img back with the kernel and with unsquashfs, and
// compares what they see with the tree at src. It returns the kernel's
// mount point.
func checkImage(t *testing.T, src, img string) string {
	t.Helper()
	return checkImageWith(t, src, img, distritest.DiffTrees)
}

// checkImageWith is checkImage with diff comparing trees.
func checkImageWith(t *testing.T, src, img string, diff func(want, got string) []string) string {
	t.Helper()
	distritest.NeedRoot(t)
	unsquashfs := distritest.NeedTool(t, "unsquashfs")

	mnt := distritest.MountSquashfs(t, img)
	for _, d := range diff(src, mnt) {
		t.Errorf("kernel mount: %s", d)
	}

	out, err := exec.Command(unsquashfs, "-lln", img).CombinedOutput()
	if err != nil {
		t.Fatalf("%s -lln: %v\n%s", unsquashfs, err, out)
	}
	listed := make(map[string]bool)
	for line := range strings.SplitSeq(string(out), "\n") {
		_, p, ok := strings.Cut(line, " squashfs-root")
		if !ok {
			continue
		}
		p, _, _ = strings.Cut(p, " -> ")
		listed[strings.TrimPrefix(p, "/")] = true
	}
	err = filepath.Walk(src, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			rel = ""
		}
		if !listed[rel] {
			t.Errorf("unsquashfs -lln does not list %q", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	dest := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command(unsquashfs, "-no-progress", "-d", dest, "-f", img).CombinedOutput(); err != nil {
		t.Fatalf("%s -d %s -f %s: %v\n%s", unsquashfs, dest, img, err, out)
	}
	for _, d := range diff(src, dest) {
		t.Errorf("unsquashfs -d: %s", d)
	}
	return mnt
}

// checkInodes checks the kernel's view of the numbering: inode numbers
// 1..inode count, one per inode (hard links share one), the root last,
// and a directory's link count 2 + its subdirectories.
func checkInodes(t *testing.T, img, mnt string) {
	t.Helper()
	count := readSuperblock(t, img).InodeCount
	seen := make(map[uint64]bool)
	err := filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Ino < 1 || st.Ino > uint64(count) {
			t.Errorf("%s: inode number %d outside 1..%d", p, st.Ino, count)
		}
		seen[st.Ino] = true
		if p == mnt && st.Ino != uint64(count) {
			t.Errorf("root inode number = %d, want %d (the last)", st.Ino, count)
		}
		if fi.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			want := uint64(2)
			for _, e := range ents {
				if e.IsDir() {
					want++
				}
			}
			if st.Nlink != want {
				t.Errorf("%s: link count %d, want %d", p, st.Nlink, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != int(count) {
		t.Errorf("%d distinct inode numbers, want %d", len(seen), count)
	}
}

// readSuperblock returns the superblock of the image at img.
func readSuperblock(t testing.TB, img string) superblock {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, superblockSize)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	var sb superblock
	if err := sb.unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return sb
}

func TestWriteDirRoundTrip(t *testing.T) {
	distritest.NeedRoot(t)
	src := t.TempDir()
	distritest.RichTree(t, src)
	extraNodes(t, src)
	for _, tt := range []struct {
		name string
		opts WriterOptions
	}{
		{name: "uncompressed"},
		{name: "zstd", opts: WriterOptions{Compression: Zstd}},
		{name: "zstd-fast-4k", opts: WriterOptions{Compression: Zstd, Level: 1, BlockSize: 4096, Jobs: 3}},
		{name: "gzip", opts: WriterOptions{Compression: Gzip, Level: 1}},
		{name: "uncompressed-1m", opts: WriterOptions{BlockSize: 1 << 20}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := writeTestImage(t, src, tt.opts)
			mnt := checkImage(t, src, img)
			checkInodes(t, img, mnt)
		})
	}
}

// extraNodes adds what RichTree lacks: xattrs on a symlink, devices, a
// fifo and a socket (extended inode types), a zero-filled (not sparse)
// file, and hard links to a symlink and to a device.
func extraNodes(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	x := filepath.Join(dir, "extra")
	must(os.MkdirAll(x, 0o755))
	must(os.Symlink("target", filepath.Join(x, "symlink")))
	must(unix.Mknod(filepath.Join(x, "chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(4095, 1<<20-1))))
	must(unix.Mknod(filepath.Join(x, "blk"), unix.S_IFBLK|0o640, int(unix.Mkdev(8, 1))))
	must(unix.Mknod(filepath.Join(x, "fifo"), unix.S_IFIFO|0o620, 0))
	must(unix.Mknod(filepath.Join(x, "socket"), unix.S_IFSOCK|0o755, 0))
	for _, name := range []string{"symlink", "chr", "blk", "fifo", "socket"} {
		must(unix.Lsetxattr(filepath.Join(x, name), "trusted.node", []byte(name), 0))
	}
	must(unix.Lsetxattr(filepath.Join(x, "socket"), "security.other", []byte{}, 0))
	must(os.Link(filepath.Join(x, "symlink"), filepath.Join(x, "symlink-link")))
	must(os.Link(filepath.Join(x, "chr"), filepath.Join(dir, "chr-link")))
	must(os.WriteFile(filepath.Join(x, "zeros"), make([]byte, 3*DefaultBlockSize+5), 0o644))
	zeroTail := append(distritest.Bytes(DefaultBlockSize, 3), make([]byte, 100)...)
	must(os.WriteFile(filepath.Join(x, "zero-tail"), zeroTail, 0o644))
	distritest.FixMtimes(t, dir)
}

func TestWriteDirBlockSizes(t *testing.T) {
	distritest.NeedRoot(t)
	for _, bs := range []uint32{4096, DefaultBlockSize} {
		src := t.TempDir()
		b := int(bs)
		for _, n := range []int{0, 1, b - 1, b, b + 1, 3 * b, 3*b + 1} {
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", n)), distritest.Bytes(n, int64(n)), 0o644); err != nil {
				t.Fatal(err)
			}
			// A compressible one too, to get compressed and stored blocks.
			text := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("t%d", n)), text, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []Compression{None, Zstd, Gzip} {
			t.Run(fmt.Sprintf("%v-%d", c, bs), func(t *testing.T) {
				img := writeTestImage(t, src, WriterOptions{Compression: c, BlockSize: bs})
				checkImage(t, src, img)
			})
		}
	}
}

func TestWriteDirHugeDirectory(t *testing.T) {
	distritest.NeedRoot(t)
	// 40000 inodes below "b" put "a" and "c" more than int16 apart in
	// inode numbers, so the root listing needs more than one header; "big"
	// has a listing over 64 KiB (an extended directory inode with an
	// index spanning many metadata blocks); "c" is a hard link far away.
	src := t.TempDir()
	for _, d := range []string{"b", "big"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 40000 {
		if err := unix.Mknod(filepath.Join(src, "b", fmt.Sprint(i)), unix.S_IFIFO|0o644, 0); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("x", 200)
	for i := range 2000 {
		if err := unix.Mknod(filepath.Join(src, "big", fmt.Sprintf("%s-%05d", long, i)), unix.S_IFIFO|0o644, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "big", "z-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "c")); err != nil {
		t.Fatal(err)
	}
	distritest.FixMtimes(t, src)
	for _, c := range []Compression{None, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			img := writeTestImage(t, src, WriterOptions{Compression: c})
			// The tree has no xattrs; not looking for them saves minutes.
			mnt := checkImageWith(t, src, img, func(want, got string) []string {
				return distritest.DiffTreesWith(want, got, distritest.DiffOptions{IgnoreXattrs: true})
			})
			checkInodes(t, img, mnt)
		})
	}
}

func TestWriteDirSparseOver4GiB(t *testing.T) {
	distritest.NeedRoot(t)
	src := t.TempDir()
	p := filepath.Join(src, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 5<<30 + 12345
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{1 << 20, 4<<30 + 7, size - 3} {
		if _, err := f.WriteAt([]byte("data"[:min(4, size-off)]), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{None, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			start := time.Now()
			img := writeTestImage(t, src, WriterOptions{Compression: c})
			t.Logf("WriteDir took %v", time.Since(start))
			st, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			// 40960 block size words plus three 128 KiB blocks.
			if st.Size() > 1<<20 {
				t.Errorf("image of a sparse file is %d bytes, want <= 1 MiB", st.Size())
			}
			checkImageWith(t, src, img, diffSparse)
		})
	}
}

// diffSparse compares the trees of TestWriteDirSparseOver4GiB: the
// metadata like DiffTrees, the content by hashes of 64 MiB chunks that
// skip the reading of holes where the file system tells them, so it does
// not take DiffTrees' minutes.
func diffSparse(want, got string) []string {
	var diffs []string
	for _, name := range []string{".", "sparse"} {
		var ws, gs unix.Stat_t
		if err := unix.Lstat(filepath.Join(want, name), &ws); err != nil {
			return append(diffs, err.Error())
		}
		if err := unix.Lstat(filepath.Join(got, name), &gs); err != nil {
			return append(diffs, err.Error())
		}
		if ws.Mode != gs.Mode || ws.Uid != gs.Uid || ws.Gid != gs.Gid || ws.Mtim.Sec != gs.Mtim.Sec || name != "." && ws.Size != gs.Size {
			diffs = append(diffs, fmt.Sprintf("%s: mode %#o, owner %d:%d, mtime %d, size %d; want %#o, %d:%d, %d, %d",
				name, gs.Mode, gs.Uid, gs.Gid, gs.Mtim.Sec, gs.Size, ws.Mode, ws.Uid, ws.Gid, ws.Mtim.Sec, ws.Size))
		}
	}
	wh, err := chunkHashes(filepath.Join(want, "sparse"))
	if err != nil {
		return append(diffs, err.Error())
	}
	gh, err := chunkHashes(filepath.Join(got, "sparse"))
	if err != nil {
		return append(diffs, err.Error())
	}
	if len(gh) != len(wh) {
		return append(diffs, fmt.Sprintf("sparse: %d chunks, want %d", len(gh), len(wh)))
	}
	for i := range wh {
		if gh[i] != wh[i] {
			diffs = append(diffs, fmt.Sprintf("sparse: content of chunk %d (at %d MiB) differs", i, i*64))
		}
	}
	return diffs
}

var writerHashSeed = maphash.MakeSeed()

// chunkHashes returns a hash of each 64 MiB of the file at p. It hashes
// holes (as SEEK_HOLE reports them) without reading them.
func chunkHashes(p string) ([]uint64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const chunk = 64 << 20
	size := st.Size()
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	fd := int(f.Fd())
	var sums []uint64
	var h maphash.Hash
	h.SetSeed(writerHashSeed)
	dataEnd := int64(-1) // data known up to here; holes beyond
	holeEnd := int64(-1)
	for off := int64(0); off < size; {
		if off%chunk == 0 && off > 0 {
			sums = append(sums, h.Sum64())
			h.Reset()
		}
		n := min(int64(len(buf)), size-off, chunk-off%chunk)
		if off >= dataEnd && off >= holeEnd {
			d, err := unix.Seek(fd, off, unix.SEEK_DATA)
			if err != nil {
				d = size // ENXIO: a hole up to the end
			}
			if d > off {
				holeEnd = d
			} else {
				hEnd, err := unix.Seek(fd, off, unix.SEEK_HOLE)
				if err != nil {
					return nil, err
				}
				dataEnd = hEnd
			}
		}
		if off < holeEnd {
			n = min(n, holeEnd-off)
			h.Write(zero[:n])
		} else {
			n = min(n, dataEnd-off)
			if _, err := f.ReadAt(buf[:n], off); err != nil {
				return nil, err
			}
			h.Write(buf[:n])
		}
		off += n
	}
	return append(sums, h.Sum64()), nil
}

func TestWriteDirDeterministic(t *testing.T) {
	distritest.NeedRoot(t)
	a := t.TempDir()
	distritest.RichTree(t, a)
	b := t.TempDir()
	distritest.RichTree(t, b)
	c := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", a, c).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	for _, tt := range []struct {
		name string
		opts WriterOptions
		jobs int // for the second image
	}{
		{name: "uncompressed"},
		{name: "zstd", opts: WriterOptions{Compression: Zstd, Level: 3, Jobs: 1}, jobs: 4},
		{name: "gzip", opts: WriterOptions{Compression: Gzip, Level: 1, Jobs: 2}, jobs: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, err := os.ReadFile(writeTestImage(t, a, tt.opts))
			if err != nil {
				t.Fatal(err)
			}
			opts := tt.opts
			opts.Jobs = tt.jobs
			for _, dir := range []string{a, b, c} {
				got, err := os.ReadFile(writeTestImage(t, dir, opts))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, first) {
					t.Errorf("WriteDir(%s) differs from WriteDir(%s): not reproducible", dir, a)
				}
			}
		})
	}
}

func TestWriteDirTimes(t *testing.T) {
	distritest.NeedRoot(t)
	src := t.TempDir()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	newer := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, mt := range map[string]time.Time{"old": old, "new": newer} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(src, old, old); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		epoch     time.Time
		wantImage time.Time
		wantNew   time.Time
	}{
		{name: "newest-mtime", wantImage: newer, wantNew: newer},
		{name: "source-date-epoch", epoch: epoch, wantImage: epoch, wantNew: epoch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := writeTestImage(t, src, WriterOptions{SourceDateEpoch: tt.epoch})
			if got, want := readSuperblock(t, img).ModTime, uint32(tt.wantImage.Unix()); got != want {
				t.Errorf("superblock time = %v, want %v", time.Unix(int64(got), 0).UTC(), tt.wantImage)
			}
			mnt := distritest.MountSquashfs(t, img)
			for name, want := range map[string]time.Time{"old": old, "new": tt.wantNew, ".": old} {
				st, err := os.Lstat(filepath.Join(mnt, name))
				if err != nil {
					t.Fatal(err)
				}
				if got := st.ModTime(); !got.Equal(want) {
					t.Errorf("mtime of %s = %v, want %v", name, got.UTC(), want)
				}
			}
		})
	}
}

func TestWriteDirSuperblock(t *testing.T) {
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantIDs := uint16(1)
	if os.Getuid() != os.Getgid() {
		wantIDs = 2
	}
	const uncompressed = flagNoInodeComp | flagNoDataComp | flagNoFragComp | flagNoFragments | flagNoXattrComp | flagNoIDComp
	for _, tt := range []struct {
		name     string
		opts     WriterOptions
		wantComp Compression
		wantFlag uint16
	}{
		{name: "uncompressed", wantComp: Gzip, wantFlag: uncompressed | flagNoXattrs},
		{name: "zstd", opts: WriterOptions{Compression: Zstd}, wantComp: Zstd, wantFlag: flagNoXattrs},
		{name: "gzip", opts: WriterOptions{Compression: Gzip, BlockSize: 1 << 16}, wantComp: Gzip, wantFlag: flagNoXattrs},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := writeTestImage(t, src, tt.opts)
			sb := readSuperblock(t, img)
			bs := tt.opts.BlockSize
			if bs == 0 {
				bs = DefaultBlockSize
			}
			if sb.Compression != uint16(tt.wantComp) || sb.Flags != tt.wantFlag || sb.BlockSize != bs || sb.InodeCount != 3 ||
				sb.ExportTableStart != invalidTableStart || sb.XattrIDTableStart != invalidTableStart || sb.IDCount != wantIDs {
				t.Errorf("superblock = %+v, want compression %d, flags %#x, block size %d, 3 inodes, %d ids, no export or xattr table",
					sb, tt.wantComp, tt.wantFlag, bs, wantIDs)
			}
			st, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			if sb.BytesUsed > uint64(st.Size()) || uint64(st.Size())-sb.BytesUsed >= 4096 {
				t.Errorf("bytes used = %d in an image of %d bytes, want padding to 4096 only", sb.BytesUsed, st.Size())
			}
		})
	}
}

func TestWriteDirErrors(t *testing.T) {
	src := t.TempDir()
	file := filepath.Join(src, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		dir  string
		opts WriterOptions
	}{
		{name: "lz4", dir: src, opts: WriterOptions{Compression: LZ4}},
		{name: "block-size-not-power-of-two", dir: src, opts: WriterOptions{BlockSize: 100000}},
		{name: "block-size-too-large", dir: src, opts: WriterOptions{BlockSize: 2 << 20}},
		{name: "zstd-level", dir: src, opts: WriterOptions{Compression: Zstd, Level: 23}},
		{name: "gzip-level", dir: src, opts: WriterOptions{Compression: Gzip, Level: 10}},
		{name: "missing-dir", dir: filepath.Join(src, "missing")},
		{name: "not-a-dir", dir: file},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "image"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := WriteDir(f, tt.dir, tt.opts); err == nil {
				t.Errorf("WriteDir(%s, %+v) = nil, want an error", tt.dir, tt.opts)
			}
		})
	}
}

func TestWriteDirSkipsOutput(t *testing.T) {
	distritest.NeedRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(src, "image.squashfs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteDir(f, src, WriterOptions{}); err != nil {
		t.Fatalf("WriteDir(%s, {}) = %v, want nil", src, err)
	}
	mnt := distritest.MountSquashfs(t, img)
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "f" {
		t.Errorf("image holds %v, want only f", ents)
	}
}

func TestWriterEncodeDev(t *testing.T) {
	for _, tt := range []struct {
		name         string
		major, minor uint32
		want         uint32
	}{
		{name: "null", major: 1, minor: 3, want: 0x103},
		{name: "large-minor", major: 259, minor: 300, want: 0x2c | 259<<8 | 0x100<<12},
		{name: "max", major: 4095, minor: 1<<20 - 1, want: 0xffffffff},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeDev(unix.Mkdev(tt.major, tt.minor)); got != tt.want {
				t.Errorf("encodeDev(%d:%d) = %#x, want %#x", tt.major, tt.minor, got, tt.want)
			}
		})
	}
}

func TestWriterMetaBlocks(t *testing.T) {
	m := newMetaWriter(nil)
	rec := bytes.Repeat([]byte{7}, 3000)
	var refs []uint64
	for range 6 {
		refs = append(refs, m.ref())
		m.write(rec)
	}
	m.flush()
	// Stored uncompressed, every block is 8192 bytes behind a 2-byte word.
	want := []uint64{0, 3000, 6000, 8194<<16 | 808, 8194<<16 | 3808, 8194<<16 | 6808}
	for i := range want {
		if refs[i] != want[i] {
			t.Errorf("ref of record %d = %#x, want %#x", i, refs[i], want[i])
		}
	}
	if got, want := len(m.out), 2+8192+2+8192+2+1616; got != want {
		t.Errorf("len(out) = %d, want %d", got, want)
	}
	if got, want := m.out[0:2], []byte{0x00, 0xa0}; !bytes.Equal(got, want) {
		t.Errorf("first length word = %x, want %x (8192 | uncompressed)", got, want)
	}
}

func TestWriteDirWriteError(t *testing.T) {
	// More files than the walk may run ahead, and more data than the
	// output buffers hold.
	src := t.TempDir()
	for i := range 5000 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprint(i)), distritest.Bytes(4000, int64(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []Compression{None, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			// Every write to /dev/full fails with ENOSPC: WriteDir must
			// report it, not hang on the walk running ahead.
			f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				distritest.Skip(t, "no /dev/full: %v", err)
			}
			defer f.Close()
			err = WriteDir(f, src, WriterOptions{Compression: c, Level: 1, BlockSize: 4096})
			if !errors.Is(err, unix.ENOSPC) {
				t.Errorf("WriteDir(/dev/full) = %v, want ENOSPC", err)
			}
		})
	}
}

func TestWriteDirSparseAfterFullBuffer(t *testing.T) {
	distritest.NeedRoot(t)
	// Uncompressed, "a" leaves room for two 4 KiB blocks in the 4 MiB
	// output buffer; "b" then starts with four data blocks, a hole and
	// more data. The blocks of "b" that do not fit must not be taken for
	// the hole.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), distritest.Bytes(1022*4096, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(src, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(distritest.Bytes(4*4096, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(distritest.Bytes(3*4096, 3), 100*4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// "c" ends in a hole, so its tail (a fragment when compressing) is one.
	if err := os.WriteFile(filepath.Join(src, "c"), distritest.Bytes(4096, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(src, "c"), 5*4096+100); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{None, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			img := writeTestImage(t, src, WriterOptions{Compression: c, Level: 1, BlockSize: 4096})
			checkImage(t, src, img)
		})
	}
}

func TestWriteDirRandomLayouts(t *testing.T) {
	distritest.NeedRoot(t)
	// Files of data blocks, written zero blocks, holes and blocks that
	// are zero but for one byte, at random, with 4 KiB blocks so that the
	// output buffer boundaries fall everywhere.
	src := t.TempDir()
	const bs = 4096
	rnd := distritest.Bytes(1<<16, 99)
	next := func(n int) int {
		v := int(rnd[0])<<8 | int(rnd[1])
		rnd = rnd[2:]
		return v % n
	}
	for i := range 40 {
		f, err := os.Create(filepath.Join(src, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		blocks := next(400)
		for b := range blocks {
			off := int64(b) * bs
			var werr error
			switch next(4) {
			case 0:
				_, werr = f.WriteAt(distritest.Bytes(bs, int64(i*1000+b)), off)
			case 1:
				_, werr = f.WriteAt(make([]byte, bs), off)
			case 2:
				// a hole
			case 3:
				one := make([]byte, bs)
				one[next(bs)] = 1
				_, werr = f.WriteAt(one, off)
			}
			if werr != nil {
				t.Fatal(werr)
			}
		}
		size := int64(blocks)*bs + int64(next(bs))
		if next(2) == 0 {
			_, err = f.WriteAt(distritest.Bytes(int(size%bs), int64(i)), size-size%bs)
		} else {
			err = f.Truncate(size)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []Compression{None, Zstd, Gzip} {
		t.Run(c.String(), func(t *testing.T) {
			img := writeTestImage(t, src, WriterOptions{Compression: c, Level: 1, BlockSize: bs})
			checkImage(t, src, img)
		})
	}
}
