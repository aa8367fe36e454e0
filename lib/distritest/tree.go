package distritest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeEpoch is the mtime base of the trees RichTree makes: fixed, so two
// trees made apart in time are the same.
var treeEpoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// RichTree fills dir with a tree that has every kind of entry a package
// image may hold, for round-trip tests of image writers and readers:
// files of sizes around block boundaries, a directory with 3000 entries,
// symlinks (relative, absolute, dangling, long), hard links, every
// permission bit, and many xattrs (user.* on 400 files and on
// directories, security.capability). Run as root, it adds device nodes,
// a fifo, a socket and assorted owners. Every mtime is fixed.
func RichTree(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode)) // WriteFile's mode is subject to umask and drops special bits
	}
	const block = 128 << 10
	for _, n := range []int{0, 1, 4095, 4096, block - 1, block, block + 1, 3*block + 17} {
		write(fmt.Sprintf("sizes/%d", n), Bytes(n, int64(n)), 0o644)
	}
	write("sizes/text", bytes.Repeat([]byte("distri packages are squashfs images\n"), 40000), 0o644)
	write("sizes/random-1M", Bytes(1<<20+333, 42), 0o644)

	write("modes/setuid", []byte("#!/bin/sh\n"), 0o755|os.ModeSetuid)
	write("modes/setgid", []byte("x"), 0o755|os.ModeSetgid)
	write("modes/private", []byte("secret"), 0o600)
	write("modes/none", []byte("none"), 0o000)
	must(os.MkdirAll(filepath.Join(dir, "modes/sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "modes/sticky"), 0o777|os.ModeSticky))
	must(os.MkdirAll(filepath.Join(dir, "modes/empty"), 0o700))

	for i := range 3000 {
		write(fmt.Sprintf("big/entry-%04d", i), []byte(fmt.Sprintf("entry %d\n", i)), 0o644)
	}

	must(os.MkdirAll(filepath.Join(dir, "links/sub"), 0o755))
	must(os.Symlink("../sizes/1", filepath.Join(dir, "links/relative")))
	must(os.Symlink("/ro/bash-amd64-5.2.15-3/out/bin/bash", filepath.Join(dir, "links/absolute")))
	must(os.Symlink("does-not-exist", filepath.Join(dir, "links/dangling")))
	must(os.Symlink(strings.Repeat("long/", 800)+"end", filepath.Join(dir, "links/long")))
	write("links/hard1", []byte("hard link content\n"), 0o644)
	must(os.Link(filepath.Join(dir, "links/hard1"), filepath.Join(dir, "links/sub/hard2")))
	must(os.Link(filepath.Join(dir, "links/hard1"), filepath.Join(dir, "links/hard3")))

	// Xattrs. user.* needs a file system that stores them; fail loudly
	// rather than produce a tree that silently lacks them.
	for i := range 400 {
		p := filepath.Join(dir, fmt.Sprintf("xattrs/f%03d", i))
		write(fmt.Sprintf("xattrs/f%03d", i), []byte{byte(i)}, 0o644)
		must(setxattr(p, "user.index", []byte(fmt.Sprint(i))))
		if i%2 == 0 {
			must(setxattr(p, "user.shared", []byte("same value on many files")))
		}
	}
	many := filepath.Join(dir, "xattrs/many")
	write("xattrs/many", []byte("many"), 0o644)
	for i := range 30 {
		must(setxattr(many, fmt.Sprintf("user.attr%02d", i), bytes.Repeat([]byte{byte('a' + i%26)}, i*3)))
	}
	must(setxattr(many, "user.large", Bytes(1200, 7)))
	must(setxattr(filepath.Join(dir, "xattrs"), "user.on-a-directory", []byte("yes")))
	if os.Geteuid() == 0 {
		// Setting a file capability needs CAP_SETFCAP.
		capFile := filepath.Join(dir, "xattrs/ping")
		write("xattrs/ping", []byte("\x7fELF pretend"), 0o755)
		must(setxattr(capFile, "security.capability", CapNetRaw()))

		must(os.MkdirAll(filepath.Join(dir, "special"), 0o755))
		must(unix.Mknod(filepath.Join(dir, "special/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "special/disk"), unix.S_IFBLK|0o660, int(unix.Mkdev(259, 300))))
		must(unix.Mknod(filepath.Join(dir, "special/fifo"), unix.S_IFIFO|0o644, 0))
		sock := filepath.Join(dir, "special/socket")
		l, err := net.Listen("unix", sock)
		must(err)
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		write("owners/u1000", []byte("user"), 0o644)
		must(os.Lchown(filepath.Join(dir, "owners/u1000"), 1000, 1000))
		write("owners/mixed", []byte("mixed"), 0o640)
		must(os.Lchown(filepath.Join(dir, "owners/mixed"), 0, 42))
		must(os.Symlink("u1000", filepath.Join(dir, "owners/link")))
		must(os.Lchown(filepath.Join(dir, "owners/link"), 65534, 65534))
		must(os.Lchown(filepath.Join(dir, "owners"), 1000, 100))
	}
	FixMtimes(t, dir)
}

// FixMtimes sets every mtime under dir (dir included) to a fixed time that
// depends only on the entry's path, directories last.
func FixMtimes(t testing.TB, dir string) {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return setMtime(p, dir)
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(dirs)
	for _, p := range dirs {
		if err := setMtime(p, dir); err != nil {
			t.Fatal(err)
		}
	}
}

func setMtime(p, root string) error {
	rel, _ := filepath.Rel(root, p)
	var h uint32
	for _, c := range []byte(rel) {
		h = h*31 + uint32(c)
	}
	mt := treeEpoch.Add(time.Duration(h%100000) * time.Second)
	ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func setxattr(path, name string, value []byte) error {
	if err := unix.Lsetxattr(path, name, value, 0); err != nil {
		return fmt.Errorf("setxattr %s %s: %w (the tree needs a file system with xattrs)", path, name, err)
	}
	return nil
}

// CapNetRaw returns a security.capability value (VFS_CAP_REVISION_2)
// granting cap_net_raw=ep, as setcap writes it.
func CapNetRaw() []byte {
	b := make([]byte, 20)
	b[0], b[3] = 0x01, 0x02 // magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	b[4+1] = 1 << (13 - 8)  // permitted[0] bit 13: CAP_NET_RAW
	return b
}

// Bytes returns n pseudo-random, poorly compressible bytes determined by seed.
func Bytes(n int, seed int64) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// DiffOptions relaxes DiffTreesWith.
type DiffOptions struct {
	IgnoreOwner  bool // uid and gid
	IgnoreXattrs bool
	IgnoreMtime  bool
	IgnoreLinks  bool // hard-link grouping
}

// DiffTrees compares the trees at want and got entry by entry: type,
// permission bits (setuid, setgid and sticky too), owner, mtime, size,
// content, symlink target, device number, xattrs and hard-link groups. It
// returns one line per difference; none means equal.
func DiffTrees(want, got string) []string {
	return DiffTreesWith(want, got, DiffOptions{})
}

// DiffTreesWith is DiffTrees with some properties ignored.
func DiffTreesWith(want, got string, opts DiffOptions) []string {
	var diffs []string
	addf := func(format string, args ...any) {
		if len(diffs) < 50 {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	wantLinks := map[uint64]string{} // inode in want → first path
	gotLinks := map[uint64]string{}
	seen := map[string]bool{}
	var bufs diffBuffers
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		g := filepath.Join(got, rel)
		var ws, gs unix.Stat_t
		if err := unix.Lstat(p, &ws); err != nil {
			return err
		}
		if err := unix.Lstat(g, &gs); err != nil {
			addf("%s: missing: %v", rel, err)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if ws.Mode != gs.Mode {
			addf("%s: mode %#o, want %#o", rel, gs.Mode, ws.Mode)
		}
		if !opts.IgnoreOwner && (ws.Uid != gs.Uid || ws.Gid != gs.Gid) {
			addf("%s: owner %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
		}
		if !opts.IgnoreMtime && ws.Mtim.Sec != gs.Mtim.Sec {
			addf("%s: mtime %v, want %v", rel, time.Unix(gs.Mtim.Unix()), time.Unix(ws.Mtim.Unix()))
		}
		typ := ws.Mode & unix.S_IFMT
		if typ != unix.S_IFDIR && ws.Size != gs.Size {
			addf("%s: size %d, want %d", rel, gs.Size, ws.Size)
		}
		if (typ == unix.S_IFCHR || typ == unix.S_IFBLK) && ws.Rdev != gs.Rdev {
			addf("%s: rdev %d:%d, want %d:%d", rel, unix.Major(gs.Rdev), unix.Minor(gs.Rdev), unix.Major(ws.Rdev), unix.Minor(ws.Rdev))
		}
		if !opts.IgnoreLinks && typ != unix.S_IFDIR {
			if ws.Nlink != gs.Nlink {
				addf("%s: nlink %d, want %d", rel, gs.Nlink, ws.Nlink)
			}
			if ws.Nlink > 1 {
				wFirst, wOK := wantLinks[ws.Ino]
				gFirst, gOK := gotLinks[gs.Ino]
				if wOK != gOK || wFirst != gFirst {
					addf("%s: hard link to %q, want a link to %q", rel, gFirst, wFirst)
				}
				if !wOK {
					wantLinks[ws.Ino] = rel
				}
				if !gOK {
					gotLinks[gs.Ino] = rel
				}
			}
		}
		switch typ {
		case unix.S_IFLNK:
			wt, _ := os.Readlink(p)
			gt, err := os.Readlink(g)
			if err != nil || wt != gt {
				addf("%s: symlink to %q (%v), want %q", rel, gt, err, wt)
			}
		case unix.S_IFREG:
			if typ == gs.Mode&unix.S_IFMT && ws.Size == gs.Size {
				if err := bufs.sameContent(p, g); err != nil {
					addf("%s: %v", rel, err)
				}
			}
		}
		if !opts.IgnoreXattrs {
			wx, err := bufs.xattrs(p)
			if err != nil {
				return err
			}
			gx, err := bufs.xattrs(g)
			if err != nil {
				addf("%s: %v", rel, err)
			} else if !xattrsEqual(wx, gx) {
				addf("%s: xattrs %s, want %s", rel, fmtXattrs(gx), fmtXattrs(wx))
			}
		}
		return nil
	})
	if err != nil {
		addf("walk %s: %v", want, err)
	}
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			addf("%s: unexpected entry", rel)
		}
		return nil
	})
	if err != nil {
		addf("walk %s: %v", got, err)
	}
	return diffs
}

// diffBuffers are the buffers DiffTrees reuses from entry to entry.
type diffBuffers struct {
	a, b       []byte // file content
	list, vals []byte // xattr names and values
}

func (d *diffBuffers) sameContent(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	if d.a == nil {
		d.a, d.b = make([]byte, 1<<20), make([]byte, 1<<20)
	}
	ba, bb := d.a, d.b
	var off int64
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("content differs in the MiB at offset %d", off)
		}
		off += int64(na)
		if ea != nil || eb != nil {
			if (ea == io.EOF || errors.Is(ea, io.ErrUnexpectedEOF)) && (eb == io.EOF || errors.Is(eb, io.ErrUnexpectedEOF)) {
				return nil
			}
			return fmt.Errorf("read: %v / %v", ea, eb)
		}
	}
}

// Xattrs returns the extended attributes of path (not following a
// symlink) as name → value.
func Xattrs(path string) (map[string]string, error) {
	var d diffBuffers
	return d.xattrs(path)
}

func (d *diffBuffers) xattrs(path string) (map[string]string, error) {
	if d.list == nil {
		d.list, d.vals = make([]byte, 64<<10), make([]byte, 64<<10)
	}
	buf, val := d.list, d.vals
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		if errors.Is(err, syscall.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	m := map[string]string{}
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		vn, err := unix.Lgetxattr(path, name, val)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		m[name] = string(val[:vn])
	}
	return m, nil
}

func xattrsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func fmtXattrs(m map[string]string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	sb.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			sb.WriteString(" ")
		}
		v := m[k]
		if len(v) > 16 {
			v = v[:16] + "…"
		}
		fmt.Fprintf(&sb, "%s=%q", k, v)
	}
	sb.WriteString("}")
	return sb.String()
}

// MountSquashfs loop-mounts image read-only with the kernel's squashfs
// driver and returns the mount point. The mount is removed in t.Cleanup;
// a failing unmount fails the test.
func MountSquashfs(t testing.TB, image string) string {
	t.Helper()
	NeedRoot(t)
	NeedTool(t, "mount")
	mnt := t.TempDir()
	out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", image, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("mount %s: %v: %s", image, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
