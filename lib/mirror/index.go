// Package mirror turns a folder of distri packages into a signed
// repository and serves repositories over HTTP.
//
// # Repository layout (DESIGN.md §3)
//
//	<repo>/pkg/<full>.squashfs, <full>.meta.textproto   the packages
//	<repo>/pkg/<name>-<arch>.meta.textproto              copy of the newest revision's meta
//	<repo>/pkg/index                                     binary protobuf pb.Index
//	<repo>/pkg/index.minisig                             minisign signature of index
//	<repo>/pkg/X.zst, X.gz                               precompressed siblings of index, metas, images
//	<repo>/pkg/.index-cache                              what [Index] already hashed (not served)
//
// # Decisions
//
//   - The index is binary protobuf, not text: a repository of thousands of
//     packages lists every exchange path each provides, and an installer
//     must parse it in milliseconds.
//   - A package is a .squashfs image with its .meta.textproto; metas
//     without an image are pointer metas or strays and are not indexed.
//     This also keeps pointer metas such as gcc-i686-amd64.meta.textproto,
//     whose name happens to parse as a full name, out of the index.
//   - Pointer metas are copies, not symlinks: they work the same over
//     HTTP, from a local path and through rsync.
//   - The runtime_dep of each index entry is the closure computed over
//     the repository's metas, so a meta that lists only direct
//     dependencies still yields a complete install.
//   - Precompressed siblings get the mtime of the file they compress.
//     nginx's gzip_static takes Last-Modified and the ETag from the .gz
//     file; with equal mtimes every representation reports the same time,
//     and a sibling is known current when its mtime matches.
//   - The signature's trusted comment carries the time stamp, and with
//     IndexOptions.ValidFor and Name an expiry and the repository's name
//     (format and client checks: lib/repo/freshness.go). The expiry is
//     off by default: a repository that is not re-signed regularly would
//     otherwise stop working, so it is the publisher's decision.
//   - The cache is keyed by file name, size and mtime (in nanoseconds). A
//     file rewritten in place with the same size within one mtime tick is
//     not noticed; packages are written once under a new name, so this
//     does not happen in practice.
package mirror

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/repo"
)

// Names of the repository files [Index] writes in <repo>/pkg.
const (
	IndexFile     = "index"
	SignatureFile = "index.minisig"
	cacheFile     = ".index-cache"
)

// IndexOptions says which repository to index and how to sign it.
type IndexOptions struct {
	// Repo is the repository folder; packages are in Repo/pkg, e.g.
	// /srv/distri.
	Repo string
	// Key signs the index.
	Key minisign.PrivateKey
	// Parallel is how many files are hashed and compressed at once; 0
	// means the number of CPUs.
	Parallel int
	// Log receives one line per file hashed or compressed; nil discards.
	Log *log.Logger
	// Now is the signature's time stamp; zero means time.Now.
	Now time.Time
	// ValidFor, if positive, is how long after Now the index expires:
	// clients refuse it afterwards, so a mirror cannot go on serving it
	// once the repository has moved on (re-sign before it runs out).
	ValidFor time.Duration
	// Name, if not empty, is the repository's name, signed into the
	// index so that a client configured for another repository refuses
	// it (repo.CheckName says what a name may be).
	Name string
}

