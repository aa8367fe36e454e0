package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
)

// installTarget is the Debian package whose dependency closure the
// install benchmark installs.
const installTarget = "qemu-system-x86"

// installTools are the programs the install benchmark runs, and the
// Debian package of each.
var installTools = []struct{ prog, deb string }{
	{"apt-get", "apt"},
	{"dpkg-deb", "dpkg"},
	{"dpkg-scanpackages", "dpkg-dev"},
	{"debootstrap", "debootstrap"},
	{"curl", "curl"},
	{"chroot", "coreutils"},
	{"tar", "tar"},
}

// benchInstall installs the closure of Debian's qemu-system-x86, turned
// into distri packages and served on loopback, with distri-install into
// an empty root, and compares it with apt-get install and dpkg -i of the
// same .debs into a debootstrap'ed chroot and with curl fetching the same
// files from the same server. It also reports the index fetch and
// resolve of one package in a repository of 5000 (BenchmarkIndexResolve5000
// of lib/install).
//
// Not timed: restoring the chroot from its tarball, apt-get update
// (reported in the note), copying the .debs into the chroot for dpkg -i,
// and emptying the target folders. Everything is synced to disk before
// each timed step, so no step pays for the previous one's writeback.
func benchInstall(work, _ string, rounds int) ([]result, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (debootstrap, chroot)")
	}
	var missing []string
	for _, t := range installTools {
		if _, err := exec.LookPath(t.prog); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", t.prog, t.deb))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not in $PATH: %s; make bench needs the Debian packages debootstrap dpkg-dev curl",
			strings.Join(missing, ", "))
	}

	debs, err := debianClosure(filepath.Join(benchCache, "debs"), installTarget)
	if err != nil {
		return nil, err
	}
	var debBytes int64
	for _, d := range debs {
		debBytes += d.Size
	}
	fmt.Fprintf(os.Stderr, "bench: closure of %s: %d packages, %.1f MiB of .debs\n", installTarget, len(debs), mib(debBytes))

	// The distri repository.
	repoDir := filepath.Join(work, "distri-repo")
	fmt.Fprintf(os.Stderr, "bench: converting %d .debs into distri packages in %s\n", len(debs), repoDir)
	start := time.Now()
	if err := debsToDistri(debs, work, filepath.Join(repoDir, "pkg")); err != nil {
		return nil, err
	}
	key, err := minisign.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	pub, _, err := minisign.WriteKeyFiles(filepath.Join(work, "bench"), key, false)
	if err != nil {
		return nil, err
	}
	if _, err := mirror.Index(mirror.IndexOptions{Repo: repoDir, Key: key}); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: packed and indexed in %v\n", time.Since(start).Round(time.Millisecond))

	aptDir := filepath.Join(work, "apt-repo")
	if err := aptRepo(aptDir, debs); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	distriURL, err := serveLoopback(ctx, mirror.Handler(repoDir))
	if err != nil {
		return nil, err
	}
	aptURL, err := serveLoopback(ctx, http.FileServer(http.Dir(aptDir)))
	if err != nil {
		return nil, err
	}
	installBin, err := goBuild(work, "./distri-install")
	if err != nil {
		return nil, err
	}
	tarball, err := minbaseTarball(benchCache)
	if err != nil {
		return nil, err
	}

	chroot := filepath.Join(work, "chroot")
	if err := restoreChroot(tarball, chroot); err != nil {
		return nil, err
	}
	base, err := installedDebs(chroot)
	if err != nil {
		return nil, err
	}
	var newDebs []*deb // what the chroot lacks (by name and version)
	var newBytes int64
	for _, d := range debs {
		if base[d.Name] != d.Version {
			newDebs = append(newDebs, d)
			newBytes += d.Size
		}
	}

	root := filepath.Join(work, "root")
	var closureBytes int64
	var files []string // the closure's images and metas, for curl
	for _, d := range debs {
		for _, suf := range []string{".squashfs", ".meta.textproto"} {
			name := d.distriName() + suf
			fi, err := os.Stat(filepath.Join(repoDir, "pkg", name))
			if err != nil {
				return nil, err
			}
			closureBytes += fi.Size()
			files = append(files, name)
		}
	}
	var baseDebs []*deb // what minbase has
	for _, d := range debs {
		if !slices.Contains(newDebs, d) {
			baseDebs = append(baseDebs, d)
		}
	}
	// ours installs the closure into an empty root; oursOnBase into a
	// root whose store already has the packages minbase has, so that it
	// installs what apt-get and dpkg install.
	ours := installTrial(installBin, root, distriURL, pub, repoDir, nil, debs)
	oursOnBase := installTrial(installBin, root, distriURL, pub, repoDir, baseDebs, newDebs)
	oursCompressed := installTrial(installBin, root, distriURL, pub, repoDir, nil, debs, "--transport", "compressed")

	emptyRow := installTarget + " closure, empty root"
	baseRow := installTarget + " closure onto minbase"
	var results []result
	var updates []time.Duration
	aptPeer := trial{
		setup: func() error {
			if err := restoreChroot(tarball, chroot); err != nil {
				return err
			}
			os.Remove(filepath.Join(chroot, "etc/apt/sources.list"))
			d, _ := filepath.Glob(filepath.Join(chroot, "etc/apt/sources.list.d/*"))
			for _, f := range d {
				os.Remove(f)
			}
			src := fmt.Sprintf("deb [trusted=yes] %s/ ./\n", aptURL)
			if err := os.WriteFile(filepath.Join(chroot, "etc/apt/sources.list"), []byte(src), 0o644); err != nil {
				return err
			}
			start := time.Now()
			if _, err := runIn(chroot, "apt-get", "update", "-q"); err != nil {
				return err
			}
			updates = append(updates, time.Since(start))
			syscall.Sync()
			return nil
		},
		run: func() error {
			_, err := runIn(chroot, "apt-get", "install", "-y", "-q", "--no-install-recommends", installTarget)
			return err
		},
		check: func() error { return checkInstalled(chroot, debs) },
	}
	ds, err := measureTrials(rounds, ours, oursOnBase, aptPeer)
	if err != nil {
		return nil, fmt.Errorf("apt-get: %w", err)
	}
	results = append(results, result{
		name: emptyRow, ours: ds[0], peer: ds[2], peerName: "apt-get install (chroot)",
		note: fmt.Sprintf("ours: %d pkgs, %.1f MiB; apt: the %d not in minbase (%d are); apt-get update (%v) not timed",
			len(debs), mib(closureBytes), len(newDebs), len(baseDebs), median(updates).Round(time.Millisecond)),
	}, result{
		name: baseRow, ours: ds[1], peer: ds[2], peerName: "apt-get install (chroot)",
		note: fmt.Sprintf("ours: the same %d pkgs as apt, the %d of minbase already in the store", len(newDebs), len(baseDebs)),
	})

	dpkgPeer := trial{
		setup: func() error {
			if err := restoreChroot(tarball, chroot); err != nil {
				return err
			}
			dir := filepath.Join(chroot, "tmp/debs")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, d := range newDebs {
				if err := run("cp", d.File, dir); err != nil {
					return err
				}
			}
			syscall.Sync()
			return nil
		},
		run: func() error {
			argv := []string{"dpkg", "-i"}
			for _, d := range newDebs {
				argv = append(argv, "/tmp/debs/"+filepath.Base(d.File))
			}
			_, err := runIn(chroot, argv...)
			return err
		},
		check: func() error { return checkInstalled(chroot, debs) },
	}
	ds, err = measureTrials(rounds, ours, oursOnBase, dpkgPeer)
	if err != nil {
		return nil, fmt.Errorf("dpkg: %w", err)
	}
	results = append(results, result{
		name: emptyRow, ours: ds[0], peer: ds[2], peerName: "dpkg -i (chroot)",
		note: fmt.Sprintf("dpkg: the %d .debs not in minbase, %.1f MiB", len(newDebs), mib(newBytes)),
	}, result{
		name: baseRow, ours: ds[1], peer: ds[2], peerName: "dpkg -i (chroot)",
	})

	// The plain copy: curl fetching the closure's images and metas from
	// the same server, 8 at once like ours (-j 8), into an empty folder
	// on the same file system. From loopback ours asks for identity (see
	// lib/repo, Transport), so plain curl moves the same bytes; "sync"
	// then fsyncs every file it wrote (sync FILE...), as ours does before
	// a package becomes visible. ours --transport compressed, the path of
	// a remote repository, is measured against curl --compressed: the
	// same zstd bytes, decoded.
	copyDir := filepath.Join(work, "copy")
	curlConfig := filepath.Join(work, "curl.config")
	var cfg, copies []string
	for _, f := range files {
		cfg = append(cfg, fmt.Sprintf("url = %q\noutput = %q", distriURL+"/pkg/"+f, filepath.Join(copyDir, f)))
		copies = append(copies, filepath.Join(copyDir, f))
	}
	if err := writeLines(curlConfig, cfg); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		ours       trial
		oursName   string
		peer       string
		compressed bool
		sync       bool
		note       string
	}{
		{ours, emptyRow, "curl, sync", false, true, "the same bytes (identity) from the same server, fsynced like ours"},
		{ours, emptyRow, "curl", false, false, "the same bytes, not synced: the raw copy"},
		{oursCompressed, emptyRow + ", --transport compressed", "curl --compressed, sync", true, true, "the same zstd bytes, decoded and fsynced, as ours"},
	} {
		curlPeer := trial{
			setup: func() error { return emptyDir(copyDir) },
			run: func() error {
				args := []string{"--parallel", "--parallel-max", "8", "-sSf", "-K", curlConfig}
				if c.compressed {
					args = append(args, "--compressed")
				}
				if err := run("curl", args...); err != nil {
					return err
				}
				if c.sync {
					return run("sync", append([]string{"--"}, copies...)...)
				}
				return nil
			},
		}
		// Each trial takes well under a second, where the machine's
		// noise is largest: three times the rounds.
		ds, err := measureTrials(3*rounds, c.ours, curlPeer)
		if err != nil {
			return nil, fmt.Errorf("curl: %w", err)
		}
		results = append(results, result{
			name: c.oursName, ours: ds[0], peer: ds[1], peerName: c.peer,
			note: fmt.Sprintf("%d files, %.1f MiB: %s", len(files), mib(closureBytes), c.note),
		})
	}

	r, err := benchIndexResolve(rounds)
	if err != nil {
		return nil, err
	}
	return append(results, r), nil
}

