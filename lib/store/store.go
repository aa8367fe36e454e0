// Package store manages a package store, the folder (<root>/roimg) that
// holds installed packages as <full>.squashfs plus <full>.meta.textproto
// and that distri-fuse serves under /ro.
//
// # Layout
//
//	<full>.squashfs, <full>.meta.textproto   a package
//	.lock                                    flock(2)ed by every writer while it commits
//	.staging/txn-<random>/                   files of a transaction in progress, flock(2)ed by its owner
//	.staging/<other>                         temporary files of the lock holder
//	installed                                the explicitly installed set, one name a line
//
// # Rules
//
//   - A package is visible only whole: it is in the store exactly when
//     its meta file is, and then its image is too. [Txn.Commit] renames
//     every image into place, fsyncs the directory, then renames the
//     metas and fsyncs again; the meta is the commit point. [Store.Remove]
//     deletes the meta first. An image without a meta (a commit killed
//     half way) is not a package; committing that package again replaces
//     it and [Store.GC] deletes it.
//   - Writers hold the store lock ([Store.Lock]) while they change the
//     store, so that none loses another's work, but not while they
//     download: a transaction ([Store.Stage]) fills its own staging
//     folder without the lock (a slow mirror must not stop other installs,
//     list or gc for hours) and takes the lock only to commit. A
//     transaction's folder is flock(2)ed by the process that owns it; a
//     new lock holder deletes every staging entry that is not (what a
//     killed process left there).
//   - Files the store does not recognise are left alone.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

// Names of the store's own files.
const (
	LockFile      = ".lock"
	StagingDir    = ".staging"
	InstalledFile = "installed"
)

const (
	imageSuffix = ".squashfs"
	metaSuffix  = ".meta.textproto"
)

// Store is an opened package store.
type Store struct {
	dir string
}

// Open opens the store in dir (e.g. /mnt/roimg), creating the folder if
// it does not exist.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// At returns the store in dir without creating anything: a store that
// does not exist lists no packages, and is created by the first
// [Store.Lock] or [Store.Stage]. Readers use it so that a command that
// only reads (or fails on its arguments) leaves no folder behind.
func At(dir string) *Store { return &Store{dir: dir} }

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

// ImagePath returns the path of the image of package full.
func (s *Store) ImagePath(full string) string { return filepath.Join(s.dir, full+imageSuffix) }

// MetaPath returns the path of the meta file of package full.
func (s *Store) MetaPath(full string) string { return filepath.Join(s.dir, full+metaSuffix) }

// Lock is a held store lock.
type Lock struct {
	f *os.File
}

// Lock takes the store's exclusive lock, waiting while another process
// holds it (waiting, if not nil, is called once when that happens) until
// ctx is done. It then deletes whatever a previous holder left in
// staging.
func (s *Store) Lock(ctx context.Context, waiting func()) (*Lock, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	for delay := 5 * time.Millisecond; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock store %s: %w", s.dir, err)
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock store %s: %w", s.dir, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
	if err := s.cleanStaging(); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock store: clean staging: %w", err)
	}
	return &Lock{f: f}, nil
}

