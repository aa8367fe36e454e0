package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"distri.dev/distri/lib/pack"
)

// fusePkgs is the number of small packages in the store of the metadata
// and mount-ready benchmarks, as the issue asks.
const fusePkgs = 1000

// benchFuse compares distri-fuse with the kernel's squashfs driver (a loop
// mount of the same image) and with squashfuse: sequential reads of every
// file of a large package (tree, e.g. /usr/local/go), cold and warm;
// stat of every file and ls -lR of that package and of /ro/lib and /ro/bin
// with 1000 packages in the store; mount-ready time; and the start
// latency of a dynamically linked program run from /ro/bin. It needs root
// (mounts, drop_caches).
func benchFuse(work, tree string, rounds int) ([]result, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root: it mounts images and drops the page cache")
	}
	for _, tool := range []string{"mount", "umount", "squashfuse", "ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not in $PATH (make deps installs squashfuse and util-linux)", tool)
		}
	}
	b := &fuseBench{work: filepath.Join(work, "fuse"), rounds: rounds}
	defer b.cleanup()
	if err := b.setup(tree); err != nil {
		return nil, err
	}
	var results []result
	for _, f := range []func() ([]result, error){b.reads, b.metadata, b.exchange, b.mountReady, b.startLatency} {
		rs, err := f()
		if err != nil {
			return nil, err
		}
		results = append(results, rs...)
	}
	return results, nil
}

type fuseBench struct {
	work   string
	rounds int

	store string
	big   string // full name of the large package
	bin   string // distri-fuse binary

	ro, roPass string // distri-fuse mounts: the default (page cache), --passthrough
	kernel     string // kernel loop mount of the large image
	squashfuse string // squashfuse mount of the large image
	farm       string // /ro/bin and /ro/lib copied to the host file system (tmpfs)
	kfarm      string // the same farm packed and mounted by the kernel's squashfs

	daemons  []*exec.Cmd
	unmounts []string
}

func (b *fuseBench) setup(tree string) error {
	b.store = filepath.Join(b.work, "store")
	if err := os.MkdirAll(b.store, 0o755); err != nil {
		return err
	}
	b.big = "bigtree-amd64-1.0-1"
	fmt.Fprintf(os.Stderr, "bench: fuse: packing %s and %d small packages\n", tree, fusePkgs)
	if _, err := pack.Pack(pack.Options{Name: b.big, Dir: tree, OutDir: b.store}); err != nil {
		return err
	}
	if err := b.smallPackages(); err != nil {
		return err
	}
	var err error
	if b.bin, err = buildFuseBinary(b.work); err != nil {
		return err
	}
	if b.ro, err = b.startDaemon("ro", false); err != nil {
		return err
	}
	if b.roPass, err = b.startDaemon("ro-passthrough", true); err != nil {
		return err
	}
	image := filepath.Join(b.store, b.big+".squashfs")
	b.kernel = filepath.Join(b.work, "kernel")
	os.MkdirAll(b.kernel, 0o755)
	if err := run("mount", "-t", "squashfs", "-o", "loop,ro", image, b.kernel); err != nil {
		return err
	}
	b.unmounts = append(b.unmounts, b.kernel)
	b.squashfuse = filepath.Join(b.work, "squashfuse")
	os.MkdirAll(b.squashfuse, 0o755)
	if err := run("squashfuse", image, b.squashfuse); err != nil {
		return err
	}
	b.unmounts = append(b.unmounts, b.squashfuse)

	// The exchange directories' peer: the same symlinks on the host file
	// system, next to the packages they point into (the small ones'
	// source trees, the kernel's mount of the large one), all served by
	// the kernel. ls -l follows the symlinks (for ACLs), so their targets
	// must exist here too.
	b.farm = filepath.Join(b.work, "farm")
	for _, d := range []string{"bin", "lib"} {
		if err := copySymlinkTree(filepath.Join(b.ro, d), filepath.Join(b.farm, d)); err != nil {
			return err
		}
	}
	if err := os.Symlink(b.kernel, filepath.Join(b.farm, b.big)); err != nil {
		return err
	}
	for i := range fusePkgs {
		n := fmt.Sprintf("pkg%04d", i)
		if err := os.Symlink(filepath.Join(b.work, "src", n), filepath.Join(b.farm, n+"-amd64-1.0-1")); err != nil {
			return err
		}
	}
	// The same farm as an image, mounted by the kernel's squashfs: the
	// peer that goes cold as /ro does. tmpfs cannot: dropping the caches
	// evicts none of its dentries and inodes, so its "cold" walk is a
	// warm one.
	farmImages := filepath.Join(b.work, "farm-image")
	img, err := pack.Pack(pack.Options{Name: "farm-amd64-1.0-1", Dir: b.farm, OutDir: farmImages})
	if err != nil {
		return err
	}
	b.kfarm = filepath.Join(b.work, "kfarm")
	os.MkdirAll(b.kfarm, 0o755)
	if err := run("mount", "-t", "squashfs", "-o", "loop,ro", img, b.kfarm); err != nil {
		return err
	}
	b.unmounts = append(b.unmounts, b.kfarm)
	return nil
}

