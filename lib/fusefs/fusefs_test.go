package fusefs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/fusectl"
	"distri.dev/distri/lib/pb"
)

// Both ways of reading files: opened by the kernel alone, read through
// the daemon and the page cache (the default), and opened by the daemon,
// with passthrough where the kernel offers it.
var readModes = []struct {
	name string
	opts []mountOpt
}{
	{name: "page cache"},
	{name: "passthrough", opts: []mountOpt{passthroughReads}},
}

func TestRevisions(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "less-amd64-530-2", map[string]string{"bin/less": "old", "bin/lessold": "gone in 10"}, nil)
	mkpkg(t, store, "less-amd64-530-10", map[string]string{"bin/less": "new"}, nil)
	mkpkg(t, store, "less-amd64-9-9", map[string]string{"bin/less": "nine"}, nil)
	_, mnt, _ := mountStore(t, store)

	if got, want := readlink(t, filepath.Join(mnt, "bin/less")), "../less-amd64-530-10/bin/less"; got != want {
		t.Errorf("/ro/bin/less → %q, want %q", got, want)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "bin/less"))
	if err != nil || string(b) != "new" {
		t.Errorf("read /ro/bin/less = %q, %v; want \"new\"", b, err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "bin/lessold")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lstat /ro/bin/lessold (only in an older revision) = %v, want not exist", err)
	}
	for _, full := range []string{"less-amd64-530-2", "less-amd64-530-10", "less-amd64-9-9"} {
		if _, err := os.Stat(filepath.Join(mnt, full, "bin/less")); err != nil {
			t.Errorf("every revision stays reachable: %v", err)
		}
	}
}

func TestConflictMountsAgree(t *testing.T) {
	store := t.TempDir()
	// Created in an order unlike the winner's, with revisions that do
	// not favour it either.
	mkpkg(t, store, "gamma-amd64-1-7", map[string]string{"bin/foo": "gamma"}, nil)
	mkpkg(t, store, "alpha-amd64-1-1", map[string]string{"bin/foo": "alpha"}, nil)
	mkpkg(t, store, "beta-amd64-1-9", map[string]string{"bin/foo": "beta", "bin/beta": "beta"}, nil)
	var targets []string
	for range 3 {
		_, mnt, _ := mountStore(t, store)
		targets = append(targets, readlink(t, filepath.Join(mnt, "bin/foo")))
		owners, err := Owner(filepath.Join(mnt, "bin/foo"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"alpha-amd64-1-1"}, owners); diff != "" {
			t.Errorf("Owner(/ro/bin/foo) mismatch (-want +got):\n%s", diff)
		}
	}
	want := "../alpha-amd64-1-1/bin/foo"
	for i, got := range targets {
		if got != want {
			t.Errorf("mount %d: /ro/bin/foo → %q, want %q", i, got, want)
		}
	}
}

func TestOwner(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "zlib-amd64-1.3-4", map[string]string{"out/lib/libz.so.1": "z", "out/lib/pkgconfig/zlib.pc": "pc"}, nil)
	mkpkg(t, store, "bash-amd64-5.2.15-3", map[string]string{"bin/bash": "bash", "out/lib/pkgconfig/bash.pc": "pc"}, nil)
	_, mnt, _ := mountStore(t, store)
	// A root file system's /bin is a symlink to /ro/bin.
	rootfs := t.TempDir()
	if err := os.Symlink(filepath.Join(mnt, "bin"), filepath.Join(rootfs, "bin")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		path    string
		want    []string
		wantErr error
	}{
		{name: "exchange symlink", path: "lib/libz.so.1", want: []string{"zlib-amd64-1.3-4"}},
		{name: "through the root's /bin", path: filepath.Join(rootfs, "bin/bash"), want: []string{"bash-amd64-5.2.15-3"}},
		{name: "exchange directory", path: "lib/pkgconfig", want: []string{"bash-amd64-5.2.15-3", "zlib-amd64-1.3-4"}},
		{name: "inside a package", path: "zlib-amd64-1.3-4/out/lib", want: []string{"zlib-amd64-1.3-4"}},
		{name: "the root", path: ".", wantErr: ErrNoOwner},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path
			if !filepath.IsAbs(p) {
				p = filepath.Join(mnt, p)
			}
			got, err := Owner(p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Owner(%s) = %v, want error %v", p, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Owner(%s) mismatch (-want +got):\n%s", p, diff)
			}
		})
	}
	if _, err := Owner(t.TempDir()); err == nil {
		t.Errorf("Owner of a path outside /ro succeeded")
	}
}

