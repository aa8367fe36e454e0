// Package pkgname parses and formats full package names of the form
// <name>-<arch>-<upstream>-<rev>, e.g. bash-amd64-5.2.15-3 (DESIGN.md §3).
//
// The architecture is one of amd64, i686 and arm64. The last "-<arch>-" in
// a string splits the package name from the version, so names may contain
// architecture words: glibc-i686-host-amd64-2.27-3 is package
// glibc-i686-host for amd64.
//
// The version is "<upstream>-<rev>". The upstream part is a free-form label
// that may itself contain "-" (Go pseudo versions such as
// v0.0.0-20200424135655-e6d33f77da8c) and is never compared. The revision is
// the integer after the last "-"; it only ever grows, even across upstream
// versions, and it is the only thing compared.
//
// # Decisions
//
//   - A version without an integer after its last "-" has revision 0 and
//     the whole version is the upstream part: less-amd64-530 is upstream
//     "530", revision 0, as in the original distri. Such a name formats back
//     with an explicit revision (less-amd64-530-0), which parses to the same
//     [Name]; the recipes this project builds always carry a revision.
//   - Names use a safe alphabet: ASCII letters and digits and + . _ ~ -,
//     at most 255 bytes, not starting with a dot ([CheckName]). Names come
//     from signed indexes, metas and the command line and end up as file
//     names in the store and as lines of its installed file; a newline or
//     a slash in one corrupted both (issue 12). [Parse] rejects any other
//     name, so every consumer of full names inherits the rule.
//   - [Compare] orders by revision and breaks ties on the remaining fields
//     as strings, only to make the order total (the original's gc sorted
//     with a comparator that was not a strict weak ordering).
package pkgname

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotFull is returned for strings that are not full package names, e.g.
// the unqualified names bash and bash-amd64.
var ErrNotFull = errors.New("not a full package name <name>-<arch>-<upstream>-<rev>")

// archs lists the architectures in the order the original distri knew them.
var archs = [...]string{"amd64", "i686", "arm64"}

// Archs returns the architectures a package can be built for: amd64, i686
// and arm64.
func Archs() []string {
	return append([]string(nil), archs[:]...)
}

// IsArch reports whether s is one of [Archs].
func IsArch(s string) bool {
	for _, a := range archs {
		if s == a {
			return true
		}
	}
	return false
}

// ArchForGOARCH maps a Go architecture (runtime.GOARCH) to a package
// architecture: amd64 → amd64, 386 → i686, arm64 → arm64.
func ArchForGOARCH(goarch string) (arch string, ok bool) {
	switch goarch {
	case "amd64", "arm64":
		return goarch, true
	case "386":
		return "i686", true
	}
	return "", false
}

// Name is a parsed full package name.
type Name struct {
	Pkg      string // e.g. bash, glibc-i686-host
	Arch     string // e.g. amd64
	Upstream string // e.g. 5.2.15, native, v0.0.0-20200424135655-e6d33f77da8c
	Rev      int64  // e.g. 3; 0 when the version has no revision
}

// ErrBadName is returned for names outside the safe alphabet (see
// [CheckName]).
var ErrBadName = errors.New("not a valid package name (letters, digits and + . _ ~ -, not starting with a dot, at most 255 bytes)")

// MaxLen is the longest name [CheckName] accepts: a file name limit.
const MaxLen = 255

// CheckName returns an error wrapping [ErrBadName] unless s, a full or
// unqualified package name, is 1 to [MaxLen] bytes of
// [A-Za-z0-9+._~-] and does not start with a dot.
func CheckName(s string) error {
	if s == "" {
		return fmt.Errorf("package name %q: empty: %w", s, ErrBadName)
	}
	if len(s) > MaxLen {
		return fmt.Errorf("package name %.40q…: %d bytes: %w", s, len(s), ErrBadName)
	}
	if s[0] == '.' {
		return fmt.Errorf("package name %q: starts with a dot: %w", s, ErrBadName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '+', c == '.', c == '_', c == '~', c == '-':
		default:
			return fmt.Errorf("package name %q: byte %q at %d: %w", s, c, i, ErrBadName)
		}
	}
	return nil
}