// smallPackages packs fusePkgs small packages: a program, a library with
// its symlink, a pkg-config file, a header and a doc file each.
func (b *fuseBench) smallPackages() error {
	var wg sync.WaitGroup
	errs := make(chan error, fusePkgs)
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range work {
				n := fmt.Sprintf("pkg%04d", i)
				src := filepath.Join(b.work, "src", n)
				files := map[string]string{
					"bin/" + n:                          "#!/bin/sh\necho " + n + "\n",
					"out/lib/lib" + n + ".so.1":         strings.Repeat(n, 256),
					"out/lib/pkgconfig/" + n + ".pc":    "Name: " + n + "\n",
					"out/include/" + n + ".h":           "int " + n + "(void);\n",
					"out/share/doc/" + n + "/README.md": n + "\n",
				}
				for p, c := range files {
					os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
					if err := os.WriteFile(filepath.Join(src, p), []byte(c), 0o755); err != nil {
						errs <- err
					}
				}
				os.Symlink("lib"+n+".so.1", filepath.Join(src, "out/lib/lib"+n+".so"))
				if _, err := pack.Pack(pack.Options{Name: n + "-amd64-1.0-1", Dir: src, OutDir: b.store}); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range fusePkgs {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func buildFuseBinary(work string) (string, error) {
	out := filepath.Join(work, "bin", "distri-fuse")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, "./distri-fuse")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %w: %s", cmd.Args, err, b)
	}
	return out, nil
}

// startDaemon mounts the store at work/name and returns the mount point
// once distri-fuse says it is ready.
func (b *fuseBench) startDaemon(name string, passthrough bool) (string, error) {
	mnt := filepath.Join(b.work, name)
	os.MkdirAll(mnt, 0o755)
	cmd, err := b.serve(mnt, passthrough)
	if err != nil {
		return "", err
	}
	b.daemons = append(b.daemons, cmd)
	return mnt, nil
}

// serve starts distri-fuse on mnt and waits for its readiness line.
func (b *fuseBench) serve(mnt string, passthrough bool) (*exec.Cmd, error) {
	cmd := exec.Command(b.bin, "--store", b.store, fmt.Sprintf("--passthrough=%v", passthrough),
		"--ctl-socket", mnt+".sock", mnt)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != mnt {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%v: not ready: %q, %v", cmd.Args, line, err)
	}
	go io.Copy(io.Discard, out)
	return cmd, nil
}

// stop ends a daemon with SIGTERM, which unmounts.
func stop(cmd *exec.Cmd) error {
	cmd.Process.Signal(syscall.SIGTERM)
	return cmd.Wait()
}

func (b *fuseBench) cleanup() {
	for _, d := range b.daemons {
		stop(d)
	}
	for _, m := range b.unmounts {
		run("umount", m)
	}
}

func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
}

