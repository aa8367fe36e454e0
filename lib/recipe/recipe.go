// Package recipe validates recipes (pkgs/<name>/build.textproto) before
// anything is fetched or built; distri-build check is its front end.
//
// A recipe passes when it parses strictly (an unknown field, usually a
// typo, is an error) and:
//
//   - version is <upstream>-<revision> with an integer revision, e.g.
//     2.10-3 or native-49;
//   - source is present and uses a known scheme: https://, http://,
//     debian:, debian-src:, distri+gomod://, distri+source://, distriroot://
//     or empty://;
//   - hash is 64 lowercase hex digits (sha256) for sources that are
//     downloaded (https://, http://, debian:, debian-src:), and well formed
//     wherever it is given;
//   - every mirror is downloadable and mirrors a downloaded source;
//   - the files named by cherry_pick and extra_file exist next to the
//     recipe (see [Options.SkipFiles]);
//   - dep and runtime_dep entries are package names;
//   - split packages have a name and claims with valid globs;
//   - runtime_union entries have dir and pkg;
//   - in_tree_build comes with writable_sourcedir, and cbuilder's
//     autoreconf with in_tree_build;
//   - at most one builder is set (the text format parser enforces this).
//
// Errors name the file and, where it is known, the line:
// pkgs/hello/build.textproto:3: version "2.10": ….
package recipe

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"distri.dev/distri/lib/pb"
)

// FileName is the name of a recipe file.
const FileName = "build.textproto"

// Options configures [Check].
type Options struct {
	// SkipFiles skips checking that the files named by cherry_pick and
	// extra_file exist. For copies of recipe trees without their patches,
	// e.g. the original distri's recipes in a reference set. Default false:
	// missing files are errors.
	SkipFiles bool
}

// Error is a problem found in a recipe by a semantic check. Parse errors
// are *pb.TextError values instead, which also carry a column.
type Error struct {
	File string // e.g. pkgs/hello/build.textproto
	Line int    // 1-based; 0 when the problem has no line (a missing field)
	Msg  string // e.g. hash "abc": want 64 lowercase hex digits (sha256)
}

// Error formats e as FILE:LINE: MSG, or FILE: MSG without a line.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Check checks the recipes at paths and returns every problem found, in
// file order; nil means all recipes pass. A path is a recipe file or a
// directory, which is searched recursively for files named build.textproto
// (so both pkgs/ with pkgs/<name>/build.textproto and a single package
// directory work). Directories named testdata or starting with "." or "_"
// below a given directory are skipped, as the go tool does. A directory
// without any recipe is an error.
//
// Problems in recipes are *Error or *pb.TextError values; others (a path
// that cannot be read) are wrapped I/O errors.
func Check(paths []string, opts Options) []error {
	var errs []error
	seen := make(map[string]bool)
	for _, p := range paths {
		files, err := find(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			if seen[f] {
				continue
			}
			seen[f] = true
			errs = append(errs, checkFile(f, opts)...)
		}
	}
	return errs
}

// find returns the recipe files at p, in lexical order.
func find(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != p && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == FileName && d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", p, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("check %s: no %s found", p, FileName)
	}
	return files, nil
}

// checkFile checks one recipe file.
func checkFile(path string, opts Options) []error {
	text, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("check: %w", err)}
	}
	var b pb.Build
	if err := pb.UnmarshalTextStrict(path, text, &b); err != nil {
		return []error{err}
	}
	c := &checker{
		file: path,
		dir:  filepath.Dir(path),
		loc:  locate(text),
		opts: opts,
	}
	c.check(&b)
	slices.SortStableFunc(c.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = e
	}
	return errs
}

// checker collects the problems of one recipe.
type checker struct {
	file string  // e.g. pkgs/hello/build.textproto
	dir  string  // e.g. pkgs/hello
	loc  locator // lines of fields
	opts Options
	errs []*Error
}

// errorf records a problem at the line of the field occurrence key (see
// [locator]); an empty key means no line.
func (c *checker) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, &Error{
		File: c.file,
		Line: c.loc.line(key),
		Msg:  fmt.Sprintf(format, args...),
	})
}

