package install

// Which repositories to use, which keys each one's index may be signed
// with, and what its signed trusted comment must say (docs/repository.md,
// "Freshness and keys").
//
// # Decisions
//
//   - A repos.d entry names the keys it accepts (signed-by=, as apt's
//     Signed-By): its index must verify with one of them and no other. A
//     key that any entry names is bound to the entries that name it: the
//     entries without signed-by trust the other keys of keys/*.pub (or
//     --pubkey) only. Otherwise a third-party repository's key, put in
//     keys/ for that repository, could sign an index for the official
//     one and replace its libraries under /ro.
//   - An entry's name (name=) is its identity: the index must be signed
//     for it (repo: in the trusted comment), and the newest time stamp
//     seen is remembered under it, so mirrors of one repository, listed
//     as entries of the same name, share it. An entry without a name
//     (and every --repo) is remembered under its URL and its index may
//     name any repository.
//   - The format stays what it was: old files mean what they meant.
//     After the URL, name= and signed-by= are options; any other word is
//     ignored as before (the installer says so, so that a misspelt
//     option does not silently drop a binding), except the bare option
//     names, which are an error.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/repo"
)

// RepoEntry is one line of a repos.d file.
type RepoEntry struct {
	// URL is the repository, e.g. http://repo.example:7080 or /srv/distri.
	URL string
	// Name is the repository's name (name=), which its index must be
	// signed for; empty: any.
	Name string
	// SignedBy are the key files (signed-by=, comma-separated) whose keys
	// alone may sign the index: a name is a file in <root>/etc/distri/keys,
	// an absolute path is one in the root. Empty: the keys no entry binds.
	SignedBy []string
	// Where is the file and line, e.g. /etc/distri/repos.d/distri.repo:2.
	Where string
	// Ignored are the other words after the URL.
	Ignored []string
}

// ReadRepoFiles returns the repository URLs listed in
// root/etc/distri/repos.d/*.repo (see [ReadRepoEntries]).
func ReadRepoFiles(root string) ([]string, error) {
	entries, err := ReadRepoEntries(root)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, e := range entries {
		urls = append(urls, e.URL)
	}
	return urls, nil
}

// ReadRepoEntries parses root/etc/distri/repos.d/*.repo, in the order of
// the file names: one repository a line,
//
//	URL [name=NAME] [signed-by=FILE[,FILE]...]
//
// Empty lines and lines starting with # are ignored, and so are other
// words after the URL (listed in Ignored). A bad name, an option given
// twice or a bare option name is an error naming the file and line.
func ReadRepoEntries(root string) ([]RepoEntry, error) {
	files, err := filepath.Glob(filepath.Join(root, "etc/distri/repos.d/*.repo"))
	if err != nil {
		return nil, err
	}
	var entries []RepoEntry
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for line := 1; sc.Scan(); line++ {
			words := strings.Fields(sc.Text())
			if len(words) == 0 || strings.HasPrefix(words[0], "#") {
				continue
			}
			e, err := parseRepoLine(words)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", f, line, err)
			}
			e.Where = fmt.Sprintf("%s:%d", f, line)
			entries = append(entries, e)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return entries, nil
}

func parseRepoLine(words []string) (RepoEntry, error) {
	e := RepoEntry{URL: words[0]}
	seen := map[string]bool{}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			if w == "name" || w == "signed-by" {
				return RepoEntry{}, fmt.Errorf("%q: want %s=VALUE", w, w)
			}
			e.Ignored = append(e.Ignored, w) // free text, as the old format allowed
			continue
		}
		if k != "name" && k != "signed-by" {
			e.Ignored = append(e.Ignored, w)
			continue
		}
		if seen[k] {
			return RepoEntry{}, fmt.Errorf("%s= given twice", k)
		}
		seen[k] = true
		switch k {
		case "name":
			if err := repo.CheckName(v); err != nil {
				return RepoEntry{}, err
			}
			e.Name = v
		case "signed-by":
			for f := range strings.SplitSeq(v, ",") {
				if f == "" {
					return RepoEntry{}, fmt.Errorf("signed-by=%s: empty file name", v)
				}
				e.SignedBy = append(e.SignedBy, f)
			}
		}
	}
	return e, nil
}

// repoOptions returns the options of every repository to use, without
// the transport settings: from Options.Repos, else from repos.d, each
// with the keys that may sign its index and the checks of its trusted
// comment.
func (in *Installer) repoOptions() ([]repo.Options, error) {
	var entries []RepoEntry
	if len(in.opts.Repos) > 0 {
		for _, u := range in.opts.Repos {
			entries = append(entries, RepoEntry{URL: u, Where: "--repo " + u})
		}
	} else {
		var err error
		if entries, err = ReadRepoEntries(in.opts.Root); err != nil {
			return nil, err
		}
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("no repositories: pass --repo or list them in %s", filepath.Join(in.opts.Root, "etc/distri/repos.d/*.repo"))
	}
	for _, e := range entries {
		if len(e.Ignored) > 0 {
			in.logf("%s: ignoring %q after the URL (options are name=NAME and signed-by=FILE[,FILE]...)", e.Where, strings.Join(e.Ignored, " "))
		}
	}
	bound := map[string][]minisign.PublicKey{} // by Where
	var boundKeys []minisign.PublicKey
	unbound := false
	for _, e := range entries {
		if len(e.SignedBy) == 0 {
			unbound = true
			continue
		}
		for _, f := range e.SignedBy {
			p := filepath.Join(in.opts.Root, f)
			if !filepath.IsAbs(f) {
				p = filepath.Join(in.opts.Root, "etc/distri/keys", f)
			}
			k, err := minisign.ReadPublicKeyFile(p)
			if err != nil {
				return nil, fmt.Errorf("%s: signed-by: %w", e.Where, err)
			}
			bound[e.Where] = append(bound[e.Where], k)
			boundKeys = append(boundKeys, k)
		}
	}
	var free []minisign.PublicKey // trusted for the entries without signed-by
	if unbound {
		keys, err := in.keys()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if !slices.ContainsFunc(boundKeys, func(b minisign.PublicKey) bool { return sameKey(b, k) }) {
				free = append(free, k)
			}
		}
	}
	st := &repoState{dir: filepath.Join(in.opts.Root, stateDir)}
	var out []repo.Options
	for _, e := range entries {
		keys := bound[e.Where]
		if len(e.SignedBy) == 0 {
			keys = free
			if len(keys) == 0 {
				return nil, fmt.Errorf("%s: no key left to trust: every trusted key is bound by signed-by to other repositories (give this one signed-by=)", e.Where)
			}
		}
		id, url := e.Name, e.URL
		if id == "" {
			id = e.URL
		}
		out = append(out, repo.Options{
			URL:  e.URL,
			Keys: keys,
			Trust: repo.Trust{
				Name:         e.Name,
				AllowExpired: in.opts.AllowExpired,
				Seen: func(s repo.Stamp) error {
					if in.opts.DryRun { // check, do not record
						_, err := check(st.path(id, e.Name != ""), id, s)
						return err
					}
					return st.seen(id, e.Name != "", url, s, in.logf)
				},
				Warnf: in.logf,
			},
		})
	}
	return out, nil
}

func sameKey(a, b minisign.PublicKey) bool {
	return a.ID == b.ID && bytes.Equal(a.Key, b.Key)
}
