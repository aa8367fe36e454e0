// Package install installs distri packages with their dependency closure
// from signed repositories into the package store of a root
// (<root>/roimg), and updates, removes and garbage-collects them.
//
// # How an install runs
//
//  1. Fetch and verify the index of every repository, in parallel.
//  2. Resolve each name to a full name: a full name is itself; bash is
//     the newest revision (by number) of bash-<arch> in any repository.
//     An unknown name is an [*UnknownError] with similar names.
//  3. Fetch the image and meta of every package of the closure the store
//     lacks into a staging folder of its own, without the store lock, a
//     bounded number at once over shared connections, each checked
//     against the signed index as it streams.
//  4. Take the store lock and look again: packages another install
//     committed meanwhile are skipped, packages a gc removed meanwhile
//     are fetched now.
//  5. Check the new packages' provides and warn about exchange paths
//     (/ro/bin/x) that another package also provides, naming both.
//  6. Copy the packages' etc/ into <root>/etc (see [etcWriter]: a file the
//     user changed is never overwritten; no symlink in the root's /etc is
//     followed).
//  7. Commit to the store (a package is visible only whole), record the
//     explicitly installed names, release the lock and ask a running
//     distri-fuse to rescan (lib/fusectl).
//
// Any error before the commit leaves the store as it was, staging
// removed, and /etc as it was (the etc/ copy is rolled back).
//
// # Decisions
//
//   - The lock is not held while downloading, only from step 4 on: a
//     slow mirror must not stop other installs, gc and list (it held the
//     lock for hours). Two installs of the same package may both
//     download it; the second to commit finds it present and drops its
//     copy.
//   - /etc is written before the commit: an install killed in between
//     copies again on the next run, and finds identical files. A commit
//     that fails rolls /etc back.
//   - Names are checked against pkgname's safe alphabet before anything
//     is fetched or created; New creates no folder.
package install

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"distri.dev/distri/lib/exchange"
	"distri.dev/distri/lib/fusectl"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/repo"
	"distri.dev/distri/lib/store"
)

// Options configures an [Installer].
type Options struct {
	// Root is the root file system to install into, e.g. / or /mnt. The
	// store is Root/roimg. Empty means /.
	Root string
	// Repos are repository URLs or folders, e.g. http://127.0.0.1:7080.
	// Empty means the lines of Root/etc/distri/repos.d/*.repo.
	Repos []string
	// PubKeyFiles are the public keys trusted to sign indexes, e.g.
	// distri.pub. Empty means Root/etc/distri/keys/*.pub.
	PubKeyFiles []string
	// Arch is the architecture of unqualified names; empty means this
	// machine's.
	Arch string
	// Jobs is how many files are fetched at once; 0 means 8.
	Jobs int
	// Attempts and RetryDelay bound the retries of one file (see
	// repo.Options); 0 means the defaults.
	Attempts   int
	RetryDelay time.Duration
	// Client makes the HTTP requests; nil means one with Jobs
	// connections per host.
	Client *http.Client
	// Log receives notices, e.g. about /etc files kept; nil discards.
	Log *log.Logger
	// Verbose also logs how long each phase of an install took (index,
	// lock, fetch, etc, commit).
	Verbose bool
	// Encodings are the transport encodings asked for (see
	// repo.Options); nil chooses by repository (repo.AutoEncodings).
	Encodings []string
	// Progress, if set, receives a one-line progress display (bytes,
	// rate, packages done), redrawn with \r. Set it only for a terminal.
	Progress io.Writer
	// Init is the distri-init binary that initramfs archives for
	// installed kernel packages start (see kernel.go). Empty means the
	// root's /init.
	Init string
	// AllowExpired uses indexes past their expiry (offline use); see
	// repos.go and lib/repo/freshness.go.
	AllowExpired bool
	// DryRun changes nothing: Install, Update, Remove and GC return what
	// they would add or delete, and indexes are checked against the
	// time stamps recorded in the root without recording newer ones
	// (see manage.go). Read-only commands (list, search, info) set it
	// too, so that they create and lock nothing.
	DryRun bool
}