// Index writes the repository's index, its signature, the pointer metas
// and the precompressed siblings, and returns the index's path. Files
// unchanged since the last run (same name, size and mtime) are not hashed
// or compressed again.
func Index(opts IndexOptions) (string, error) {
	pkgDir := filepath.Join(opts.Repo, "pkg")
	logf := func(string, ...any) {}
	if opts.Log != nil {
		logf = opts.Log.Printf
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.NumCPU()
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.ValidFor < 0 {
		return "", fmt.Errorf("index %s: negative validity %v", opts.Repo, opts.ValidFor)
	}
	if opts.Name != "" {
		if err := repo.CheckName(opts.Name); err != nil {
			return "", fmt.Errorf("index %s: %w", opts.Repo, err)
		}
	}
	pkgs, err := findPackages(pkgDir)
	if err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	c := loadCache(filepath.Join(pkgDir, cacheFile))

	// Hash images and metas, read what images provide, compress both.
	entries := make([]*pb.Package, len(pkgs))
	metas := make([]*pb.Meta, len(pkgs))
	var g errgroup.Group
	g.SetLimit(opts.Parallel)
	for i, n := range pkgs {
		g.Go(func() error {
			full := n.String()
			img, err := c.file(pkgDir, full+".squashfs", true, logf)
			if err != nil {
				return err
			}
			meta, err := c.file(pkgDir, full+".meta.textproto", false, logf)
			if err != nil {
				return err
			}
			m, err := pb.ReadMetaFile(filepath.Join(pkgDir, full+".meta.textproto"))
			if err != nil {
				return err
			}
			metas[i] = m
			entries[i] = &pb.Package{
				Name:        proto.String(full),
				ImageSize:   proto.Uint64(uint64(img.Size)),
				ImageSha256: proto.String(img.SHA256),
				MetaSize:    proto.Uint64(uint64(meta.Size)),
				MetaSha256:  proto.String(meta.SHA256),
				Provides:    img.Provides,
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	closures(entries, metas)

	// Pointer metas: <name>-<arch>.meta.textproto is the newest revision's.
	newest := map[string]pkgname.Name{}
	for _, n := range pkgs {
		if o, ok := newest[n.Unqualified()]; !ok || pkgname.Compare(o, n) < 0 {
			newest[n.Unqualified()] = n
		}
	}
	var pointers []string
	for u, n := range newest {
		p := u + ".meta.textproto"
		pointers = append(pointers, p)
		if err := copyIfDifferent(filepath.Join(pkgDir, n.String()+".meta.textproto"), filepath.Join(pkgDir, p)); err != nil {
			return "", fmt.Errorf("index %s: pointer meta %s: %w", opts.Repo, p, err)
		}
	}
	slices.Sort(pointers)
	for _, old := range c.Pointers {
		if _, found := slices.BinarySearch(pointers, old); !found {
			logf("remove %s: no package %s any more", old, strings.TrimSuffix(old, ".meta.textproto"))
			for _, suf := range []string{"", ".zst", ".gz"} {
				os.Remove(filepath.Join(pkgDir, old+suf))
			}
		}
	}
	c.Pointers = pointers
	for _, p := range pointers {
		g.Go(func() error {
			_, err := c.file(pkgDir, p, false, logf)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}

	// The index itself, then its siblings, then the signature.
	idx := &pb.Index{Package: entries}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(idx)
	if err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	indexPath := filepath.Join(pkgDir, IndexFile)
	if err := writeFileAtomic(indexPath, b); err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	if err := compressSiblings(indexPath); err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	stamp := repo.Stamp{Signed: opts.Now, File: IndexFile, Repo: opts.Name}
	if opts.ValidFor > 0 {
		stamp.Expires = opts.Now.Add(opts.ValidFor)
	}
	sig, err := minisign.Sign(opts.Key, bytes.NewReader(b), stamp.String())
	if err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	if err := writeFileAtomic(filepath.Join(pkgDir, SignatureFile), sig); err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	if err := writeHTML(pkgDir, entries, metas); err != nil { // html.go: the browsable pages
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	removeStaleSiblings(pkgDir, logf)
	if err := c.save(); err != nil {
		return "", fmt.Errorf("index %s: %w", opts.Repo, err)
	}
	return indexPath, nil
}

// findPackages lists the packages in dir: every <full>.squashfs. An image
// without its meta file is an error, as it cannot be installed.
func findPackages(dir string) ([]pkgname.Name, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	var pkgs []pkgname.Name
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".squashfs")
		if !ok || strings.HasPrefix(base, ".") || !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		n, err := pkgname.Parse(base)
		if err != nil || n.String() != base {
			return nil, fmt.Errorf("%s: not named <name>-<arch>-<upstream>-<rev>.squashfs", e.Name())
		}
		if !have[base+".meta.textproto"] {
			return nil, fmt.Errorf("%s: no meta file %s.meta.textproto", e.Name(), base)
		}
		pkgs = append(pkgs, n)
	}
	slices.SortFunc(pkgs, func(a, b pkgname.Name) int { return strings.Compare(a.String(), b.String()) })
	return pkgs, nil
}

// closures sets each entry's runtime_dep to the transitive closure of the
// metas' runtime_dep over the packages of the repository. Dependencies
// the repository does not have stay listed (another repository may).
func closures(entries []*pb.Package, metas []*pb.Meta) {
	deps := map[string][]string{}
	for i, e := range entries {
		deps[e.GetName()] = metas[i].GetRuntimeDep()
	}
	for _, e := range entries {
		seen := map[string]bool{e.GetName(): true}
		var out []string
		queue := slices.Clone(deps[e.GetName()])
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if seen[d] {
				continue
			}
			seen[d] = true
			out = append(out, d)
			queue = append(queue, deps[d]...)
		}
		slices.Sort(out)
		e.RuntimeDep = out
	}
}

// copyIfDifferent makes dst a copy of src unless it already is one.
func copyIfDifferent(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return writeFileAtomic(dst, b)
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, synced and renamed, so a reader (or nginx) sees the old or
// the new file.
func writeFileAtomic(path string, b []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

func writeAtomic(path string, fill func(io.Writer) error) error {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.CloseAtomicallyReplace()
}

// removeStaleSiblings deletes X.zst and X.gz whose X is gone.
func removeStaleSiblings(dir string, logf func(string, ...any)) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	for _, e := range ents {
		for _, suf := range []string{".zst", ".gz"} {
			if base, ok := strings.CutSuffix(e.Name(), suf); ok && !have[base] && !strings.HasPrefix(base, ".") {
				logf("remove %s: %s is gone", e.Name(), base)
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// Keygen makes a new repository key pair and writes it as name.pub and
// name.key (minisign's formats; the secret key unencrypted, mode 0600).
// It returns the two paths. Existing files are an error unless force is
// set.
func Keygen(name string, force bool) (pubPath, keyPath string, err error) {
	k, err := minisign.GenerateKey(nil)
	if err != nil {
		return "", "", err
	}
	return minisign.WriteKeyFiles(name, k, force)
}
