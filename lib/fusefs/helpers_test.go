package fusefs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
)

// Helpers of this test binary, run as subprocesses (os.Args[0] with
// DISTRI_FUSEFS_HELPER set): readers that must be another process than
// the daemon, and a program that reports its capabilities.
const helperEnv = "DISTRI_FUSEFS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "capeff":
		// Print the effective capability set, e.g. "CapEff:\t0000000000002000".
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "CapEff:") {
				fmt.Println(strings.TrimSpace(strings.TrimPrefix(line, "CapEff:")))
			}
		}
		os.Exit(0)
	case "reader":
		n, err := readerLoop(os.Getenv("DISTRI_FUSEFS_FILES"), os.Getenv("DISTRI_FUSEFS_STOP"), os.Getenv("DISTRI_FUSEFS_SEED"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "reader: after %d reads: %v\n", n, err)
			os.Exit(1)
		}
		fmt.Printf("%d\n", n)
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// readerLoop reads random ranges of random files listed in filesList
// (lines "PATH-IN-MOUNT<TAB>PATH-OF-SOURCE") and compares them with the
// source, until the file stop exists. Every 16th round it lists the
// directory of a file and stats its entries instead.
func readerLoop(filesList, stop, seed string) (int, error) {
	b, err := os.ReadFile(filesList)
	if err != nil {
		return 0, err
	}
	type pair struct{ got, want string }
	var files []pair
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		got, want, _ := strings.Cut(line, "\t")
		files = append(files, pair{got, want})
	}
	s, _ := strconv.ParseUint(seed, 10, 64)
	rnd := rand.New(rand.NewPCG(s, s+1))
	bufGot := make([]byte, 1<<20)
	bufWant := make([]byte, 1<<20)
	n := 0
	for ; ; n++ {
		if n%64 == 0 {
			if _, err := os.Stat(stop); err == nil {
				return n, nil
			}
		}
		f := files[rnd.IntN(len(files))]
		if n%16 == 15 {
			ents, err := os.ReadDir(filepath.Dir(f.got))
			if err != nil {
				return n, err
			}
			for _, e := range ents {
				// An entry of a package that a concurrent rescan removes
				// may vanish between the listing and the lstat; the
				// files this loop reads must not.
				if _, err := os.Lstat(filepath.Join(filepath.Dir(f.got), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return n, err
				}
			}
			continue
		}
		want, err := os.ReadFile(f.want)
		if err != nil {
			return n, err
		}
		gf, err := os.Open(f.got)
		if err != nil {
			return n, err
		}
		off := int64(0)
		if len(want) > 0 {
			off = rnd.Int64N(int64(len(want)))
		}
		l := rnd.IntN(len(bufGot))
		got := bufGot[:l]
		gn, err := gf.ReadAt(got, off)
		gf.Close()
		if err != nil && err != io.EOF {
			return n, fmt.Errorf("read %s at %d: %w", f.got, off, err)
		}
		wn := copy(bufWant, want[min(off, int64(len(want))):])
		wn = min(wn, l)
		if gn != wn || !bytes.Equal(got[:gn], bufWant[:wn]) {
			return n, fmt.Errorf("%s at %d: read %d bytes different from %s (%d bytes)", f.got, off, gn, f.want, wn)
		}
	}
}

// writeTree creates files under dir. Keys are slash paths; a value
// "symlink:T" makes a symlink to T, a key ending in "/" a directory, and
// anything else a file with that content (mode 0755 below bin/, else
// 0644).
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// mkpkg packs a package full into store from the tree files (see
// writeTree) and returns the source tree. meta, if non-nil, is the meta
// to pack with (its provides are filled in by pack).
func mkpkg(t testing.TB, store, full string, files map[string]string, meta *pb.Meta) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), full)
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, files)
	packDir(t, store, full, src, meta)
	return src
}

// packDir packs the tree at src as package full into store.
func packDir(t testing.TB, store, full, src string, meta *pb.Meta) {
	t.Helper()
	opts := pack.Options{Name: full, Dir: src, OutDir: store}
	if meta != nil {
		mf := filepath.Join(t.TempDir(), "meta.textproto")
		if err := pb.WriteMetaFile(mf, meta); err != nil {
			t.Fatal(err)
		}
		opts.MetaFile = mf
	}
	if _, err := pack.Pack(opts); err != nil {
		t.Fatal(err)
	}
}

// removePkg removes package full from store the way lib/store does:
// meta first.
func removePkg(t testing.TB, store, full string) {
	t.Helper()
	for _, suffix := range []string{metaSuffix, imageSuffix} {
		if err := os.Remove(filepath.Join(store, full+suffix)); err != nil {
			t.Fatal(err)
		}
	}
}

type mountOpt func(*Options)

func passthroughReads(o *Options) { o.Passthrough = true }

// mountStore mounts store on a new temporary directory and returns the
// server, the mount point and the daemon's log. The mount is unmounted in
// t.Cleanup; a failing unmount fails the test.
func mountStore(t testing.TB, store string, opts ...mountOpt) (*Server, string, *distritest.Buffer) {
	t.Helper()
	distritest.NeedFUSE(t)
	mnt := t.TempDir()
	// Let other users (nobody, in the setuid tests) reach the mount.
	for _, d := range []string{filepath.Dir(mnt), mnt} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logs := &distritest.Buffer{}
	o := Options{
		Store:      store,
		Mountpoint: mnt,
		AllowOther: true,
		CtlSocket:  filepath.Join(t.TempDir(), "ctl.sock"),
		Log:        log.New(logs, "", 0),
		Verbose:    testing.Verbose(),
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := Mount(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			// Do not leave a mount behind a failed test.
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	return srv, mnt, logs
}

// readlink returns the target of the symlink p, failing the test if it
// is none.
func readlink(t testing.TB, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// dirTypes lists dir with getdents(2) and returns each name's d_type,
// exactly as the file system reported it.
func dirTypes(t testing.TB, dir string) map[string]uint8 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	types := map[string]uint8{}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents %s: %v", dir, err)
		}
		if n <= 0 {
			break
		}
		for off := 0; off < n; {
			reclen := int(binary.LittleEndian.Uint16(buf[off+16:]))
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if _, dup := types[string(name)]; dup {
				t.Errorf("getdents %s: %q listed twice", dir, name)
			}
			types[string(name)] = typ
			off += reclen
		}
	}
	delete(types, ".")
	delete(types, "..")
	return types
}

// countLines counts the lines of s containing substr.
func countLines(s, substr string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}

// waitABit pauses a poll loop for something asynchronous by nature
// (the kernel's RELEASE after close(2)).
func waitABit() { time.Sleep(10 * time.Millisecond) }