func TestFileDirClash(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "a-amd64-1-1", map[string]string{"out/lib/foo": "a file", "out/share/x": "x"}, nil)
	mkpkg(t, store, "b-amd64-1-1", map[string]string{"out/lib/foo/bar.so": "in a dir"}, nil)
	mkpkg(t, store, "c-amd64-1-1", map[string]string{"out/share/x/y": "dir from c"}, nil)
	_, mnt, _ := mountStore(t, store)
	for _, tt := range []struct {
		name string
		dir  string
		want map[string]uint8
	}{
		{name: "lib", dir: "lib", want: map[string]uint8{"foo": unix.DT_DIR}},
		{name: "share", dir: "share", want: map[string]uint8{"x": unix.DT_DIR}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// dirTypes fails on a name listed twice.
			if diff := cmp.Diff(tt.want, dirTypes(t, filepath.Join(mnt, tt.dir))); diff != "" {
				t.Errorf("getdents /ro/%s mismatch (-want +got):\n%s", tt.dir, diff)
			}
		})
	}
	b, err := os.ReadFile(filepath.Join(mnt, "lib/foo/bar.so"))
	if err != nil || string(b) != "in a dir" {
		t.Errorf("read /ro/lib/foo/bar.so = %q, %v", b, err)
	}
}

func TestDirentTypes(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "a-amd64-1-1", map[string]string{
		"bin/a":             "#!/bin/sh\n",
		"out/lib/libz.so.1": "z",
		"out/lib/libz.so":   "symlink:libz.so.1",
		"out/lib/sub/":      "",
	}, nil)
	_, mnt, _ := mountStore(t, store)
	if err := os.Symlink("x", filepath.Join(t.TempDir(), "probe")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		dir  string
		want map[string]uint8
	}{
		// The empty out/lib/sub is provided too (TestEmptyExchangeDir).
		{name: "exchange", dir: "lib", want: map[string]uint8{"libz.so": unix.DT_LNK, "libz.so.1": unix.DT_LNK, "sub": unix.DT_DIR}},
		{name: "image", dir: "a-amd64-1-1/out/lib", want: map[string]uint8{"libz.so": unix.DT_LNK, "libz.so.1": unix.DT_REG, "sub": unix.DT_DIR}},
		{name: "root", dir: ".", want: map[string]uint8{
			".ctl": unix.DT_LNK, "a-amd64-1-1": unix.DT_DIR,
			"bin": unix.DT_DIR, "sbin": unix.DT_DIR, "lib": unix.DT_DIR, "lib64": unix.DT_DIR, "libexec": unix.DT_DIR,
			"include": unix.DT_DIR, "share": unix.DT_DIR, "gopath": unix.DT_DIR, "debug": unix.DT_DIR,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, dirTypes(t, filepath.Join(mnt, tt.dir))); diff != "" {
				t.Errorf("getdents /ro/%s mismatch (-want +got):\n%s", tt.dir, diff)
			}
		})
	}
}

func TestListingRootOpensNothing(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "a-amd64-1-1", map[string]string{"bin/a": "a"}, nil)
	mkpkg(t, store, "b-amd64-1-1", map[string]string{"bin/b": "b"}, nil)
	srv, mnt, _ := mountStore(t, store)
	// ls /ro and ls /ro/bin: READDIRPLUS, readlink.
	if _, err := os.ReadDir(mnt); err != nil {
		t.Fatal(err)
	}
	readlink(t, filepath.Join(mnt, "bin/a"))
	for full, img := range srv.tree.Load().pkgs {
		if img.opened() {
			t.Errorf("listing /ro and /ro/bin opened %s", full)
		}
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "bin/a")); err != nil {
		t.Fatal(err)
	}
	if !srv.tree.Load().pkgs["a-amd64-1-1"].opened() {
		t.Errorf("reading /ro/bin/a did not open a-amd64-1-1")
	}
}