// trial is one side of a measurement: setup and check are not timed.
type trial struct {
	setup, run, check func() error
}

// measureTrials runs the trials one after the other, rounds times, and
// returns the median time of each.
func measureTrials(rounds int, trials ...trial) ([]time.Duration, error) {
	ds := make([][]time.Duration, len(trials))
	for range rounds {
		for i, t := range trials {
			if t.setup != nil {
				if err := t.setup(); err != nil {
					return nil, err
				}
			}
			start := time.Now()
			if err := t.run(); err != nil {
				return nil, err
			}
			ds[i] = append(ds[i], time.Since(start))
			if t.check != nil {
				if err := t.check(); err != nil {
					return nil, err
				}
			}
		}
	}
	medians := make([]time.Duration, len(trials))
	for i, d := range ds {
		medians[i] = median(d)
	}
	return medians, nil
}

// installTrial runs distri-install (with flags) of the target into root,
// whose store first gets the packages of base (hard links from the
// repository, not timed), and checks that it installed exactly want.
func installTrial(bin, root, url, pub, repoDir string, base, want []*deb, flags ...string) trial {
	return trial{
		setup: func() error {
			if err := os.RemoveAll(root); err != nil {
				return err
			}
			store := filepath.Join(root, "roimg")
			if err := os.MkdirAll(store, 0o755); err != nil {
				return err
			}
			for _, d := range base {
				for _, suf := range []string{".squashfs", ".meta.textproto"} {
					f := d.distriName() + suf
					if err := os.Link(filepath.Join(repoDir, "pkg", f), filepath.Join(store, f)); err != nil {
						return err
					}
				}
			}
			syscall.Sync()
			return nil
		},
		run: func() error {
			args := append([]string{"--root", root, "--repo", url, "--pubkey", pub}, flags...)
			cmd := exec.Command(bin, append(args, installTarget)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("%v: %w: %s", cmd.Args, err, stderr.Bytes())
			}
			var wantNames []string
			for _, d := range want {
				wantNames = append(wantNames, d.distriName())
			}
			got := strings.Fields(string(out))
			slices.Sort(got)
			slices.Sort(wantNames)
			if !slices.Equal(got, wantNames) {
				return fmt.Errorf("%v installed %v, want %v", cmd.Args, got, wantNames)
			}
			return nil
		},
	}
}