// Installer installs into one root.
type Installer struct {
	opts  Options
	store *store.Store
	logf  func(string, ...any)
	phase time.Time // when the current phase started, for Verbose
}

// timed logs, if Verbose, how long the phase that ends now took.
func (in *Installer) timed(format string, args ...any) {
	now := time.Now()
	if in.opts.Verbose && !in.phase.IsZero() {
		in.logf("%s: %v", fmt.Sprintf(format, args...), now.Sub(in.phase).Round(100*time.Microsecond))
	}
	in.phase = now
}

// New returns an installer for opts.Root. It creates nothing: the store
// folder is made by the first install.
func New(opts Options) (*Installer, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Arch == "" {
		a, ok := pkgname.ArchForGOARCH(runtime.GOARCH)
		if !ok {
			return nil, fmt.Errorf("no package architecture for %s", runtime.GOARCH)
		}
		opts.Arch = a
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 8
	}
	// Nothing is created until a command has checked its arguments
	// and needs to write: store.At, not store.Open.
	st := store.At(filepath.Join(opts.Root, "roimg"))
	in := &Installer{opts: opts, store: st, logf: func(string, ...any) {}}
	if opts.Log != nil {
		in.logf = opts.Log.Printf
	}
	return in, nil
}

// Store returns the store the installer writes.
func (in *Installer) Store() *store.Store { return in.store }