// Parse parses a full package name such as bash-amd64-5.2.15-3. It returns
// an error wrapping [ErrNotFull] when s has no "-<arch>-" followed by a
// version, and wrapping both [ErrNotFull] and [ErrBadName] when s is
// outside the safe alphabet of [CheckName] (e.g. contains "/": use
// [FromPath] for paths).
func Parse(s string) (Name, error) {
	if err := CheckName(s); err != nil {
		return Name{}, fmt.Errorf("parse: %w: %w", err, ErrNotFull)
	}
	pkg, arch, version, ok := splitFull(s)
	if !ok {
		return Name{}, fmt.Errorf("parse package name %q: %w", s, ErrNotFull)
	}
	upstream, rev := SplitVersion(version)
	return Name{Pkg: pkg, Arch: arch, Upstream: upstream, Rev: rev}, nil
}

// splitFull splits s at its last "-<arch>-". ok is false when there is no
// such separator or the name or the version around it is empty.
func splitFull(s string) (pkg, arch, version string, ok bool) {
	idx := -1
	for _, a := range archs {
		if i := strings.LastIndex(s, "-"+a+"-"); i > idx {
			idx, arch = i, a
		}
	}
	if idx <= 0 {
		return "", "", "", false
	}
	pkg = s[:idx]
	version = s[idx+len(arch)+2:]
	if version == "" {
		return "", "", "", false
	}
	return pkg, arch, version, true
}

// SplitVersion splits a version such as 5.2.15-3 into its upstream part and
// its revision. Without an integer after the last "-", the revision is 0
// and the whole version is the upstream part: "530" is ("530", 0), while
// "native-49" is ("native", 49).
func SplitVersion(version string) (upstream string, rev int64) {
	i := strings.LastIndexByte(version, '-')
	if i <= 0 || !isDigits(version[i+1:]) {
		return version, 0
	}
	n, err := strconv.ParseInt(version[i+1:], 10, 64)
	if err != nil { // out of range
		return version, 0
	}
	return version[:i], n
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// suffixes are stripped from path components by [FromPath]: package
// images, meta files, build logs and precompressed siblings.
var suffixes = [...]string{".squashfs", ".meta.textproto", ".log", ".zst", ".gz"}

// FromPath finds the full package name in a path or file name, e.g.
// /roimg/bash-amd64-5.2.15-3.squashfs, bash-amd64-5.2.15-3.meta.textproto
// or /ro/bash-amd64-5.2.15-3/out/bin/bash. The last path component that is
// a full name (after stripping .squashfs, .meta.textproto, .log, .zst and
// .gz) wins.
func FromPath(p string) (Name, error) {
	parts := strings.Split(p, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		c := parts[i]
		for trimmed := true; trimmed; {
			trimmed = false
			for _, suf := range suffixes {
				if s, ok := strings.CutSuffix(c, suf); ok {
					c, trimmed = s, true
				}
			}
		}
		if n, err := Parse(c); err == nil {
			return n, nil
		}
	}
	return Name{}, fmt.Errorf("package name from path %q: %w", p, ErrNotFull)
}

// IsFull reports whether s is a full package name.
func IsFull(s string) bool {
	_, err := Parse(s)
	return err == nil
}

// SplitArch splits an unqualified name into package and architecture:
// bash-amd64 is ("bash", "amd64") and bash is ("bash", ""). It does not
// look for a version; check [IsFull] first.
//
// A trailing architecture is ambiguous: gcc-i686 is both the package gcc
// for i686 and the package gcc-i686 (for the default architecture).
// Callers that know which packages exist should try s as a package name
// first, as the original distri's glob did.
func SplitArch(s string) (pkg, arch string) {
	i := strings.LastIndexByte(s, '-')
	if i > 0 && IsArch(s[i+1:]) {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// String formats n as <pkg>-<arch>-<upstream>-<rev>.
func (n Name) String() string {
	return n.Pkg + "-" + n.Arch + "-" + n.Version()
}

// Version returns <upstream>-<rev>, e.g. 5.2.15-3.
func (n Name) Version() string {
	return n.Upstream + "-" + strconv.FormatInt(n.Rev, 10)
}

// Unqualified returns <pkg>-<arch>, e.g. bash-amd64: the name of the
// newest revision's meta file in a repository.
func (n Name) Unqualified() string {
	return n.Pkg + "-" + n.Arch
}

// Compare orders a and b by revision, numerically. Names with equal
// revisions are ordered by package, architecture and upstream version as
// strings, which only makes the order total: the upstream version carries
// no meaning for which package is newer.
func Compare(a, b Name) int {
	if c := cmp.Compare(a.Rev, b.Rev); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Pkg, b.Pkg); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Arch, b.Arch); c != 0 {
		return c
	}
	return cmp.Compare(a.Upstream, b.Upstream)
}

// Less reports whether n sorts before o in [Compare] order, i.e. whether n
// is an older revision.
func (n Name) Less(o Name) bool {
	return Compare(n, o) < 0
}