// checkInstalled checks that dpkg in the chroot has the target at the
// closure's version.
func checkInstalled(chroot string, debs []*deb) error {
	got, err := installedDebs(chroot)
	if err != nil {
		return err
	}
	for _, d := range debs {
		if d.Name == installTarget && got[d.Name] != d.Version {
			return fmt.Errorf("chroot has %s %q installed, want %q", d.Name, got[d.Name], d.Version)
		}
	}
	return nil
}

// emptyDir makes dir an empty folder and flushes the removal to disk.
func emptyDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// serveLoopback serves h on a free loopback port until ctx ends and
// returns its URL.
func serveLoopback(ctx context.Context, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return "http://" + ln.Addr().String(), nil
}

// goBuild builds the binary of package pkg (e.g. ./distri-install) of
// this module into work/bin.
func goBuild(work, pkg string) (string, error) {
	out := filepath.Join(work, "bin", filepath.Base(pkg))
	dir, err := moduleDir()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(goTool(), "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %w: %s", cmd.Args, err, b)
	}
	return out, nil
}

// moduleDir returns the folder of this module's go.mod, where go build
// and go test run.
func moduleDir() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the distri module: run the benchmarks from its folder (make bench)")
	}
	return filepath.Dir(gomod), nil
}

func goTool() string {
	if g := os.Getenv("GOROOT"); g != "" {
		if _, err := os.Stat(filepath.Join(g, "bin/go")); err == nil {
			return filepath.Join(g, "bin/go")
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

var nsPerOp = regexp.MustCompile(`^BenchmarkIndexResolve5000\S*\s+\d+\s+([0-9.]+) ns/op`)

// benchIndexResolve runs BenchmarkIndexResolve5000 of lib/install rounds
// times and reports the median against the target of 50 ms.
func benchIndexResolve(rounds int) (_ result, err error) {
	cmd := exec.Command(goTool(), "test", "-run", "^$", "-bench", "^BenchmarkIndexResolve5000$",
		"-benchtime", "20x", "-count", strconv.Itoa(rounds), "./lib/install")
	if cmd.Dir, err = moduleDir(); err != nil {
		return result{}, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("%v: %w: %s", cmd.Args, err, out)
	}
	var ds []time.Duration
	for l := range strings.SplitSeq(string(out), "\n") {
		if m := nsPerOp.FindStringSubmatch(l); m != nil {
			ns, _ := strconv.ParseFloat(m[1], 64)
			ds = append(ds, time.Duration(ns))
		}
	}
	if len(ds) == 0 {
		return result{}, fmt.Errorf("%v: no result in: %s", cmd.Args, out)
	}
	slices.Sort(ds)
	return result{
		name: "index fetch + resolve, 5000 pkgs", ours: median(ds), peer: 50 * time.Millisecond,
		peerName: "target (issue 4)", note: "BenchmarkIndexResolve5000 of lib/install, loopback",
	}, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