// measureN runs fns alternately rounds times (after a warm-up round if
// warm, or dropping the caches before each run if not) and returns their
// median times.
func measureN(rounds int, cold bool, fns ...func() error) ([]time.Duration, error) {
	times := make([][]time.Duration, len(fns))
	if !cold {
		for _, f := range fns {
			if err := f(); err != nil {
				return nil, err
			}
		}
	}
	for range rounds {
		for i, f := range fns {
			if cold {
				if err := dropCaches(); err != nil {
					return nil, err
				}
			}
			start := time.Now()
			if err := f(); err != nil {
				return nil, err
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	meds := make([]time.Duration, len(fns))
	for i := range times {
		meds[i] = median(times[i])
	}
	return meds, nil
}

// readTree reads every regular file below dir, sequentially, with
// open(2) and read(2) as cat, cp and tar do. Not with os.File: Go's
// os.Open registers every file that supports poll with its netpoller,
// and FUSE files do (regular files of kernel file systems do not), so a
// Go reader pays an epoll_ctl per open and close and wakeups of the
// netpoller for any FUSE file system; readTreeGo measures that apart.
func readTree(dir string) (int64, error) { return eachFileRead(dir, readSyscall) }

// readTreeGo is readTree with os.File.
func readTreeGo(dir string) (int64, error) { return eachFileRead(dir, readOSFile) }

// eachFileRead reads every regular file below dir with read, which
// returns the bytes it read into buf.
func eachFileRead(dir string, read func(p string, buf []byte) (int64, error)) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		n, err := read(p, buf)
		total += n
		return err
	})
	return total, err
}

func readSyscall(p string, buf []byte) (int64, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	var total int64
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return total, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return total, nil
		}
		total += int64(n)
	}
}

func readOSFile(p string, buf []byte) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func statTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		_, err = os.Lstat(p)
		return err
	})
}

func lsLR(dir string) error {
	cmd := exec.Command("ls", "-lR", dir)
	cmd.Stdout = io.Discard
	return cmd.Run()
}

func (b *fuseBench) reads() ([]result, error) {
	pkg := filepath.Join(b.ro, b.big)
	pkgPass := filepath.Join(b.roPass, b.big)
	n, err := readTree(b.kernel)
	if err != nil {
		return nil, err
	}
	var results []result
	for _, cold := range []bool{true, false} {
		label := "warm"
		if cold {
			label = "cold"
		}
		read := func(dir string) func() error { return func() error { _, err := readTree(dir); return err } }
		t, err := measureN(b.rounds, cold, read(pkg), read(b.kernel), read(b.squashfuse), read(pkgPass))
		if err != nil {
			return nil, err
		}
		mbs := func(d time.Duration) string { return fmt.Sprintf("%.0f MB/s", float64(n)/1e6/d.Seconds()) }
		name := fmt.Sprintf("fuse read all, %s (%.0f MB)", label, float64(n)/1e6)
		results = append(results,
			result{name: name, ours: t[0], peer: t[1], peerName: "kernel squashfs", note: "ours " + mbs(t[0]) + ", kernel " + mbs(t[1]) + "; target ≤ 1.11x"},
			result{name: name, ours: t[0], peer: t[2], peerName: "squashfuse", note: "squashfuse " + mbs(t[2]) + "; target < 1x"},
			result{name: name + " --passthrough", ours: t[3], peer: t[1], peerName: "kernel squashfs", note: "passthrough: " + mbs(t[3])},
		)
	}
	readGo := func(dir string) func() error { return func() error { _, err := readTreeGo(dir); return err } }
	t, err := measureN(b.rounds, false, readGo(pkg), readGo(b.kernel))
	if err != nil {
		return nil, err
	}
	results = append(results, result{name: "fuse read all, warm, with Go's os.File", ours: t[0], peer: t[1], peerName: "kernel squashfs",
		note: "for reference: Go registers FUSE files with epoll (any FUSE file system)"})
	return results, nil
}

func (b *fuseBench) metadata() ([]result, error) {
	pkg := filepath.Join(b.ro, b.big)
	var results []result
	for _, m := range []struct {
		name string
		f    func(string) error
	}{{"stat every file", statTree}, {"ls -lR", lsLR}} {
		for _, cold := range []bool{true, false} {
			label := "warm"
			if cold {
				label = "cold"
			}
			f := func(dir string) func() error { return func() error { return m.f(dir) } }
			t, err := measureN(b.rounds, cold, f(pkg), f(b.kernel), f(b.squashfuse))
			if err != nil {
				return nil, err
			}
			name := fmt.Sprintf("fuse %s of the package, %s", m.name, label)
			results = append(results,
				result{name: name, ours: t[0], peer: t[1], peerName: "kernel squashfs", note: "target ≤ 2x"},
				result{name: name, ours: t[0], peer: t[2], peerName: "squashfuse", note: "target < 1x"},
			)
		}
	}
	return results, nil
}

