package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/squashfs"
)

// benchCache keeps what the install benchmark downloads once and reuses:
// debs/ (the .debs of the closure) and a debootstrap'ed minbase chroot as
// a tarball. Delete it to start over.
const benchCache = "/var/cache/distri-bench"

// deb is one Debian binary package of the closure.
type deb struct {
	Name, Version string // e.g. libc6, 2.36-9+deb12u14
	File          string // the .deb in the cache
	Size          int64
	Source        string   // source package, e.g. glibc
	Depends       []string // clauses of Pre-Depends and Depends, e.g. "libc6 (>= 2.34)", "a | b"
	Provides      []string // virtual package names
}

// distriName is the distri package a deb becomes: name, amd64, the Debian
// version with ':' (the epoch) made '_', and distri revision 1. E.g.
// qemu-system-x86_1:7.2+dfsg-7+deb12u18+b3 becomes
// qemu-system-x86-amd64-1_7.2+dfsg-7+deb12u18+b3-1.
func (d *deb) distriName() string {
	return d.Name + "-amd64-" + strings.ReplaceAll(d.Version, ":", "_") + "-1"
}

// debianClosure returns the packages apt-get installs for pkg on a system
// with nothing installed (no recommends), with their .debs downloaded
// into cacheDir by apt-get download (already cached ones are reused after
// their sha256 is checked).
func debianClosure(cacheDir, pkg string) ([]*deb, error) {
	cmd := exec.Command("apt-get", "install", "--print-uris", "-y", "-qq", "--no-install-recommends",
		"-o", "Dir::State::status=/dev/null", pkg)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %w: %s (run apt-get update?)", cmd.Args, err, stderrOf(err))
	}
	// 'URI' name_version_arch.deb size SHA256:hex
	type want struct {
		file, algo, sum string
		size            int64
	}
	var wants []want
	for l := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.HasPrefix(f[0], "'") || !strings.HasSuffix(f[1], ".deb") {
			continue
		}
		var size int64
		fmt.Sscan(f[2], &size)
		// SHA256:…, MD5Sum:… for some archives, nothing for others (then
		// apt-get download checks, and a cached file's size is trusted).
		var algo, sum string
		if len(f) > 3 {
			algo, sum, _ = strings.Cut(f[3], ":")
		}
		wants = append(wants, want{file: f[1], size: size, algo: algo, sum: sum})
	}
	if len(wants) == 0 {
		return nil, fmt.Errorf("%v printed no .deb URIs", cmd.Args)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	var missing []string // name=version for apt-get download
	for _, w := range wants {
		p := filepath.Join(cacheDir, w.file)
		if fileOK(p, w.size, w.algo, w.sum) == nil {
			continue
		}
		os.Remove(p)
		// The file name is name_version_arch.deb, the version escaped
		// (%3a for the epoch's colon).
		parts := strings.Split(strings.TrimSuffix(w.file, ".deb"), "_")
		if len(parts) != 3 {
			return nil, fmt.Errorf("unexpected .deb name %q", w.file)
		}
		v, err := url.PathUnescape(parts[1])
		if err != nil {
			return nil, fmt.Errorf("unexpected .deb name %q: %w", w.file, err)
		}
		missing = append(missing, parts[0]+"="+v)
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "bench: apt-get download of %d of %d packages into %s\n", len(missing), len(wants), cacheDir)
		// The cache belongs to root, so apt's download sandbox user
		// could not write it.
		dl := exec.Command("apt-get", append([]string{"download", "-q", "-o", "APT::Sandbox::User=root"}, missing...)...)
		dl.Dir = cacheDir
		dl.Stdout, dl.Stderr = os.Stderr, os.Stderr
		if err := dl.Run(); err != nil {
			return nil, fmt.Errorf("%v: %w", dl.Args[:3], err)
		}
	}
	var debs []*deb
	for _, w := range wants {
		p := filepath.Join(cacheDir, w.file)
		if err := fileOK(p, w.size, w.algo, w.sum); err != nil {
			return nil, err
		}
		d, err := readDeb(p)
		if err != nil {
			return nil, err
		}
		d.Size = w.size
		debs = append(debs, d)
	}
	slices.SortFunc(debs, func(a, b *deb) int { return strings.Compare(a.Name, b.Name) })
	return debs, nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// fileOK checks file p's size and, if algo is set, its digest.