// Install installs the packages names (e.g. bash, bash-amd64 or
// bash-amd64-5.2.15-3) with their closures, records the names as
// explicitly installed, and returns the full names it added to the
// store, sorted.
func (in *Installer) Install(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("install: no packages named")
	}
	for _, name := range names {
		if err := pkgname.CheckName(name); err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
	}
	in.timed("start")
	cat, err := in.catalog(ctx)
	if err != nil {
		return nil, err
	}
	var fulls, records []string
	var errs []error
	for _, name := range names {
		full, record, err := cat.resolve(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fulls = append(fulls, full)
		records = append(records, record)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return in.install(ctx, cat, fulls, records)
}

// Update installs the newest revision of every package name in the store
// and in the explicitly installed set (pinned full names stay as they
// are), and returns the full names it added. Older revisions stay until
// [Installer.GC].
func (in *Installer) Update(ctx context.Context) ([]string, error) {
	in.timed("start")
	cat, err := in.catalog(ctx)
	if err != nil {
		return nil, err
	}
	wanted := map[string]bool{}
	installed, err := in.store.Installed()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, name := range installed {
		if !pkgname.IsFull(name) {
			wanted[name] = true
		}
	}
	pkgs, err := in.store.List()
	if err != nil {
		return nil, err
	}
	for _, n := range pkgs {
		wanted[n.Unqualified()] = true
	}
	var fulls []string
	for u := range wanted {
		n, ok := cat.newest[u]
		if !ok {
			in.logf("%s: in no repository, not updated", u)
			continue
		}
		fulls = append(fulls, n.String())
	}
	slices.Sort(fulls)
	return in.install(ctx, cat, fulls, nil)
}

// catalog fetches and verifies every repository's index.
func (in *Installer) catalog(ctx context.Context) (*catalog, error) {
	sources, err := in.repoOptions() // repos.go: URLs, keys and checks of each
	if err != nil {
		return nil, err
	}
	client := in.opts.Client
	if client == nil {
		client = repo.NewClient(in.opts.Jobs)
		in.opts.Client = client
	}
	repos := make([]*repo.Repo, len(sources))
	indexes := make([]*pb.IndexSummary, len(sources))
	var g errgroup.Group
	for i, o := range sources {
		o.Client, o.Attempts, o.RetryDelay, o.Encodings = client, in.opts.Attempts, in.opts.RetryDelay, in.opts.Encodings
		r, err := repo.New(o)
		if err != nil {
			return nil, err
		}
		repos[i] = r
		g.Go(func() error {
			idx, err := r.Summary(ctx)
			indexes[i] = idx
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	in.timed("fetch and verify %d indexes", len(sources))
	return newCatalog(in.opts.Arch, repos, indexes), nil
}

func (in *Installer) keys() ([]minisign.PublicKey, error) {
	files := in.opts.PubKeyFiles
	if len(files) == 0 {
		pattern := filepath.Join(in.opts.Root, "etc/distri/keys/*.pub")
		files, _ = filepath.Glob(pattern)
		if len(files) == 0 {
			return nil, fmt.Errorf("no trusted public key: pass --pubkey or put one in %s", pattern)
		}
	}
	var keys []minisign.PublicKey
	for _, f := range files {
		k, err := minisign.ReadPublicKeyFile(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// install installs fulls with their closure and adds records to the
// installed set.
func (in *Installer) install(ctx context.Context, cat *catalog, fulls, records []string) (added []string, err error) {
	closure, err := cat.closure(fulls)
	if err != nil {
		return nil, err
	}
	in.timed("resolve %d packages", len(closure))
	// Download without the lock: what the store lacks now.
	var txn *store.Txn
	var missing []string
	for _, f := range closure {
		if !in.store.Has(f) {
			missing = append(missing, f)
		}
	}
	if in.opts.DryRun {
		slices.Sort(missing)
		return missing, nil
	}
	if len(missing) > 0 {
		if txn, err = in.store.Stage(); err != nil {
			return nil, err
		}
		defer txn.Abort()
		if err := in.fetch(ctx, cat, txn, missing); err != nil {
			return nil, err
		}
	}
	lock, err := in.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	in.timed("lock")
	// Under the lock, look again: another install may have committed
	// some of them meanwhile, or a gc removed some that were there.
	fetched := map[string]bool{}
	for _, f := range missing {
		fetched[f] = true
	}
	var late []string
	for _, f := range closure {
		if !in.store.Has(f) && !fetched[f] {
			late = append(late, f)
		}
	}
	if len(late) > 0 {
		in.logf("%d packages went from the store during the download; fetching them now", len(late))
		if txn == nil {
			if txn, err = in.store.Stage(); err != nil {
				return nil, err
			}
			defer txn.Abort()
		}
		if err := in.fetch(ctx, cat, txn, late); err != nil {
			return nil, err
		}
		missing = append(missing, late...)
	}
	for _, f := range missing {
		if !in.store.Has(f) {
			added = append(added, f)
		}
	}
	slices.Sort(added)
	if len(added) > 0 {
		if err := in.commit(lock, txn, added); err != nil {
			return nil, err
		}
		users, err := ApplySysusers(in.opts.Root, in.store, added) // sysusers.go
		if err != nil {
			return added, fmt.Errorf("installed, but the packages' users and groups: %w", err)
		}
		for _, u := range users {
			in.logf("added %s", u)
		}
	}
	if len(records) > 0 {
		old, err := in.store.Installed()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := in.store.SetInstalled(lock, append(old, records...)); err != nil {
			return nil, err
		}
	}
	if err := lock.Unlock(); err != nil {
		return nil, err
	}
	in.timed("record the installed set")
	if err := in.bootKernels(ctx, added); err != nil {
		return added, err
	}
	in.timed("kernels")
	if len(added) > 0 {
		if err := fusectl.Rescan(ctx, in.opts.Root); err != nil {
			in.logf("installed, but distri-fuse did not rescan: %v", err)
		}
		in.timed("rescan")
	}
	return added, nil
}

// fetch downloads the images and metas of fulls into txn's staging
// folder, without the store lock.
func (in *Installer) fetch(ctx context.Context, cat *catalog, txn *store.Txn, fulls []string) (err error) {
	defer func() {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w (disk full; nothing installed, staging removed)", err)
		}
	}()
	prog := newProgress(in.opts.Progress, len(fulls), cat, fulls)
	defer prog.stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(in.opts.Jobs)
	// Images first, largest first: they dominate the time.
	order := slices.Clone(fulls)
	slices.SortStableFunc(order, func(a, b string) int {
		return cmp.Compare(cat.byFull[b].pkg.GetImageSize(), cat.byFull[a].pkg.GetImageSize())
	})
	for _, full := range order {
		src := cat.byFull[full]
		g.Go(func() error {
			if err := src.repo.Fetch(gctx, full+".squashfs", int64(src.pkg.GetImageSize()), src.pkg.GetImageSha256(), txn.ImagePath(full), prog.add); err != nil {
				return fmt.Errorf("%s: %w", src.repo, err)
			}
			prog.done()
			return nil
		})
	}
	for _, full := range order {
		src := cat.byFull[full]
		g.Go(func() error {
			if err := src.repo.Fetch(gctx, full+".meta.textproto", int64(src.pkg.GetMetaSize()), src.pkg.GetMetaSha256(), txn.MetaPath(full), nil); err != nil {
				return fmt.Errorf("%s: %w", src.repo, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	prog.stop()
	in.timed("fetch %d packages (%.1f MiB)", len(fulls), float64(prog.bytes.Load())/(1<<20))
	return nil
}

// commit copies the etc/ of the packages fulls, staged in txn, into the
// root and commits them, under the lock. If anything fails, the /etc
// changes are rolled back: no file of a package that is not installed
// stays in /etc.
func (in *Installer) commit(lock *store.Lock, txn *store.Txn, fulls []string) (err error) {
	defer func() {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w (disk full; nothing installed, staging removed)", err)
		}
	}()
	if err := in.warnShadows(fulls, txn); err != nil {
		return err
	}
	state, err := loadEtcState(in.store)
	if err != nil {
		return err
	}
	etc, err := newEtcWriter(in.opts.Root, state, func(s string) { in.logf("%s", s) })
	if err != nil {
		return err
	}
	defer etc.close()
	committed := false
	defer func() {
		if err != nil && !committed {
			if rerr := etc.rollback(); rerr != nil {
				err = fmt.Errorf("%w; and then: %w", err, rerr)
			}
		}
	}()
	for _, full := range fulls {
		if err := etc.copy(txn.ImagePath(full)); err != nil {
			return err
		}
		txn.Add(full)
	}
	in.timed("etc")
	if err := txn.Commit(lock); err != nil {
		return err
	}
	committed = true
	in.timed("commit")
	// After the commit: sums of files that are in /etc now. A failure
	// here leaves the packages installed and the sums as before, so a
	// file this install put there counts as the user's next time (kept,
	// never lost).
	if err := state.save(lock); err != nil {
		return fmt.Errorf("installed, but %w", err)
	}
	return nil
}

// warnShadows checks the provides of the staged packages fulls and logs
// a warning for each exchange path (e.g. /ro/bin/ls) that one of them
// and another package (of another name, e.g. from another repository)
// both provide, naming both and the one /ro shows. A provides entry
// that is not a clean path below an exchange directory is an error.
func (in *Installer) warnShadows(fulls []string, txn *store.Txn) error {
	newest := map[string]exchange.Provider{}
	isNew := map[string]bool{}
	consider := func(full string, read func() (*pb.Meta, error)) error {
		n, err := pkgname.Parse(full)
		if err != nil {
			return err
		}
		if cur, ok := newest[n.Unqualified()]; ok {
			c, _ := pkgname.Parse(cur.Full)
			if pkgname.Compare(c, n) > 0 {
				return nil
			}
		}
		m, err := read()
		if err != nil {
			return err
		}
		for _, p := range m.GetProvides() {
			if err := exchange.CheckPath(p); err != nil {
				return fmt.Errorf("%s: meta: %w", full, err)
			}
		}
		newest[n.Unqualified()] = exchange.Provider{Full: full, Provides: m.GetProvides()}
		return nil
	}
	for _, full := range fulls {
		isNew[full] = true
		if err := consider(full, func() (*pb.Meta, error) { return pb.ReadMetaFile(txn.MetaPath(full)) }); err != nil {
			return err
		}
	}
	pkgs, err := in.store.List()
	if err != nil {
		return err
	}
	for _, n := range pkgs {
		full := n.String()
		if err := consider(full, func() (*pb.Meta, error) { return in.store.Meta(full) }); err != nil {
			in.logf("%v (not checked for shadowed paths)", err)
		}
	}
	var provs []exchange.Provider
	for _, p := range newest {
		provs = append(provs, p)
	}
	for _, s := range exchange.Shadows(provs, func(f string) bool { return isNew[f] }) {
		in.logf("warning: /ro/%s is provided by both %s and %s; /ro shows %s's", s.Path, s.Winner, s.Loser, s.Winner)
	}
	return nil
}
