package repo

// Freshness and identity of an index: what its signed trusted comment
// says about it, and the checks a client makes of that (docs/repository.md,
// "Freshness and keys").
//
// The trusted comment of index.minisig is covered by the signature's
// global signature, so what it says is as authentic as the index. It is a
// tab-separated list of key:value fields, minisign's own form
// ("timestamp:1765000000\tfile:index"); distri-mirror index adds
//
//	expires:<unix>   the index must not be used after this time
//	repo:<name>      the repository the index was made for
//
// Unknown fields are ignored, so that newer servers can add some.
//
// # Decisions
//
//   - Time stamps are minisign's (seconds). An older index replayed after a
//     newer one is refused ([RollbackError]) by comparing with the newest
//     stamp the client remembers ([Trust.Seen]); two indexes signed in the
//     same second are not told apart, which only matters to a repository
//     re-signed within one second.
//   - An index without a time stamp is refused: it cannot be ordered, and
//     every index distri-mirror or minisign ever signed has one.
//   - An index without an expiry is accepted: its repository chose not to
//     set one (distri-mirror index --valid-for), and indexes signed before
//     there were expiries must keep working. Such a repository is not
//     protected against a mirror that keeps serving the newest index it
//     has; it is still protected against rollbacks.
//   - The identity is a name, not a URL: mirrors serve the same signed
//     index under different URLs, so a URL cannot be signed into it. A
//     client that gives a name ([Trust.Name]) requires the index to name
//     the same repository; an index that names none is then refused.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stamp is what an index's trusted comment says about it.
type Stamp struct {
	// Signed is when the index was signed (timestamp:); zero if the
	// comment has none.
	Signed time.Time
	// Expires is when the index stops being valid (expires:); zero means
	// never.
	Expires time.Time
	// Repo is the name of the repository the index was made for (repo:);
	// empty if it names none.
	Repo string
	// File is the name of the file that was signed (file:), e.g. index.
	File string
}

// String formats s as a trusted comment, fields in a fixed order; zero
// fields are left out.
func (s Stamp) String() string {
	var f []string
	if !s.Signed.IsZero() {
		f = append(f, "timestamp:"+strconv.FormatInt(s.Signed.Unix(), 10))
	}
	if s.File != "" {
		f = append(f, "file:"+s.File)
	}
	if !s.Expires.IsZero() {
		f = append(f, "expires:"+strconv.FormatInt(s.Expires.Unix(), 10))
	}
	if s.Repo != "" {
		f = append(f, "repo:"+s.Repo)
	}
	return strings.Join(f, "\t")
}

// ParseStamp parses a trusted comment. A field given twice, a time that
// is not a number of seconds, or a repository name that [CheckName]
// refuses is an error; fields without a colon (minisign's "hashed") and
// unknown fields are ignored.
func ParseStamp(comment string) (Stamp, error) {
	var s Stamp
	seen := map[string]bool{}
	for field := range strings.SplitSeq(comment, "\t") {
		k, v, ok := strings.Cut(field, ":")
		if !ok {
			continue
		}
		switch k {
		case "timestamp", "expires", "repo", "file":
		default:
			continue
		}
		if seen[k] {
			return Stamp{}, fmt.Errorf("trusted comment %q: %s: given twice", comment, k)
		}
		seen[k] = true
		switch k {
		case "timestamp", "expires":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n >= maxStamp {
				return Stamp{}, fmt.Errorf("trusted comment %q: %s: %q is not a time in seconds since 1970 before the year 10000", comment, k, v)
			}
			if k == "timestamp" {
				s.Signed = time.Unix(n, 0).UTC()
			} else {
				s.Expires = time.Unix(n, 0).UTC()
			}
		case "repo":
			if err := CheckName(v); err != nil {
				return Stamp{}, fmt.Errorf("trusted comment %q: %w", comment, err)
			}
			s.Repo = v
		case "file":
			s.File = v
		}
	}
	return s, nil
}

// maxStamp is 10000-01-01 in seconds since 1970: later times are refused,
// as they do not survive time.Time's arithmetic.
const maxStamp = 253402300800