func fileOK(p string, size int64, algo, sum string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%s: %d bytes, apt says %d", p, fi.Size(), size)
	}
	if algo == "" {
		return nil
	}
	got, err := fileDigest(p, algo)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("%s: %s %s, apt says %s", p, algo, got, sum)
	}
	return nil
}

// fileDigest returns the hex digest of file p with apt's hash algo
// (SHA256, SHA512 or MD5Sum).
func fileDigest(p, algo string) (string, error) {
	var h hash.Hash
	switch algo {
	case "SHA256":
		h = sha256.New()
	case "SHA512":
		h = sha512.New()
	case "MD5Sum":
		h = md5.New()
	default:
		return "", fmt.Errorf("unknown hash %s", algo)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readDeb reads the control fields of a .deb.
func readDeb(p string) (*deb, error) {
	cmd := exec.Command("dpkg-deb", "--field", p)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %w: %s", cmd.Args, err, stderrOf(err))
	}
	f := parseControl(out)
	d := &deb{Name: f["Package"], Version: f["Version"], File: p, Source: f["Source"]}
	if d.Source == "" {
		d.Source = d.Name
	}
	d.Source, _, _ = strings.Cut(d.Source, " ") // "glibc (2.36-9)"
	for _, field := range []string{"Pre-Depends", "Depends"} {
		for c := range strings.SplitSeq(f[field], ",") {
			if c = strings.TrimSpace(c); c != "" {
				d.Depends = append(d.Depends, c)
			}
		}
	}
	for c := range strings.SplitSeq(f["Provides"], ",") {
		if n := depName(c); n != "" {
			d.Provides = append(d.Provides, n)
		}
	}
	if d.Name == "" || d.Version == "" {
		return nil, fmt.Errorf("%s: no Package or Version field", p)
	}
	return d, nil
}

// parseControl parses one deb822 paragraph (continuation lines joined).
func parseControl(b []byte) map[string]string {
	m := map[string]string{}
	var last string
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			if last != "" {
				m[last] += "\n" + strings.TrimSpace(l)
			}
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		last = k
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// depName is the package name of one alternative: "libc6:any (>= 2.34)"
// is libc6.
func depName(alt string) string {
	alt = strings.TrimSpace(alt)
	alt, _, _ = strings.Cut(alt, " ")
	alt, _, _ = strings.Cut(alt, "(")
	alt, _, _ = strings.Cut(alt, ":")
	return strings.TrimSpace(alt)
}

// runtimeDeps returns, per deb name, the transitive closure of its
// Depends within debs, as distri full names: each clause resolves to its
// first alternative that debs has (by name or Provides); clauses debs
// cannot satisfy are dropped.
func runtimeDeps(debs []*deb) map[string][]string {
	byName := map[string]*deb{}
	provider := map[string]*deb{}
	for _, d := range debs {
		byName[d.Name] = d
		for _, p := range d.Provides {
			if _, ok := provider[p]; !ok {
				provider[p] = d
			}
		}
	}
	direct := map[string][]*deb{}
	for _, d := range debs {
		for _, clause := range d.Depends {
			for alt := range strings.SplitSeq(clause, "|") {
				n := depName(alt)
				t, ok := byName[n]
				if !ok {
					t, ok = provider[n]
				}
				if ok {
					if t != d {
						direct[d.Name] = append(direct[d.Name], t)
					}
					break
				}
			}
		}
	}
	out := map[string][]string{}
	for _, d := range debs {
		seen := map[*deb]bool{d: true}
		queue := slices.Clone(direct[d.Name])
		var fulls []string
		for len(queue) > 0 {
			t := queue[0]
			queue = queue[1:]
			if seen[t] {
				continue
			}
			seen[t] = true
			fulls = append(fulls, t.distriName())
			queue = append(queue, direct[t.Name]...)
		}
		slices.Sort(fulls)
		out[d.Name] = fulls
	}
	return out
}

// debsToDistri turns each deb into a distri package in outDir (the
// repository's pkg/), unpacking in tmp. The conversion is the minimal one
// of DESIGN.md §3: usr/X and X go to out/X, etc/ to etc/, and bin/ gets a
// symlink per program in out/bin. Images are uncompressed.
func debsToDistri(debs []*deb, tmp, outDir string) error {
	deps := runtimeDeps(debs)
	var g errgroup.Group
	g.SetLimit(2)
	for _, d := range debs {
		g.Go(func() error {
			dir, err := os.MkdirTemp(tmp, d.Name+"-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := debTree(d, dir); err != nil {
				return fmt.Errorf("%s: %w", filepath.Base(d.File), err)
			}
			full := d.distriName()
			metaFile := filepath.Join(dir, "meta.textproto")
			if err := pb.WriteMetaFile(metaFile, &pb.Meta{
				RuntimeDep: deps[d.Name],
				SourcePkg:  new(d.Source),
				Version:    new(strings.ReplaceAll(d.Version, ":", "_") + "-1"),
			}); err != nil {
				return err
			}
			if _, err := pack.Pack(pack.Options{
				Name:     full,
				Dir:      filepath.Join(dir, "pkg"),
				MetaFile: metaFile,
				OutDir:   outDir,
				Image:    squashfs.WriterOptions{},
			}); err != nil {
				return fmt.Errorf("pack %s: %w", full, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// debTree unpacks d into dir/x and arranges it as dir/pkg.
func debTree(d *deb, dir string) error {
	x, pkg := filepath.Join(dir, "x"), filepath.Join(dir, "pkg")
	cmd := exec.Command("dpkg-deb", "-x", d.File, x)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w: %s", cmd.Args, err, out)
	}
	out := filepath.Join(pkg, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := mergeInto(filepath.Join(x, "etc"), filepath.Join(pkg, "etc")); err != nil {
		return err
	}
	if err := mergeInto(filepath.Join(x, "usr"), out); err != nil {
		return err
	}
	if err := mergeInto(x, out); err != nil {
		return err
	}
	progs, err := os.ReadDir(filepath.Join(out, "bin"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, p := range progs {
		if err := os.MkdirAll(filepath.Join(pkg, "bin"), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("../out/bin/"+p.Name(), filepath.Join(pkg, "bin", p.Name())); err != nil {
			return err
		}
	}
	return nil
}

// mergeInto moves the entries of src into dst, merging directories that
// both have, and removes src. A missing src is nothing to do.
func mergeInto(src, dst string) error {
	ents, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		dfi, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Rename(s, d); err != nil {
				return err
			}
		case err != nil:
			return err
		case e.IsDir() && dfi.IsDir():
			if err := mergeInto(s, d); err != nil {
				return err
			}
		default:
			return fmt.Errorf("both %s and %s exist", s, d)
		}
	}
	return os.Remove(src)
}

// debianMirror returns the first archive URL of the machine's apt sources
// that serves suite (deb822 .sources files, then one-line sources.list).
func debianMirror(suite string) (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for para := range strings.SplitSeq(string(b), "\n\n") {
			m := parseControl([]byte(para))
			if slices.Contains(strings.Fields(m["Types"]), "deb") && slices.Contains(strings.Fields(m["Suites"]), suite) {
				if uris := strings.Fields(m["URIs"]); len(uris) > 0 {
					return uris[0], nil
				}
			}
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append([]string{"/etc/apt/sources.list"}, lists...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(l)
			if len(fs) > 0 && fs[0] == "deb" && len(fs) >= 3 {
				fs = slices.DeleteFunc(fs, func(s string) bool { return strings.HasPrefix(s, "[") || strings.HasSuffix(s, "]") })
				if len(fs) >= 3 && fs[2] == suite {
					return fs[1], nil
				}
			}
		}
	}
	return "", fmt.Errorf("no apt source for suite %s in /etc/apt/sources.list{,.d}", suite)
}

// osCodename returns this machine's Debian codename, e.g. bookworm.
func osCodename() (string, error) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", errors.New("/etc/os-release: no VERSION_CODENAME")
}

// minbaseTarball returns a tarball of a debootstrap --variant=minbase
// chroot of this machine's Debian release, made once and kept in
// cacheDir.
func minbaseTarball(cacheDir string) (string, error) {
	suite, err := osCodename()
	if err != nil {
		return "", err
	}
	tarball := filepath.Join(cacheDir, "minbase-"+suite+".tar")
	if _, err := os.Stat(tarball); err == nil {
		return tarball, nil
	}
	mirror, err := debianMirror(suite)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, "minbase-"+suite+".tmp")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "bench: debootstrap --variant=minbase %s into %s (once)\n", suite, dir)
	cmd := exec.Command("debootstrap", "--variant=minbase", suite, dir, mirror)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %w", cmd.Args, err)
	}
	// Services must not start inside the chroot.
	if err := os.WriteFile(filepath.Join(dir, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return "", err
	}
	if err := run("tar", "-C", dir, "-cf", tarball+".tmp", "."); err != nil {
		return "", err
	}
	return tarball, os.Rename(tarball+".tmp", tarball)
}

// restoreChroot makes dir a fresh copy of the tarball's chroot.
func restoreChroot(tarball, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return run("tar", "-C", dir, "-xf", tarball)
}

// chrootCmd runs argv inside the chroot dir with a clean environment.
func chrootCmd(dir string, argv ...string) *exec.Cmd {
	cmd := exec.Command("chroot", append([]string{dir}, argv...)...)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
	}
	return cmd
}

func runIn(dir string, argv ...string) (string, error) {
	cmd := chrootCmd(dir, argv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%v: %w: %s", cmd.Args, err, lastLines(out.String(), 20))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// installedDebs returns name → version of what dpkg has installed in the
// chroot.
func installedDebs(dir string) (map[string]string, error) {
	out, err := runIn(dir, "dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package} ${Version}\n")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for l := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "ii" {
			m[f[1]] = f[2]
		}
	}
	return m, nil
}

// aptRepo makes dir a flat apt repository of debs (hard links to the
// cached files, Packages from dpkg-scanpackages, and an unsigned Release
// listing their hashes), for sources.list's "deb [trusted=yes] URL ./".
func aptRepo(dir string, debs []*deb) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range debs {
		dst := filepath.Join(dir, filepath.Base(d.File))
		if err := os.Link(d.File, dst); err != nil {
			if err := run("cp", d.File, dst); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command("dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	cmd.Dir = dir
	packages, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%v: %w: %s", cmd.Args, err, stderrOf(err))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(packages)
	if err := zw.Close(); err != nil {
		return err
	}
	release := fmt.Sprintf("Date: %s\nSHA256:\n", time.Now().UTC().Format(time.RFC1123))
	for _, f := range []struct {
		name string
		b    []byte
	}{{"Packages", packages}, {"Packages.gz", gz.Bytes()}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o644); err != nil {
			return err
		}
		s := sha256.Sum256(f.b)
		release += fmt.Sprintf(" %x %d %s\n", s, len(f.b), f.name)
	}
	return os.WriteFile(filepath.Join(dir, "Release"), []byte(release), 0o644)
}

// writeLines writes one line per string.
func writeLines(p string, lines []string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
