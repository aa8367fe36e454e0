// Package modprobe is distri-init's modprobe: the program the kernel runs
// to load a module it needs (request_module(), e.g. "modprobe -q --
// fs-vfat" when a vfat file system is mounted), and that a user can run
// by hand. It loads the modules that provide each NAME (a module name
// or an alias) with their dependencies and softdeps, from the
// /lib/modules/<running release> tree: depmod's index if the tree has
// one (the initramfs), else the modules' own .modinfo (lib/kmod Scan;
// Debian's kernel package ships no modules.dep), cached under
// /var/cache/distri/kmod (made at image time for the kernel package) or,
// when /var cannot be written, /run/distri/kmod (kmod.SystemCacheDirs).
//
// In the booted system distri-init (lib/sysinit) points the kernel at
// it with [Install]: /run/distri/modprobe is a symlink to distri-init,
// which runs modprobe when its argv[0]'s base name is "modprobe".
package modprobe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"

	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/kmod"
)

const (
	// HelperPath is the modprobe the booted system gives the kernel.
	HelperPath = "/run/distri/modprobe"
	// Sysctl is where the kernel reads which program to run.
	Sysctl = "/proc/sys/kernel/modprobe"
)

// Usage is the synopsis printed for -h.
const Usage = `usage: modprobe [-q] [-v] [-b] [-a] [-R] [-D] [-d ROOT] [-S RELEASE] [--] NAME...

Loads the kernel modules that provide each NAME (module name or alias,
e.g. vfat, fs-vfat, crypto-xts) with their dependencies and softdeps
from ROOT/lib/modules/RELEASE (default /lib/modules/$(uname -r)).
  -q  do not report names no module provides
  -v  say which modules were inserted
  -R  print the modules NAME resolves to instead of loading them
  -D  print what loading NAME inserts ("insmod PATH", "builtin NAME")
  -b, -a, -s, -i, -f are accepted and change nothing.
Exits 0 when every NAME is loaded or built into the kernel.
`

// errNotLoaded is Run's error when some names were not loaded; it has
// reported each already.
var errNotLoaded = errors.New("not loaded")

// Options are modprobe's command line.
type Options struct {
	Names   []string
	Quiet   bool   // -q: no message for names that no module provides
	Verbose bool   // -v: one line per inserted module
	Resolve bool   // -R: print the modules a name resolves to, load nothing
	Depends bool   // -D: print the modules loading a name inserts, load nothing
	Help    bool   // -h
	Root    string // -d: modules are in Root/lib/modules/<release>
	Release string // -S: default the running kernel's
	// CacheDirs are passed to kmod.OpenIndex (none means no cache).
	CacheDirs []string
	// Ignored are the options accepted without effect, for a warning.
	Ignored []string
}

// unsupported are kmod modprobe's options that would do something else
// than load: running as if they were absent would surprise.
var unsupported = map[string]string{
	"r": "removing modules", "remove": "removing modules",
	"n": "a dry run", "dry-run": "a dry run", "show": "a dry run",
	"c": "showing the configuration", "showconfig": "showing the configuration", "show-config": "showing the configuration",
	"show-modversions": "showing modversions", "dump-modversions": "showing modversions",
	"show-exports": "showing exports",
}

// Parse parses modprobe's arguments (without argv[0]): options as kmod's
// modprobe takes them, single letters combinable ("-qb"), "--" ending
// them, then names. Options that only tune kmod's behaviour are ignored
// (listed in Ignored); ones that ask for something other than loading
// (-r, -n, -c) are an error, as are module parameters (NAME x=y).
func Parse(args []string) (Options, error) {
	var o Options
	value := func(i *int, opt, rest string) (string, error) {
		if rest != "" {
			return rest, nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("option %s needs a value", opt)
		}
		*i++
		return args[*i], nil
	}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if long, ok := strings.CutPrefix(a, "--"); ok {
			name, val, hasVal := strings.Cut(long, "=")
			var err error
			switch name {
			case "quiet":
				o.Quiet = true
			case "verbose":
				o.Verbose = true
			case "resolve-alias":
				o.Resolve = true
			case "show-depends":
				o.Depends = true
			case "help":
				o.Help = true
			case "dirname":
				if !hasVal {
					val, err = value(&i, a, "")
				}
				o.Root = val
			case "set-version":
				if !hasVal {
					val, err = value(&i, a, "")
				}
				o.Release = val
			default:
				if what, ok := unsupported[name]; ok {
					return o, fmt.Errorf("%s (%s) is not supported", a, what)
				}
				o.Ignored = append(o.Ignored, a)
			}
			if err != nil {
				return o, err
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j : j+1]
			var err error
			switch c {
			case "q":
				o.Quiet = true
			case "v":
				o.Verbose = true
			case "R":
				o.Resolve = true
			case "D":
				o.Depends = true
			case "h":
				o.Help = true
			case "d":
				o.Root, err = value(&i, "-d", a[j+1:])
				j = len(a)
			case "S":
				o.Release, err = value(&i, "-S", a[j+1:])
				j = len(a)
			case "C":
				_, err = value(&i, "-C", a[j+1:]) // config directory: there is none
				o.Ignored = append(o.Ignored, "-C")
				j = len(a)
			default:
				if what, ok := unsupported[c]; ok {
					return o, fmt.Errorf("-%s (%s) is not supported", c, what)
				}
				// -b (blacklist), -a (all: every argument is a name anyway),
				// -s (syslog), -i, -f, … change nothing here.
				o.Ignored = append(o.Ignored, "-"+c)
			}
			if err != nil {
				return o, err
			}
		}
	}
	for _, n := range args[i:] {
		if strings.Contains(n, "=") {
			return o, fmt.Errorf("module parameters (%s) are not supported", n)
		}
		o.Names = append(o.Names, n)
	}
	if len(o.Names) == 0 && !o.Help {
		return o, errors.New("no module name given")
	}
	return o, nil
}