// cleanStaging deletes what no live process owns in staging: temporary
// files, and transaction folders whose flock it can take.
func (s *Store) cleanStaging() error {
	staging := filepath.Join(s.dir, StagingDir)
	ents, err := os.ReadDir(staging)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(staging, e.Name())
		if e.IsDir() {
			d, err := os.Open(p)
			if err != nil {
				return err
			}
			err = unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err != nil {
				d.Close()
				if errors.Is(err, unix.EWOULDBLOCK) {
					continue // a download in progress
				}
				return err
			}
			err = os.RemoveAll(p)
			d.Close()
			if err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// WriteFile atomically replaces the store's file name (e.g. installed)
// with b, through a temporary file in staging, which the next lock holder
// empties: a writer killed half way leaves no temporary file in the
// store itself. l must be the held lock.
func (s *Store) WriteFile(l *Lock, name string, b []byte, mode os.FileMode) error {
	if l == nil || l.f == nil {
		return fmt.Errorf("write %s: store not locked", name)
	}
	staging := filepath.Join(s.dir, StagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	p := filepath.Join(s.dir, name)
	err := renameio.WriteFile(p, b, mode, renameio.WithTempDir(staging), renameio.WithStaticPermissions(mode))
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	return l.f.Close() // closing the last descriptor drops the flock
}

// List returns the packages in the store, sorted by name.
func (s *Store) List() ([]pkgname.Name, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no store yet: no packages
	}
	if err != nil {
		return nil, fmt.Errorf("list store: %w", err)
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	var out []pkgname.Name
	for _, e := range ents {
		full, ok := strings.CutSuffix(e.Name(), metaSuffix)
		if !ok || !have[full+imageSuffix] {
			continue
		}
		n, err := pkgname.Parse(full)
		if err != nil || n.String() != full {
			continue
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b pkgname.Name) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// Has reports whether package full is in the store (whole).
func (s *Store) Has(full string) bool {
	if _, err := os.Stat(s.MetaPath(full)); err != nil {
		return false
	}
	_, err := os.Stat(s.ImagePath(full))
	return err == nil
}

// Meta reads the meta file of package full.
func (s *Store) Meta(full string) (*pb.Meta, error) {
	return pb.ReadMetaFile(s.MetaPath(full))
}

// Txn stages packages and commits them into the store.
type Txn struct {
	s    *Store
	dir  string
	own  *os.File // dir, flock(2)ed while the transaction lives
	pkgs []string
}

// Stage starts a transaction without the store lock: its files go to a
// staging folder of its own, flock(2)ed so that a lock holder cleaning
// staging leaves it alone. [Txn.Commit] then needs the lock.
func (s *Store) Stage() (*Txn, error) {
	staging := filepath.Join(s.dir, StagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	dir, err := os.MkdirTemp(staging, "txn-")
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	own, err := os.Open(dir)
	if err == nil {
		err = unix.Flock(int(own.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			own.Close()
		}
	}
	if err != nil {
		// A lock holder may have deleted it between MkdirTemp and flock.
		os.RemoveAll(dir)
		return nil, fmt.Errorf("stage: %w", err)
	}
	return &Txn{s: s, dir: dir, own: own}, nil
}

// Begin starts a transaction; l must be the store's held lock.
func (s *Store) Begin(l *Lock) (*Txn, error) {
	if l == nil || l.f == nil {
		return nil, errors.New("begin: store not locked")
	}
	return s.Stage()
}

// Dir returns the transaction's staging folder.
func (t *Txn) Dir() string { return t.dir }

// ImagePath and MetaPath name where package full's files go in staging.
func (t *Txn) ImagePath(full string) string { return filepath.Join(t.dir, full+imageSuffix) }

// MetaPath returns the staging path of package full's meta file.
func (t *Txn) MetaPath(full string) string { return filepath.Join(t.dir, full+metaSuffix) }

// Add marks package full, whose image and meta are in staging, for commit.
func (t *Txn) Add(full string) {
	t.pkgs = append(t.pkgs, full)
}

// Added returns the packages marked for commit.
func (t *Txn) Added() []string { return slices.Clone(t.pkgs) }

// Commit moves the added packages into the store: it fsyncs every staged
// file, renames the images into place, fsyncs the store directory, then
// renames the metas and fsyncs again. Packages already whole in the store
// are left as they are. The staging folder is removed.
//
// The staged files are fsynced syncParallel at once, not one after the
// other: the file system then writes their data together and covers
// their metadata with few journal commits.
//
// Why a crash leaves only whole packages: a meta is renamed into place
// only after (1) the fsync of every staged file returned, so the bytes of
// its image and its own bytes are on disk, and (2) the fsync of the
// store directory after the image renames returned, so the image's name
// is on disk. A crash before the final directory fsync may lose some
// meta renames; those packages are then not there at all, and the next
// install fetches them again. One syncfs(2) of the file system instead
// of the per-file fsyncs would give the same guarantee, but would also
// wait for every other process's dirty data on that file system; on the
// benchmark machine it was not measurably faster (docs/repository.md).
func (t *Txn) Commit(l *Lock) error {
	defer t.Abort()
	if l == nil || l.f == nil {
		return errors.New("commit: store not locked")
	}
	var todo []string
	for _, full := range t.pkgs {
		if !t.s.Has(full) {
			todo = append(todo, full)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	crash := newCrashPoint()
	crash.step()
	var g errgroup.Group
	g.SetLimit(syncParallel)
	for _, full := range todo {
		for _, p := range []string{t.ImagePath(full), t.MetaPath(full)} {
			g.Go(func() error {
				if err := syncFile(p); err != nil {
					return fmt.Errorf("commit %s: %w", full, err)
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	crash.step()
	for _, full := range todo {
		if err := os.Rename(t.ImagePath(full), t.s.ImagePath(full)); err != nil {
			return fmt.Errorf("commit %s: %w", full, err)
		}
		crash.step()
	}
	if err := syncDir(t.s.dir); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	crash.step()
	for _, full := range todo {
		if err := os.Rename(t.MetaPath(full), t.s.MetaPath(full)); err != nil {
			return fmt.Errorf("commit %s: %w", full, err)
		}
		crash.step()
	}
	if err := syncDir(t.s.dir); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	crash.step()
	return nil
}

// CrashEnv names the environment variable with which the fault-injection
// test of distri-install (TestKill9) makes [Txn.Commit] kill its own
// process with SIGKILL after that many steps (0: as the commit starts).
// The steps are: the fsync of the staged files, each image rename, the
// fsync of the store directory, each meta rename, the final fsync. Unset
// or not a number: never. Nothing else sets it.
const CrashEnv = "DISTRI_TEST_KILL_IN_COMMIT"

// crashPoint counts the steps of a commit for [CrashEnv].
type crashPoint struct{ left int }

func newCrashPoint() *crashPoint {
	n, err := strconv.Atoi(os.Getenv(CrashEnv))
	if err != nil || n < 0 {
		return nil
	}
	return &crashPoint{left: n}
}

// step ends a step of the commit: the process dies here if that was the
// step $DISTRI_TEST_KILL_IN_COMMIT names.
func (c *crashPoint) step() {
	if c == nil {
		return
	}
	if c.left == 0 {
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
	c.left--
}

// syncParallel is how many staged files [Txn.Commit] fsyncs at once.
const syncParallel = 16

// Abort deletes the staging folder and whatever is in it. It is safe to
// call after Commit, and more than once.
func (t *Txn) Abort() error {
	err := os.RemoveAll(t.dir)
	if t.own != nil {
		t.own.Close()
		t.own = nil
	}
	return err
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// Remove deletes packages from the store, each meta before its image so
// that a package is never seen half there. l must be the held lock. A
// package that is not there is no error.
func (s *Store) Remove(l *Lock, fulls ...string) error {
	if l == nil || l.f == nil {
		return errors.New("remove: store not locked")
	}
	for _, full := range fulls {
		if err := os.Remove(s.MetaPath(full)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", full, err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	for _, full := range fulls {
		if err := os.Remove(s.ImagePath(full)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", full, err)
		}
	}
	return nil
}

// Installed returns the explicitly installed set: names as they were asked
// for, e.g. bash-amd64 (follows updates) or bash-amd64-5.2.15-3 (pinned).
// A store without the file returns an error wrapping fs.ErrNotExist.
func (s *Store) Installed() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, InstalledFile))
	if err != nil {
		return nil, err
	}
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, nil
}

// SetInstalled replaces the explicitly installed set (sorted, without
// duplicates), atomically. l must be the held lock.
func (s *Store) SetInstalled(l *Lock, names []string) error {
	if l == nil || l.f == nil {
		return errors.New("set installed: store not locked")
	}
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	var b strings.Builder
	b.WriteString("# explicitly installed packages (distri-install); one name a line\n")
	for _, n := range names {
		if err := pkgname.CheckName(n); err != nil {
			return fmt.Errorf("set installed: %w", err)
		}
		b.WriteString(n + "\n")
	}
	return s.WriteFile(l, InstalledFile, []byte(b.String()), 0o644)
}

// WriteFileAtomic writes b to path with exactly mode, through a synced
// temporary file in the same folder that is renamed over path: readers
// see the old or the new file, never a part of one.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	err := renameio.WriteFile(path, b, mode, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(mode))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