// exchange measures /ro/bin and /ro/lib (symlink farms over 1001
// packages) against the same symlinks served by the kernel: from a
// squashfs image of them, which goes cold as /ro does (the target), and
// from tmpfs, which never goes cold (for reference).
func (b *fuseBench) exchange() ([]result, error) {
	var results []result
	for _, d := range []string{"bin", "lib"} {
		for _, m := range []struct {
			name string
			f    func(string) error
		}{{"stat every entry", statTree}, {"ls -lR", lsLR}} {
			for _, cold := range []bool{true, false} {
				label := "warm"
				if cold {
					label = "cold"
				}
				f := func(dir string) func() error { return func() error { return m.f(dir) } }
				t, err := measureN(b.rounds, cold, f(filepath.Join(b.ro, d)), f(filepath.Join(b.kfarm, d)), f(filepath.Join(b.farm, d)))
				if err != nil {
					return nil, err
				}
				name := fmt.Sprintf("fuse %s of /ro/%s (%d pkgs), %s", m.name, d, fusePkgs+1, label)
				tmpfsNote := "for reference"
				if cold {
					tmpfsNote = "for reference: tmpfs keeps its dentries through a cache drop"
				}
				results = append(results,
					result{name: name, ours: t[0], peer: t[1], peerName: "same tree, kernel squashfs", note: "target ≤ 2x"},
					result{name: name, ours: t[0], peer: t[2], peerName: "same tree on tmpfs", note: tmpfsNote},
				)
			}
		}
	}
	return results, nil
}

// mountReady starts distri-fuse on the store of 1001 packages until it
// prints the mount point, and stops it again.
func (b *fuseBench) mountReady() ([]result, error) {
	mnt := filepath.Join(b.work, "ready")
	os.MkdirAll(mnt, 0o755)
	var times []time.Duration
	for range max(b.rounds, 5) {
		start := time.Now()
		cmd, err := b.serve(mnt, true)
		if err != nil {
			return nil, err
		}
		times = append(times, time.Since(start))
		if err := stop(cmd); err != nil {
			return nil, fmt.Errorf("stop distri-fuse: %w", err)
		}
	}
	return []result{{
		name: fmt.Sprintf("fuse mount-ready, %d packages", fusePkgs+1), ours: median(times), peer: 100 * time.Millisecond,
		peerName: "target", note: "process start to mount point printed",
	}}, nil
}

// startLatency runs a dynamically linked program (ls from the host) from
// a package through /ro/bin and from the host file system.
func (b *fuseBench) startLatency() ([]result, error) {
	host, err := exec.LookPath("ls")
	if err != nil {
		return nil, err
	}
	host, _ = filepath.EvalSymlinks(host)
	const full = "lsprog-amd64-1.0-1"
	src := filepath.Join(b.work, "src", full)
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	data, err := os.ReadFile(host)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "bin/ls"), data, 0o755); err != nil {
		return nil, err
	}
	if _, err := pack.Pack(pack.Options{Name: full, Dir: src, OutDir: b.store}); err != nil {
		return nil, err
	}
	if err := run(b.bin, "ctl", "rescan", b.ro); err != nil {
		return nil, err
	}
	const runs = 200
	start := func(p string) func() error {
		return func() error {
			for range runs {
				cmd := exec.Command(p, "-d", "/")
				cmd.Stdout = io.Discard
				if err := cmd.Run(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	t, err := measureN(b.rounds, false, start(filepath.Join(b.ro, "bin/ls")), start(host))
	if err != nil {
		return nil, err
	}
	return []result{{
		name: "fuse start latency of ls via /ro/bin", ours: t[0] / runs, peer: t[1] / runs,
		peerName: "ls on the host fs", note: "per run, warm; target ≤ 1.5x",
	}}, nil
}

// copySymlinkTree copies the directories and symlinks below from to to.
func copySymlinkTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		return nil
	})
}