func TestStatfs(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "a-amd64-1-1", map[string]string{"bin/a": strings.Repeat("a", 100000)}, nil)
	_, mnt, _ := mountStore(t, store)
	fi, err := os.Stat(filepath.Join(store, "a-amd64-1-1.squashfs"))
	if err != nil {
		t.Fatal(err)
	}
	var st, storeSt unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(store, &storeSt); err != nil {
		t.Fatal(err)
	}
	used := int64(st.Blocks-st.Bfree) * st.Bsize
	if used < fi.Size() || used > fi.Size()+st.Bsize {
		t.Errorf("statfs: %d bytes used, want the image size %d", used, fi.Size())
	}
	if st.Bavail == 0 || storeSt.Bavail == 0 {
		t.Errorf("statfs: %d blocks available, want the store's free space", st.Bavail)
	}
}

func TestRescanWhileReading(t *testing.T) {
	store := t.TempDir()
	srcU := mkpkg(t, store, "stay-amd64-1-1", map[string]string{"bin/stay": strings.Repeat("stay\n", 50000), "out/lib/libstay.so": "lib"}, nil)
	_, mnt, logs := mountStore(t, store)

	// Another process reads the unaffected package in a loop.
	work := t.TempDir()
	list := filepath.Join(work, "files")
	lines := []string{
		filepath.Join(mnt, "bin/stay") + "\t" + filepath.Join(srcU, "bin/stay"),
		filepath.Join(mnt, "lib/libstay.so") + "\t" + filepath.Join(srcU, "out/lib/libstay.so"),
	}
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := filepath.Join(work, "stop")
	reader := exec.Command(os.Args[0])
	reader.Env = append(os.Environ(), helperEnv+"=reader", "DISTRI_FUSEFS_FILES="+list, "DISTRI_FUSEFS_STOP="+stop, "DISTRI_FUSEFS_SEED=1")
	var out strings.Builder
	reader.Stdout, reader.Stderr = &out, &out
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}

	newBin := filepath.Join(mnt, "bin/new")
	newDir := filepath.Join(mnt, "new-amd64-1-1")
	for round := range 5 {
		// Looked up before it exists: the kernel caches the miss.
		if _, err := os.Lstat(newBin); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: lstat %s before install = %v", round, newBin, err)
		}
		mkpkg(t, store, "new-amd64-1-1", map[string]string{"bin/new": "new", "out/share/new/doc": "doc"}, nil)
		if err := fusectl.RescanMount(t.Context(), mnt); err != nil {
			t.Fatal(err)
		}
		// Immediately visible: no sleep, no timeout to wait out.
		if b, err := os.ReadFile(newBin); err != nil || string(b) != "new" {
			t.Fatalf("round %d: read %s after install = %q, %v", round, newBin, b, err)
		}
		if !slices.Contains(names(t, mnt), "new-amd64-1-1") {
			t.Fatalf("round %d: ls /ro lacks new-amd64-1-1 after install", round)
		}
		removePkg(t, store, "new-amd64-1-1")
		if err := fusectl.RescanMount(t.Context(), mnt); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{newBin, newDir, filepath.Join(mnt, "share/new")} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("round %d: lstat %s after removal = %v, want not exist", round, p, err)
			}
		}
		for _, d := range []string{".", "bin", "share"} {
			if ns := names(t, filepath.Join(mnt, d)); slices.Contains(ns, "new-amd64-1-1") || slices.Contains(ns, "new") {
				t.Errorf("round %d: ls /ro/%s after removal still lists it: %v", round, d, ns)
			}
		}
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reader.Wait(); err != nil {
		t.Errorf("reader of the unaffected package: %v: %s", err, out.String())
	}
	t.Logf("reader: %s reads", strings.TrimSpace(out.String()))
	if strings.Contains(logs.String(), "EIO") {
		t.Errorf("daemon logged errors:\n%s", logs)
	}
}

// names lists dir.
func names(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name())
	}
	return ns
}

