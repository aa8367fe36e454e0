package debian

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"

	"distri.dev/distri/lib/recipe"
)

// Package is what apt knows about one version of a binary package.
type Package struct {
	Name     string
	Version  string // Debian version, e.g. 2.10-3 or 1:5.2.1-2
	Filename string // archive path, e.g. pool/main/h/hello/hello_2.10-3_amd64.deb
	SHA256   string
	// Depends lists Pre-Depends then Depends, each a list of
	// alternatives.
	Depends [][]string
}

// Apt looks packages up with apt-cache.
type Apt interface {
	// Show returns the candidate version of the real package name.
	Show(ctx context.Context, name string) (*Package, error)
	// Providers returns the packages that provide the virtual package name.
	Providers(ctx context.Context, name string) ([]string, error)
}

// AptCache is the [Apt] of the machine: it runs apt-cache.
type AptCache struct{}

// Show runs apt-cache show --no-all-versions name.
func (AptCache) Show(ctx context.Context, name string) (*Package, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache show %s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return ParseShow(name, out)
}

// Providers parses the Reverse Provides of apt-cache showpkg name.
func (AptCache) Providers(ctx context.Context, name string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "showpkg", name).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache showpkg %s: %v", name, err)
	}
	_, rp, ok := bytes.Cut(out, []byte("Reverse Provides:"))
	if !ok {
		return nil, nil
	}
	var provs []string
	for _, line := range strings.Split(string(rp), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !slices.Contains(provs, f[0]) {
			provs = append(provs, f[0])
		}
	}
	return provs, nil
}

// ParseShow parses apt-cache show output for package name.
func ParseShow(name string, out []byte) (*Package, error) {
	for _, st := range ParseControl(out) {
		if st["Package"] != name {
			continue
		}
		p := &Package{Name: name, Version: st["Version"], Filename: st["Filename"], SHA256: st["SHA256"]}
		if p.Version == "" || p.Filename == "" || len(p.SHA256) != 64 {
			return nil, fmt.Errorf("apt-cache show %s: record lacks Version, Filename or SHA256", name)
		}
		p.Depends = append(ParseDepends(st["Pre-Depends"]), ParseDepends(st["Depends"])...)
		return p, nil
	}
	return nil, fmt.Errorf("apt-cache show %s: no record for the package (a virtual package?)", name)
}

// ParseDepends parses a Depends field: "a (>= 1) | b, c:any" becomes
// [[a b] [c]], without versions and architecture qualifiers.
func ParseDepends(s string) [][]string {
	var deps [][]string
	for _, clause := range strings.Split(s, ",") {
		var alts []string
		for _, alt := range strings.Split(clause, "|") {
			alt = strings.TrimSpace(alt)
			if i := strings.IndexAny(alt, " ([<"); i >= 0 {
				alt = alt[:i]
			}
			alt, _, _ = strings.Cut(alt, ":")
			if alt != "" {
				alts = append(alts, alt)
			}
		}
		if len(alts) > 0 {
			deps = append(deps, alts)
		}
	}
	return deps
}

// Version turns a Debian version into a distri recipe version:
// <debian version>-<revision>, with the epoch's ":" replaced by "_" (a
// colon has no place in file names), e.g. 1:5.2.1-2 becomes 1_5.2.1-2-1.
func Version(debVersion string, rev int) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(debVersion, ":", "_"), rev)
}

// ScaffoldOptions configures [Scaffold].
type ScaffoldOptions struct {
	// PkgsDir receives <name>/build.textproto for each package.
	PkgsDir string
	// Apt looks packages up; nil means [AptCache].
	Apt Apt
	// Log, if set, receives a line per recipe written.
	Log func(format string, args ...any)
}

// Scaffold writes recipes for the Debian binary package name and the
// closure of what it depends on (Pre-Depends and Depends, the first
// alternative of each, virtual packages resolved to their first
// provider). Packages that already have a recipe in PkgsDir are neither
// rewritten nor followed. It returns the recipe files it wrote.
func Scaffold(ctx context.Context, name string, opts ScaffoldOptions) ([]string, error) {
	apt := opts.Apt
	if apt == nil {
		apt = AptCache{}
	}
	var written []string
	seen := make(map[string]bool)
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		if _, err := recipe.Versions(opts.PkgsDir, n); err == nil {
			continue // a recipe of n, or several versions of it (pkgs/n/<version>/)
		}
		p, err := show(ctx, apt, n)
		if err != nil {
			return written, err
		}
		if p.Name != n {
			// A virtual package: depend on its provider instead.
			queue = append(queue, p.Name)
			continue
		}
		var rdeps []string
		for _, alts := range p.Depends {
			d := alts[0]
			if v, err := show(ctx, apt, d); err == nil {
				d = v.Name
			} else {
				return written, fmt.Errorf("%s: dependency %s: %w", n, d, err)
			}
			if d != n && !slices.Contains(rdeps, d) {
				rdeps = append(rdeps, d)
			}
			queue = append(queue, d)
		}
		slices.Sort(rdeps)
		f := filepath.Join(opts.PkgsDir, n, "build.textproto")
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return written, err
		}
		if err := writeFile(f, recipeText(p, rdeps)); err != nil {
			return written, err
		}
		if opts.Log != nil {
			opts.Log("wrote %s", f)
		}
		written = append(written, f)
	}
	return written, nil
}

// show looks up name, resolving a virtual package to its first provider.
func show(ctx context.Context, apt Apt, name string) (*Package, error) {
	p, err := apt.Show(ctx, name)
	if err == nil {
		return p, nil
	}
	provs, perr := apt.Providers(ctx, name)
	if perr != nil || len(provs) == 0 {
		return nil, err
	}
	return apt.Show(ctx, provs[0])
}

func recipeText(p *Package, rdeps []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Debian binary package %s %s, imported as is (written by distri-build scaffold).\n", p.Name, p.Version)
	fmt.Fprintf(&b, "source: %q\n", "debian:"+p.Filename)
	fmt.Fprintf(&b, "hash: %q\n", p.SHA256)
	fmt.Fprintf(&b, "version: %q\n", Version(p.Version, 1))
	for _, d := range rdeps {
		fmt.Fprintf(&b, "runtime_dep: %q\n", d)
	}
	return b.Bytes()
}

// writeFile writes b to name atomically (renameio: a temporary file,
// synced and renamed into place).
func writeFile(name string, b []byte) error {
	return renameio.WriteFile(name, b, 0o644, renameio.WithTempDir(filepath.Dir(name)), renameio.WithStaticPermissions(0o644))
}