var (
	hashRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// pkgRe matches what dep and runtime_dep name: pkg, pkg-arch or a
	// full name, e.g. glibc, gcc-libs-i686, go-github.com-mattn-go--isatty.
	pkgRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

// Source schemes, by whether the file is downloaded and must be verified.
var (
	downloaded = []string{"https://", "http://", "debian:", "debian-src:"}
	generated  = []string{"distri+gomod://", "distri+source://", "distriroot://", "empty://"}
)

func scheme(source string, schemes []string) string {
	for _, s := range schemes {
		if strings.HasPrefix(source, s) {
			return s
		}
	}
	return ""
}

func (c *checker) check(b *pb.Build) {
	c.checkVersion(b)
	c.checkSource(b)
	c.checkFiles("cherry_pick", b.GetCherryPick())
	c.checkFiles("extra_file", b.GetExtraFile())
	c.checkPkgs("dep", b.GetDep())
	c.checkPkgs("runtime_dep", b.GetRuntimeDep())
	for i, s := range b.GetBuildStep() {
		if len(s.GetArgv()) == 0 {
			c.errorf(fmt.Sprintf("build_step[%d]", i), "build_step: empty argv")
		}
	}
	c.checkSplitPackages(b.GetSplitPackage())
	for i, u := range b.GetRuntimeUnion() {
		k := fmt.Sprintf("runtime_union[%d]", i)
		if u.GetDir() == "" {
			c.errorf(k, "runtime_union: dir missing")
		}
		if u.GetPkg() == "" {
			c.errorf(k, "runtime_union: pkg missing")
		}
	}
	if b.GetInTreeBuild() && !b.GetWritableSourcedir() {
		c.errorf("in_tree_build[0]", "in_tree_build needs writable_sourcedir: true")
	}
	if b.GetCbuilder().GetAutoreconf() && !b.GetInTreeBuild() {
		c.errorf("cbuilder[0].autoreconf[0]", "cbuilder autoreconf needs in_tree_build: true (and writable_sourcedir: true)")
	}
}

func (c *checker) checkVersion(b *pb.Build) {
	if b.Version == nil {
		c.errorf("", "version missing: want <upstream>-<revision>, e.g. 2.10-1")
		return
	}
	v := b.GetVersion()
	i := strings.LastIndexByte(v, '-')
	if i <= 0 || !isDigits(v[i+1:]) {
		c.errorf("version[0]", "version %q: want <upstream>-<revision> with an integer revision, e.g. 2.10-1", v)
		return
	}
	if strings.ContainsAny(v, "/ \t\n") {
		c.errorf("version[0]", "version %q: must not contain / or white space", v)
	}
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 { // larger does not fit an int64
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (c *checker) checkSource(b *pb.Build) {
	src := b.GetSource()
	dl := scheme(src, downloaded)
	switch {
	case b.Source == nil:
		c.errorf("", "source missing")
	case dl != "":
		if strings.TrimPrefix(src, dl) == "" {
			c.errorf("source[0]", "source %q: empty location", src)
		}
		switch {
		case b.Hash == nil || b.GetHash() == "":
			c.errorf("source[0]", "hash missing: source %s is downloaded and needs its sha256", src)
		case !hashRe.MatchString(b.GetHash()):
			c.errorf("hash[0]", "hash %q: want 64 lowercase hex digits (sha256)", b.GetHash())
		}
	default:
		gen := scheme(src, generated)
		if gen == "" {
			c.errorf("source[0]", "source %q: unknown scheme, want one of %s", src, strings.Join(append(slices.Clone(downloaded), generated...), " "))
		} else if gen == "distri+source://" && strings.TrimPrefix(src, gen) == "" {
			c.errorf("source[0]", "source %q: want distri+source://<package>", src)
		}
		if h := b.GetHash(); h != "" && !hashRe.MatchString(h) {
			c.errorf("hash[0]", "hash %q: want 64 lowercase hex digits (sha256)", h)
		}
	}
	for i, m := range b.GetMirror() {
		k := fmt.Sprintf("mirror[%d]", i)
		s := scheme(m, downloaded)
		switch {
		case s == "" || strings.TrimPrefix(m, s) == "":
			c.errorf(k, "mirror %q: want an https://, http://, debian: or debian-src: location", m)
		case dl == "":
			c.errorf(k, "mirror %q: source %q is not downloaded, so it has no mirrors", m, src)
		}
	}
}

// checkFiles checks the files of a cherry_pick or extra_file field.
func (c *checker) checkFiles(field string, names []string) {
	for i, name := range names {
		k := fmt.Sprintf("%s[%d]", field, i)
		if !filepath.IsLocal(name) {
			c.errorf(k, "%s %q: want a file name relative to the recipe's directory", field, name)
			continue
		}
		if c.opts.SkipFiles {
			continue
		}
		fi, err := os.Stat(filepath.Join(c.dir, name))
		switch {
		case err != nil:
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is in the message already
			}
			c.errorf(k, "%s %q: %s: %v", field, name, filepath.Join(c.dir, name), err)
		case !fi.Mode().IsRegular():
			c.errorf(k, "%s %q: %s is not a regular file", field, name, filepath.Join(c.dir, name))
		}
	}
}

// checkPkgs checks the package names of a dep or runtime_dep field.
func (c *checker) checkPkgs(key string, pkgs []string) {
	for i, p := range pkgs {
		if !pkgRe.MatchString(p) {
			field := key[strings.LastIndexByte(key, '.')+1:]
			c.errorf(fmt.Sprintf("%s[%d]", key, i), "%s %q: not a package name", field, p)
		}
	}
}

func (c *checker) checkSplitPackages(sps []*pb.SplitPackage) {
	for i, sp := range sps {
		k := fmt.Sprintf("split_package[%d]", i)
		switch {
		case sp.GetName() == "":
			c.errorf(k+".name[0]", "split_package: name missing")
		case !pkgRe.MatchString(sp.GetName()):
			c.errorf(k+".name[0]", "split_package: name %q: not a package name", sp.GetName())
		}
		if len(sp.GetClaim()) == 0 {
			c.errorf(k, "split_package %q: claim missing", sp.GetName())
		}
		for j, cl := range sp.GetClaim() {
			ck := fmt.Sprintf("%s.claim[%d].glob[0]", k, j)
			if cl.GetGlob() == "" {
				c.errorf(ck, "split_package %q: claim: glob missing", sp.GetName())
			} else if _, err := filepath.Match(cl.GetGlob(), ""); err != nil {
				c.errorf(ck, "split_package %q: claim: glob %q: %v", sp.GetName(), cl.GetGlob(), err)
			}
		}
		c.checkPkgs(k+".runtime_dep", sp.GetRuntimeDep())
	}
}