func TestOpenFileOfRemovedPackage(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			store := t.TempDir()
			content := distritest.Bytes(3<<20+5, 3)
			src := mkpkg(t, store, "gone-amd64-1-1", map[string]string{"bin/gone": string(content)}, nil)
			srv, mnt, _ := mountStore(t, store, mode.opts...)
			f, err := os.Open(filepath.Join(mnt, "bin/gone"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			head := make([]byte, 4096)
			if _, err := f.ReadAt(head, 0); err != nil {
				t.Fatal(err)
			}
			img := srv.tree.Load().pkgs["gone-amd64-1-1"]
			if mode.opts != nil {
				// Where the kernel offers passthrough, a large file uses
				// it: the image is mounted by the kernel.
				offered := srv.fuse.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
				img.kmMu.Lock()
				mounted := img.km != nil
				img.kmMu.Unlock()
				if offered && (!srv.Passthrough() || !mounted) {
					t.Errorf("kernel offers passthrough, but Passthrough() = %v, image mounted by the kernel = %v", srv.Passthrough(), mounted)
				}
			}
			removePkg(t, store, "gone-amd64-1-1")
			if err := srv.Rescan(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(mnt, "gone-amd64-1-1")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lstat of the removed package = %v, want not exist", err)
			}
			// The open file reads on, the whole of it (not just what the
			// page cache holds).
			got := make([]byte, len(content))
			if n, err := f.ReadAt(got, 0); err != nil || n != len(content) {
				t.Fatalf("read the open file of a removed package: %d bytes, %v", n, err)
			}
			if string(got) != string(content) {
				t.Errorf("open file of a removed package: content differs from %s", src)
			}
			f.Close()
			// Closing the last file closes the image (release is
			// asynchronous to close(2): the kernel sends RELEASE later).
			for range 100 {
				img.mu.Lock()
				closed := img.closed
				img.mu.Unlock()
				if closed {
					return
				}
				waitABit()
			}
			t.Errorf("image of the removed package still open after its last file was closed")
		})
	}
}

func TestCorruptImage(t *testing.T) {
	store := t.TempDir()
	mkpkg(t, store, "good-amd64-1-1", map[string]string{"bin/good": "good"}, nil)
	mkpkg(t, store, "bad-amd64-1-1", map[string]string{"bin/bad": strings.Repeat("bad", 100000)}, nil)
	img := filepath.Join(store, "bad-amd64-1-1.squashfs")
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, mnt, logs := mountStore(t, store)
	for range 3 {
		if _, err := os.ReadFile(filepath.Join(mnt, "bin/bad")); !errors.Is(err, syscall.EIO) {
			t.Errorf("read /ro/bin/bad of a truncated image = %v, want EIO", err)
		}
		if _, err := os.Stat(filepath.Join(mnt, "bad-amd64-1-1")); !errors.Is(err, syscall.EIO) {
			t.Errorf("stat /ro/bad-amd64-1-1 = %v, want EIO", err)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "bin/good")); err != nil || string(b) != "good" {
			t.Errorf("read /ro/bin/good = %q, %v", b, err)
		}
	}
	if _, err := os.ReadDir(mnt); err != nil {
		t.Errorf("ls /ro with a corrupt package: %v", err)
	}
	if got := countLines(logs.String(), "bad-amd64-1-1"); got != 1 {
		t.Errorf("the corrupt package was logged %d times, want once:\n%s", got, logs)
	}
}

func TestMksquashfsImage(t *testing.T) {
	mksquashfs := distritest.NeedTool(t, "mksquashfs")
	src := t.TempDir()
	os.Chmod(src, 0o755)
	files := map[string]string{
		"bin/hello":           "#!/bin/sh\necho hello\n",
		"out/lib/libtiny.so":  "tiny", // fragments
		"out/lib/libtiny.so1": "symlink:libtiny.so",
		"out/share/big":       string(distritest.Bytes(700000, 9)),
		"out/share/text":      strings.Repeat("compressible ", 30000),
	}
	writeTree(t, src, files)
	store := t.TempDir()
	const full = "tiny-amd64-1.0-1"
	out, err := exec.Command(mksquashfs, src, filepath.Join(store, full+".squashfs"), "-comp", "zstd", "-noappend", "-quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, out)
	}
	// A meta without provides: the daemon computes them from the image.
	if err := pb.WriteMetaFile(filepath.Join(store, full+".meta.textproto"), &pb.Meta{Version: new("1.0-1")}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			_, mnt, _ := mountStore(t, store, mode.opts...)
			if got, want := readlink(t, filepath.Join(mnt, "share/big")), "../"+full+"/out/share/big"; got != want {
				t.Errorf("/ro/share/big → %q, want %q", got, want)
			}
			if _, err := os.Stat(filepath.Join(mnt, "bin/hello")); err != nil {
				t.Error(err)
			}
			if diffs := distritest.DiffTrees(src, filepath.Join(mnt, full)); len(diffs) > 0 {
				t.Errorf("/ro/%s differs from its source:\n%s", full, strings.Join(diffs, "\n"))
			}
		})
	}
}

func TestSourceTreeRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "rich")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	distritest.RichTree(t, src)
	store := t.TempDir()
	const full = "rich-amd64-1-1"
	packDir(t, store, full, src, nil)
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			_, mnt, _ := mountStore(t, store, mode.opts...)
			if diffs := distritest.DiffTrees(src, filepath.Join(mnt, full)); len(diffs) > 0 {
				t.Errorf("/ro/%s differs from its source:\n%s", full, strings.Join(diffs, "\n"))
			}
		})
	}
}

func TestSetuidAndCapability(t *testing.T) {
	setpriv := distritest.NeedTool(t, "setpriv")
	id := distritest.NeedTool(t, "id")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "privileged")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, map[string]string{"bin/": ""})
	copyFile(t, id, filepath.Join(src, "bin/id"), 0o755|os.ModeSetuid)
	// This test binary, run as helper "capeff", prints its effective
	// capabilities; with cap_net_raw+ep it has CAP_NET_RAW (bit 13).
	copyFile(t, self, filepath.Join(src, "bin/capeff"), 0o755)
	if err := unix.Setxattr(filepath.Join(src, "bin/capeff"), "security.capability", distritest.CapNetRaw(), 0); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	packDir(t, store, "privileged-amd64-1-1", src, nil)
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			_, mnt, _ := mountStore(t, store, mode.opts...)
			asNobody := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, args...)...)
				cmd.Env = append(os.Environ(), helperEnv+"=capeff")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v: %v: %s", cmd.Args, err, out)
				}
				return strings.TrimSpace(string(out))
			}
			if got, want := asNobody(filepath.Join(mnt, "bin/id"), "-u"), "0"; got != want {
				t.Errorf("setuid /ro/bin/id -u as nobody = %q, want %q", got, want)
			}
			if got, want := asNobody(filepath.Join(mnt, "bin/capeff")), "0000000000002000"; got != want {
				t.Errorf("CapEff of /ro/bin/capeff (cap_net_raw+ep) as nobody = %q, want %q", got, want)
			}
			if got := asNobody(id, "-u"); got != "65534" {
				t.Errorf("control: id -u as nobody = %q", got)
			}
			// No SELinux labels: "not supported" (ls -l then stops
			// asking), where other absent attributes are ENODATA,
			// on image files, exchange symlinks and directories.
			for _, p := range []string{"bin/capeff", "bin", "privileged-amd64-1-1/bin/capeff", "privileged-amd64-1-1/bin"} {
				p = filepath.Join(mnt, p)
				if _, err := unix.Lgetxattr(p, "security.selinux", make([]byte, 256)); err != unix.EOPNOTSUPP {
					t.Errorf("lgetxattr %s security.selinux = %v, want EOPNOTSUPP", p, err)
				}
				// POSIX ACLs: "not supported" too, as on the kernel's
				// squashfs, so a cold ls -l asks once, not per entry.
				if _, err := unix.Getxattr(p, "system.posix_acl_access", make([]byte, 256)); err != unix.EOPNOTSUPP {
					t.Errorf("getxattr %s system.posix_acl_access = %v, want EOPNOTSUPP", p, err)
				}
				if _, err := unix.Lgetxattr(p, "security.ima", make([]byte, 256)); err != unix.ENODATA {
					t.Errorf("lgetxattr %s security.ima = %v, want ENODATA", p, err)
				}
			}
			if _, err := unix.Getxattr(filepath.Join(mnt, "bin/capeff"), "security.capability", make([]byte, 256)); err != nil {
				t.Errorf("getxattr security.capability after security.selinux: %v", err)
			}
		})
	}
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

