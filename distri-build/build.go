package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/cli"
)

type buildOptions struct {
	repo  string
	cache string
	check bool
	jobs  int
	show  bool
	lim   limitOptions
}

func (o *buildOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.repo, "repo", ".", "repository to write packages into (<repo>/pkg)")
	fs.BoolVar(&o.check, "check", false, "run the test suite (make check) of compiled packages before installing")
	fs.IntVarP(&o.jobs, "jobs", "j", 0, "parallel jobs inside each build (make -j, ninja -j); 0: the number of CPUs")
	fs.BoolVar(&o.show, "show-output", false, "copy the output of build steps to stderr as well as to the build's log")
	fs.StringVar(&o.cache, "cache", "", "source cache, holding sha256/<hex> (default: /var/cache/distri as root, else distri in the user's cache directory)")
	o.lim.addFlags(fs)
}

func newBuildCmd(stdio cli.Stdio) *cobra.Command {
	var opts buildOptions
	cmd := &cobra.Command{
		Use:   "build [--repo DIR] [--jobs N] [--cache DIR] [--check] PKGDIR...",
		Short: "build recipes into packages",
		Long: `build builds each recipe PKGDIR/build.textproto into <repo>/pkg and prints
the paths of the images it wrote.

Sources are fetched from source and then each mirror in order, verified by
sha256 and kept in a content-addressed cache. debian: and debian-src:
locations are resolved against the machine's apt sources.

Debian binary packages (a recipe with a .deb source and no builder) are
repackaged into the distri layout without compiling. cbuilder (autotools),
cmakebuilder, mesonbuilder and build_step recipes are compiled in the build
sandbox, as root, against their deps and their builder's toolchain (taken
from the same pkgs/ tree, else from <repo>/pkg; built first when missing).
Each build writes its log to <repo>/log/<full name>.log (--show-output
copies the steps' output to stderr too; steps never get the terminal);
a failure names the recipe, the step and the log. A recipe with split_package entries
writes several packages; all their paths are printed. Several versions of
one package live in pkgs/<name>/<version>/ (docs/build.md).

Each build step runs in a control group with limits: --memory (default
half of the RAM), --pids (4096), --cpu-weight (100), --timeout (6h) and
--tmpfs-size (4G for each of /, /tmp and /dev/shm). A step that hits one
fails with an error naming it, e.g. "ran out of memory: limit 12 GiB
(--memory)", and leaves no process or control group behind
(docs/sandbox.md).

Examples:
  % distri-build scaffold debian:hello -o pkgs
  % distri-build build --repo repo pkgs/hello pkgs/libc6
  repo/pkg/hello-amd64-2.10-3-1.squashfs
  repo/pkg/libc6-amd64-2.36-9+deb12u10-1.squashfs`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, opts, args, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func defaultCacheDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/cache/distri", nil
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(uc, "distri"), nil
}

func runBuild(cmd *cobra.Command, opts buildOptions, pkgDirs []string, stdio cli.Stdio) error {
	limits, err := opts.lim.limits()
	if err != nil {
		return err
	}
	cache := opts.cache
	if cache == "" {
		var err error
		if cache, err = defaultCacheDir(); err != nil {
			return err
		}
	}
	uris, err := debian.DefaultSources.ArchiveURIs()
	if err != nil {
		return err
	}
	var stepOutput io.Writer
	if opts.show {
		stepOutput = stdio.Err
	}
	b, err := build.New(build.Options{
		RepoDir: opts.repo,
		Check:   opts.check,
		Jobs:    opts.jobs,
		Limits:  limits,
		Fetcher: &source.Fetcher{CacheDir: cache, ArchiveURIs: uris},
		Log: func(format string, args ...any) {
			fmt.Fprintf(stdio.Err, format+"\n", args...)
		},
		StepOutput: stepOutput,
	})
	if err != nil {
		return err
	}
	for _, d := range pkgDirs {
		paths, err := b.BuildAll(cmd.Context(), d)
		if err != nil {
			return err
		}
		for _, p := range paths {
			fmt.Fprintln(stdio.Out, p)
		}
	}
	return nil
}