// dir returns the release directory o loads from:
// Root/lib/modules/<Release or the running kernel's release>.
func (o Options) dir() (string, error) {
	rel := o.Release
	if rel == "" {
		var err error
		if rel, err = kmod.RunningRelease(); err != nil {
			return "", err
		}
	}
	return filepath.Join("/", o.Root, initconfig.ModulesDir, rel), nil
}

// Run loads (with -R: resolves) o.Names. Names no module provides are
// reported on stderr unless o.Quiet; other failures always are. It
// returns an error if any name was not loaded; builtin ones count as
// loaded.
func Run(o Options, stdout, stderr io.Writer) error {
	if !o.Quiet && len(o.Ignored) > 0 {
		fmt.Fprintf(stderr, "modprobe: ignoring %s\n", strings.Join(o.Ignored, " "))
	}
	dir, err := o.dir()
	if err != nil {
		return err
	}
	x, err := kmod.OpenIndex(dir, o.CacheDirs...)
	if err != nil {
		return fmt.Errorf("kernel modules in %s: %w", dir, err)
	}
	if o.Resolve || o.Depends {
		return show(x, o, stdout, stderr)
	}
	var loaded func(string)
	if o.Verbose {
		loaded = func(name string) { fmt.Fprintf(stderr, "modprobe: inserted %s (%s)\n", name, x.Path[name]) }
	}
	l := kmod.NewLoader(x, loaded)
	failed := 0
	for _, n := range o.Names {
		_, err := l.Load(n)
		if err == nil {
			continue
		}
		failed++
		if errors.Is(err, kmod.ErrNotFound) {
			if !o.Quiet {
				fmt.Fprintf(stderr, "modprobe: %s: no module or alias of that name in %s\n", n, dir)
			}
			continue
		}
		fmt.Fprintf(stderr, "modprobe: %s: %v\n", n, err)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d names: %w", failed, len(o.Names), errNotLoaded)
	}
	return nil
}

// show prints what o.Names resolve to (-R) or what loading them inserts
// (-D), as kmod's modprobe does.
func show(x *kmod.Index, o Options, stdout, stderr io.Writer) error {
	failed := 0
	for _, n := range o.Names {
		var mods []string
		var builtin bool
		var err error
		if o.Depends {
			mods, builtin, err = x.Needs(n)
		} else if mods, builtin = x.Resolve(n); !builtin && len(mods) == 0 {
			err = fmt.Errorf("%s: %w", n, kmod.ErrNotFound)
		}
		switch {
		case builtin:
			b := []string{kmod.Normalize(n)}
			if a, ok := x.BuiltinAliases[n]; ok {
				b = a
			}
			fmt.Fprintf(stdout, "builtin %s\n", strings.Join(b, " "))
		case err != nil:
			failed++
			if !o.Quiet || !errors.Is(err, kmod.ErrNotFound) {
				fmt.Fprintf(stderr, "modprobe: %v (in %s)\n", err, x.Dir)
			}
		case o.Depends:
			for _, m := range mods {
				fmt.Fprintf(stdout, "insmod %s\n", filepath.Join(x.Dir, x.Path[m]))
			}
		default:
			fmt.Fprintf(stdout, "%s\n", strings.Join(mods, "\n"))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d names: %w", failed, len(o.Names), errNotLoaded)
	}
	return nil
}

// Command parses args as [Parse] does and caches the index in
// kmod.SystemCacheDirs when the modules are the running system's (no
// -d): distri-init's modprobe command line.
func Command(args []string) (Options, error) {
	o, err := Parse(args)
	if err == nil && o.Root == "" {
		o.CacheDirs = kmod.SystemCacheDirs
	}
	return o, err
}

// Main is modprobe started under that name: it parses args (without
// argv[0]), loads, and returns the exit status, 0 when every name was
// loaded or is built in.
func Main(args []string, stdout, stderr io.Writer) int {
	o, err := Command(args)
	if err != nil {
		fmt.Fprintf(stderr, "modprobe: %v\n%s", err, Usage)
		return 2
	}
	if o.Help {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if err := Run(o, stdout, stderr); err != nil {
		if !errors.Is(err, errNotLoaded) { // those are reported name by name
			fmt.Fprintf(stderr, "modprobe: %v\n", err)
		}
		return 1
	}
	return 0
}

// Install makes link a symlink to the executable target (replacing what
// is there, atomically) and writes link to sysctl, so that the kernel
// runs target as modprobe: the kernel passes the path it runs as
// argv[0], whose base name is then "modprobe".
func Install(link, target, sysctl string) error {
	if filepath.Base(link) != "modprobe" {
		return fmt.Errorf("%s: the helper's name must be modprobe", link)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if err := renameio.Symlink(target, link); err != nil {
		return err
	}
	if err := os.WriteFile(sysctl, []byte(link+"\n"), 0o644); err != nil {
		return fmt.Errorf("register %s as the kernel's modprobe: %w", link, err)
	}
	return nil
}