func TestRuntimeUnion(t *testing.T) {
	const host = "irssi-amd64-1.2-3"
	// A plugin's meta: merge its out/lib/irssi/modules into the host's.
	union := func() *pb.Meta {
		return &pb.Meta{RuntimeUnion: []*pb.Union{{Dir: new("lib/irssi/modules"), Pkg: new(host)}}}
	}
	store := t.TempDir()
	mkpkg(t, store, host, map[string]string{
		"bin/irssi":                        "irssi",
		"out/lib/irssi/modules/libcore.so": "core",
		"out/lib/irssi/modules/perl/a.pm":  "host a",
		"out/lib/irssi/modules/perl/b.pm":  "host b",
	}, nil)
	mkpkg(t, store, "irssi-robustirc-amd64-1-1", map[string]string{
		"out/lib/irssi/modules/librobustirc.so": "robust",
		"out/lib/irssi/modules/perl/b.pm":       "robust b",
		"out/lib/irssi/modules/perl/c.pm":       "robust c",
		"out/lib/irssi/modules/extra/x/y.so":    "robust y",
	}, union())
	mkpkg(t, store, "irssi-zz-amd64-1-1", map[string]string{
		"out/lib/irssi/modules/extra/x/z.so": "zz z",
		"out/lib/irssi/modules/extra/x/y.so": "zz y",
	}, union())
	srv, mnt, _ := mountStore(t, store)
	modules := filepath.Join(mnt, host, "out/lib/irssi/modules")

	// At mount.
	if diff := cmp.Diff([]string{"extra", "libcore.so", "librobustirc.so", "perl"}, names(t, modules)); diff != "" {
		t.Errorf("ls %s at mount mismatch (-want +got):\n%s", modules, diff)
	}
	if b, err := os.ReadFile(filepath.Join(modules, "librobustirc.so")); err != nil || string(b) != "robust" {
		t.Errorf("read the plugin through the host = %q, %v", b, err)
	}
	// Subdirectories merge too: the host's entries win, then plugins in
	// <name>-<arch> order, in a directory of the host's and in one only
	// plugins have.
	for dir, want := range map[string]map[string]string{
		"perl":    {"a.pm": "host a", "b.pm": "host b", "c.pm": "robust c"},
		"extra/x": {"y.so": "robust y", "z.so": "zz z"},
	} {
		d := filepath.Join(modules, dir)
		var wantNames []string
		for name, content := range want {
			wantNames = append(wantNames, name)
			if b, err := os.ReadFile(filepath.Join(d, name)); err != nil || string(b) != content {
				t.Errorf("read %s/%s = %q, %v, want %q", d, name, b, err, content)
			}
		}
		slices.Sort(wantNames)
		if diff := cmp.Diff(wantNames, names(t, d)); diff != "" {
			t.Errorf("ls %s mismatch (-want +got):\n%s", d, diff)
		}
	}

	// A plugin installed later; its file was looked up (and missed)
	// before.
	late := filepath.Join(modules, "liblate.so")
	if _, err := os.Stat(late); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat %s before install = %v", late, err)
	}
	mkpkg(t, store, "irssi-late-amd64-1-1", map[string]string{
		"out/lib/irssi/modules/liblate.so":   "late",
		"out/lib/irssi/modules/perl/late.pm": "late pm",
	}, union())
	if err := srv.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"extra", "libcore.so", "liblate.so", "librobustirc.so", "perl"}, names(t, modules)); diff != "" {
		t.Errorf("ls %s after installing a plugin mismatch (-want +got):\n%s", modules, diff)
	}
	if b, err := os.ReadFile(late); err != nil || string(b) != "late" {
		t.Errorf("read %s after install = %q, %v", late, b, err)
	}
	perl := filepath.Join(modules, "perl") // listed before
	if diff := cmp.Diff([]string{"a.pm", "b.pm", "c.pm", "late.pm"}, names(t, perl)); diff != "" {
		t.Errorf("ls %s after installing a plugin mismatch (-want +got):\n%s", perl, diff)
	}

	// And removed again.
	removePkg(t, store, "irssi-late-amd64-1-1")
	if err := srv.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"extra", "libcore.so", "librobustirc.so", "perl"}, names(t, modules)); diff != "" {
		t.Errorf("ls %s after removing a plugin mismatch (-want +got):\n%s", modules, diff)
	}
	if _, err := os.Stat(late); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after removal = %v, want not exist", late, err)
	}
	if diff := cmp.Diff([]string{"a.pm", "b.pm", "c.pm"}, names(t, perl)); diff != "" {
		t.Errorf("ls %s after removing a plugin mismatch (-want +got):\n%s", perl, diff)
	}
}

func TestCtlRescanNotMounted(t *testing.T) {
	if err := fusectl.RescanMount(t.Context(), t.TempDir()); err != nil {
		t.Errorf("fusectl.RescanMount of a directory nothing is mounted on = %v, want nil", err)
	}
	if err := fusectl.RescanMount(t.Context(), filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("fusectl.RescanMount of a missing directory = %v, want nil", err)
	}
}
