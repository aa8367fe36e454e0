// Command distri-install installs distri packages with their dependency
// closure from signed repositories into the package store of a root
// (<root>/roimg), and updates, removes, garbage-collects and lists them.
// docs/repository.md describes repositories, the store and /etc handling.
package main

import (
	"context"
	"io"
	"log"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/repo"
)

// globalOpts are the flags every verb takes.
type globalOpts struct {
	root      string
	repos     []string
	pubkeys   []string
	jobs      int
	transport string
	verbose   bool
	// allowExpired: see freshness.go in lib/repo.
	allowExpired bool
	// dryRun: --dry-run of install, update, remove and gc.
	dryRun bool
}

// addDryRun adds --dry-run to the flags of a command that changes the store.
func (o *globalOpts) addDryRun(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.dryRun, "dry-run", "n", false, "print what would be added or deleted and change nothing")
}

func (o *globalOpts) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.root, "root", "/", "root file system to install into; the store is ROOT/roimg")
	fs.StringArrayVar(&o.repos, "repo", nil, "repository URL or folder (repeatable; default: ROOT/etc/distri/repos.d/*.repo)")
	fs.StringArrayVar(&o.pubkeys, "pubkey", nil, "public key trusted to sign indexes (repeatable; default: ROOT/etc/distri/keys/*.pub)")
	fs.IntVarP(&o.jobs, "jobs", "j", 8, "files to download at once")
	fs.StringVar(&o.transport, "transport", "auto", "transport encoding: compressed (zstd or gzip), identity, or auto (identity from this machine, compressed from others)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "say more on stderr")
	fs.BoolVar(&o.allowExpired, "allow-expired", false, "use repository indexes past their expiry (offline use; a mirror may be withholding updates)")
}

// installer makes the installer the flags describe.
func (o *globalOpts) installer(stdio cli.Stdio) (*install.Installer, error) {
	return o.newInstaller(stdio, o.dryRun)
}

// reader makes an installer for read-only commands: it creates and
// locks nothing (install.Options.DryRun).
func (o *globalOpts) reader(stdio cli.Stdio) (*install.Installer, error) {
	return o.newInstaller(stdio, true)
}

func (o *globalOpts) newInstaller(stdio cli.Stdio, dryRun bool) (*install.Installer, error) {
	var encodings []string
	switch o.transport {
	case "auto":
	case "compressed":
		encodings = repo.Compressed
	case "identity":
		encodings = []string{}
	default:
		return nil, cli.Usagef("--transport %q: want auto, compressed or identity", o.transport)
	}
	return install.New(install.Options{
		Encodings:   encodings,
		Root:        o.root,
		Repos:       o.repos,
		PubKeyFiles: o.pubkeys,
		Jobs:        o.jobs,
		Log:         log.New(stdio.Err, "distri-install: ", 0),
		Verbose:     o.verbose,
		Progress:    terminal(stdio.Err),
		// Freshness and keys (docs/repository.md).
		AllowExpired: o.allowExpired,
		DryRun:       dryRun,
	})
}

// terminal returns w if it is a terminal, else nil.
func terminal(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return w
}

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	var g globalOpts
	root := &cobra.Command{
		Use:   "distri-install [--root DIR] [--repo URL|PATH]... [--pubkey FILE] PKG...",
		Short: "install distri packages into a package store",
		Long: `distri-install installs packages with their dependency closure from
signed repositories into ROOT/roimg, where distri-fuse serves them under
/ro, and prints the full names of the packages it added.

A PKG is a name (bash: the newest revision for this machine, across all
repositories, by revision number), a name with architecture (bash-amd64),
or a full name (bash-amd64-5.2.15-3, pinned). Every file is checked
against the signed index; a package appears in the store only whole.
An index older than one accepted before, past its expiry (unless
--allow-expired) or signed for another repository than its repos.d
entry's name= is refused; signed-by= in repos.d binds keys to
repositories (docs/repository.md, "Freshness and keys").
Files in a package's etc/ are copied to ROOT/etc; a file changed locally
is kept and the package's version written beside it as FILE.distri-new.
A PKG of - reads names from standard input, one a line; --dry-run prints
what would be added and changes nothing.

Examples:
  % distri-install --root /mnt --repo http://127.0.0.1:7080 --pubkey distri.pub base i3status
  i3status-amd64-2.13-10
  glibc-amd64-2.36-9
  % distri-install update
  % distri-install remove i3status
  % distri-install gc
  % distri-install list --available i3
  % distri-install list --available lua | distri-install -`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: g.completeNames(stdio, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, err := cli.ReadArgs(args, stdio.In)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return cli.Usagef("no packages named (see --help)")
			}
			return runInstall(cmd.Context(), &g, args, stdio)
		},
	}
	g.addFlags(root.PersistentFlags())
	g.addDryRun(root.Flags())
	root.AddGroup(
		&cobra.Group{ID: "change", Title: "Changing the store (--dry-run only prints):"},
		&cobra.Group{ID: "read", Title: "Read-only (create and lock nothing):"},
	)
	for group, cmds := range map[string][]*cobra.Command{
		"change": {newUpdateCmd(&g, stdio), newRemoveCmd(&g, stdio), newGCCmd(&g, stdio), newResetCmd(&g, stdio)},
		"read":   {newListCmd(&g, stdio), newSearchCmd(&g, stdio), newInfoCmd(&g, stdio), newFilesCmd(&g, stdio), newOwnerCmd(&g, stdio), newEnvCmd(&g, stdio)},
	} {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	return root
}

func runInstall(ctx context.Context, g *globalOpts, names []string, stdio cli.Stdio) error {
	in, err := g.installer(stdio)
	if err != nil {
		return err
	}
	added, err := in.Install(ctx, names)
	if err != nil {
		return err
	}
	printLines(stdio.Out, added)
	return nil
}

func printLines(w io.Writer, lines []string) { cli.PrintLines(w, lines) }
