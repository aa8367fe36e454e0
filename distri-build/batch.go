package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/batch"
	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/sandbox"
)

type batchOptions struct {
	repo      string
	cache     string
	logDir    string
	jobs      int
	keepGoing bool
	dryRun    bool
	lim       limitOptions
}

func (o *batchOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.repo, "repo", ".", "repository to write packages into (<repo>/pkg)")
	fs.StringVar(&o.cache, "cache", "", "source cache, holding sha256/<hex> (default: as for build)")
	fs.StringVar(&o.logDir, "log-dir", "", "directory for the per-package build logs <name>.log (default: a new distri-batch-* temporary directory)")
	fs.IntVarP(&o.jobs, "jobs", "j", 1, "number of builds to run at once")
	fs.BoolVarP(&o.keepGoing, "keep-going", "k", false, "after a failure, build everything that does not depend on it")
	fs.BoolVarP(&o.dryRun, "dry-run", "n", false, "print what would be built, in order, and build nothing")
	o.lim.addFlags(fs)
}

func newBatchCmd(stdio cli.Stdio) *cobra.Command {
	var opts batchOptions
	cmd := &cobra.Command{
		Use:   "batch [--repo DIR] [--jobs N] [--keep-going] [--dry-run] PKGSDIR",
		Short: "build every stale recipe in dependency order",
		Long: `batch builds every recipe PKGSDIR/<name>/build.textproto (or
PKGSDIR/<name>/<upstream version>/build.textproto, one of several
versions of <name>) whose input digest differs from that of its package
in <repo>/pkg (or that has no package yet), in dependency order (dep and
runtime_dep), up to --jobs at once, and prints the paths of the images
it wrote.

A cycle of build deps is an error; cycles through runtime deps (libc6
and libgcc-s1) are fine. A dep that is not in PKGSDIR must have a
package in the repository. Progress goes to stderr; each build logs to
<log-dir>/<name>.log (<name>-<version>.log). When a build fails, batch starts no more builds
(unless --keep-going, which builds everything that does not depend on
the failure), and exits 1 with a summary naming each failed build and
its log.

Each build step runs with the limits --memory, --pids, --cpu-weight,
--timeout and --tmpfs-size (per step, so --jobs N builds may together
use N times --memory); a step that hits one fails, naming it.

Examples:
  % distri-build batch --dry-run pkgs
  libc6
  hello
  % distri-build batch --repo repo --jobs 2 --keep-going pkgs
  [1/2] building libc6 …
  [2/2] building hello …
  repo/pkg/libc6-amd64-2.36-9+deb12u10-1.squashfs
  repo/pkg/hello-amd64-2.10-3-1.squashfs`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBatch(cmd.Context(), opts, args[0], stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func runBatch(ctx context.Context, opts batchOptions, pkgsDir string, stdio cli.Stdio) error {
	bo := batch.Options{
		PkgsDir:   pkgsDir,
		RepoDir:   opts.repo,
		Jobs:      opts.jobs,
		KeepGoing: opts.keepGoing,
		DryRun:    opts.dryRun,
		Progress:  stdio.Err,
	}
	if !opts.dryRun {
		lb, err := newLogBuilder(opts)
		if err != nil {
			return err
		}
		bo.Builder = lb
	}
	res, err := batch.Run(ctx, bo)
	if res != nil {
		if opts.dryRun {
			for _, n := range res.Stale {
				fmt.Fprintln(stdio.Out, n)
			}
		}
		for _, p := range res.Paths {
			fmt.Fprintln(stdio.Out, p)
		}
	}
	return err
}

// logBuilder builds recipes with lib/build, each logging to
// <dir>/<name>.log.
type logBuilder struct {
	repo, cache, dir string
	limits           sandbox.Limits
	uris             []string
	urisErr          error // written to each log: only debian: sources need the apt sources

	once sync.Once
	err  error
}

func newLogBuilder(opts batchOptions) (*logBuilder, error) {
	limits, err := opts.lim.limits()
	if err != nil {
		return nil, err
	}
	lb := &logBuilder{repo: opts.repo, cache: opts.cache, dir: opts.logDir, limits: limits}
	if lb.cache == "" {
		var err error
		if lb.cache, err = defaultCacheDir(); err != nil {
			return nil, err
		}
	}
	return lb, nil
}

// setup resolves the apt sources and the log directory once, on the first
// build, so that a batch with nothing to build needs neither.
func (lb *logBuilder) setup() error {
	lb.once.Do(func() {
		lb.uris, lb.urisErr = debian.DefaultSources.ArchiveURIs()
		if lb.dir == "" {
			lb.dir, lb.err = os.MkdirTemp("", "distri-batch-")
			return
		}
		lb.err = os.MkdirAll(lb.dir, 0o755)
	})
	return lb.err
}

func (lb *logBuilder) Build(ctx context.Context, recipeDir string) ([]string, string, error) {
	if err := lb.setup(); err != nil {
		return nil, "", err
	}
	name := filepath.Base(filepath.Clean(recipeDir))
	if r, err := build.ReadRecipe(recipeDir); err == nil && r.Name != name {
		name = r.Name + "-" + name // one of several versions: pkgs/lua/5.3.6 → lua-5.3.6.log
	}
	logPath := filepath.Join(lb.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if lb.urisErr != nil {
		fmt.Fprintf(f, "apt sources: %v\n", lb.urisErr)
	}
	b, err := build.New(build.Options{
		RepoDir: lb.repo,
		Limits:  lb.limits,
		Fetcher: &source.Fetcher{CacheDir: lb.cache, ArchiveURIs: lb.uris},
		Log: func(format string, args ...any) {
			fmt.Fprintf(f, format+"\n", args...)
		},
	})
	if err != nil {
		return nil, logPath, err
	}
	paths, err := b.BuildAll(ctx, recipeDir)
	if err != nil {
		fmt.Fprintf(f, "error: %v\n", err)
		return nil, logPath, err
	}
	return paths, logPath, nil
}