// CheckName returns an error unless name is a valid repository name:
// 1 to 64 of [A-Za-z0-9._-], not starting with a dot. Names become file
// names of the client's state.
func CheckName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' ||
		strings.ContainsFunc(name, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
		}) {
		return fmt.Errorf("repository name %q: want 1 to 64 of A-Z a-z 0-9 . _ - not starting with a dot", name)
	}
	return nil
}

// Trust says what the trusted comment of a repository's index must say,
// beyond being signed by one of [Options.Keys]. The zero Trust requires
// a time stamp and refuses an expired index.
type Trust struct {
	// Name is the repository's name (in repos.d, name=); the index must
	// be signed for it (repo:). Empty: not checked.
	Name string
	// AllowExpired accepts an index past its expiry (for offline use),
	// with a notice to Warnf.
	AllowExpired bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Seen, if not nil, is called with the stamp of every index that
	// passed the other checks, before the index is used; an error
	// refuses the index. lib/install remembers the newest stamp of each
	// repository there and refuses older ones ([CheckRollback]).
	Seen func(Stamp) error
	// Warnf receives notices; nil discards them.
	Warnf func(format string, args ...any)
}

// ErrExpired is wrapped by the error for an index past its expiry.
var ErrExpired = errors.New("index expired")

// ErrIdentity is wrapped by the errors for an index that is signed for
// another repository or for none.
var ErrIdentity = errors.New("index made for another repository")

// Check parses the trusted comment of a verified signature and checks it
// as t says.
func (t Trust) Check(comment string) (Stamp, error) {
	s, err := ParseStamp(comment)
	if err != nil {
		return Stamp{}, err
	}
	if s.Signed.IsZero() {
		return Stamp{}, fmt.Errorf("trusted comment %q has no timestamp: the index cannot be checked for a rollback (re-sign it with distri-mirror index)", comment)
	}
	if t.Name != "" && s.Repo != t.Name {
		if s.Repo == "" {
			return Stamp{}, fmt.Errorf("%w: the index names no repository, repos.d says name=%s (sign it with distri-mirror index --name %s)", ErrIdentity, t.Name, t.Name)
		}
		return Stamp{}, fmt.Errorf("%w: the index is signed for repository %q, repos.d says name=%s", ErrIdentity, s.Repo, t.Name)
	}
	if !s.Expires.IsZero() {
		now := time.Now()
		if t.Now != nil {
			now = t.Now()
		}
		if now.After(s.Expires) {
			msg := fmt.Sprintf("signed %s, expired %s (%s ago)", stampTime(s.Signed), stampTime(s.Expires), now.Sub(s.Expires).Round(time.Second))
			if !t.AllowExpired {
				return Stamp{}, fmt.Errorf("%w: %s: a mirror may be withholding updates (--allow-expired uses it anyway)", ErrExpired, msg)
			}
			if t.Warnf != nil {
				t.Warnf("%s: using an expired index (%s) as asked", t.label(), msg)
			}
		}
	}
	if t.Seen != nil {
		if err := t.Seen(s); err != nil {
			return Stamp{}, err
		}
	}
	return s, nil
}

func (t Trust) label() string {
	if t.Name != "" {
		return "repository " + t.Name
	}
	return "repository"
}

// RollbackError says an index is older than one accepted before for the
// same repository.
type RollbackError struct {
	Repo   string    // the repository's name or URL
	Signed time.Time // when the refused index was signed
	Newest time.Time // when the newest index seen before was signed
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("repository %s: index signed %s is older than the one accepted before (signed %s): refusing a rollback (a mirror may be replaying an old index)",
		e.Repo, stampTime(e.Signed), stampTime(e.Newest))
}

// CheckRollback returns a [*RollbackError] if got was signed before
// newest, the newest stamp accepted before for the repository repo (a
// name or URL, for the message). A stamp of the same second is accepted:
// it is the same index fetched again.
func CheckRollback(repo string, newest, got Stamp) error {
	if got.Signed.Before(newest.Signed) {
		return &RollbackError{Repo: repo, Signed: got.Signed, Newest: newest.Signed}
	}
	return nil
}

func stampTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
