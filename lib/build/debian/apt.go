// Package debian reads the machine's apt configuration and package data:
// the archive URLs of its apt sources (both the deb822 *.sources format
// and the one-line sources.list format), apt-cache's RFC 822 records, and
// scaffolding of distri recipes for Debian binary packages.
//
// No archive host name is built in: the archive is whatever the machine's
// apt sources name.
package debian

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// Sources says where apt's source lists are.
type Sources struct {
	// List is the one-line format file, e.g. /etc/apt/sources.list.
	List string
	// Dir holds *.sources (deb822) and *.list (one-line) files, e.g.
	// /etc/apt/sources.list.d.
	Dir string
}

// DefaultSources is the machine's apt configuration.
var DefaultSources = Sources{List: "/etc/apt/sources.list", Dir: "/etc/apt/sources.list.d"}

// ArchiveURIs returns the base URIs of the machine's apt sources that
// serve binary or source packages, de-duplicated, in the order apt lists
// them: sources.list first, then the files of sources.list.d in name
// order. Missing files are not an error.
func (s Sources) ArchiveURIs() ([]string, error) {
	var uris []string
	seen := make(map[string]bool)
	add := func(us []string) {
		for _, u := range us {
			u = strings.TrimSuffix(u, "/")
			if !seen[u] {
				seen[u] = true
				uris = append(uris, u)
			}
		}
	}
	if s.List != "" {
		b, err := os.ReadFile(s.List)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		add(ParseOneLine(b))
	}
	if s.Dir != "" {
		names, err := filepath.Glob(filepath.Join(s.Dir, "*"))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			var parse func([]byte) []string
			switch {
			case strings.HasSuffix(n, ".sources"):
				parse = ParseDeb822
			case strings.HasSuffix(n, ".list"):
				parse = ParseOneLine
			default:
				continue
			}
			b, err := os.ReadFile(n)
			if err != nil {
				return nil, err
			}
			add(parse(b))
		}
	}
	return uris, nil
}

// ParseOneLine returns the URIs of the deb and deb-src lines of a
// sources.list file: "deb [options] URI suite [component...]".
func ParseOneLine(b []byte) []string {
	var uris []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "deb" && f[0] != "deb-src") {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) >= 2 {
			uris = append(uris, f[0])
		}
	}
	return uris
}

// ParseDeb822 returns the URIs of the enabled deb and deb-src stanzas of
// a deb822 .sources file.
func ParseDeb822(b []byte) []string {
	var uris []string
	for _, st := range ParseControl(b) {
		if strings.EqualFold(st["Enabled"], "no") {
			continue
		}
		types := strings.Fields(st["Types"])
		ok := false
		for _, t := range types {
			ok = ok || t == "deb" || t == "deb-src"
		}
		if !ok || st["Suites"] == "" {
			continue
		}
		uris = append(uris, strings.Fields(st["URIs"])...)
	}
	return uris
}

// ParseControl parses RFC 822 style paragraphs (apt-cache show output,
// deb822 sources) into one map per paragraph. Continuation lines are
// joined with newlines; comment lines (#) are skipped.
func ParseControl(b []byte) []map[string]string {
	var out []map[string]string
	var cur map[string]string
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			if cur != nil {
				out = append(out, cur)
			}
			cur, last = nil, ""
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if cur != nil && last != "" {
				cur[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if cur == nil {
				cur = make(map[string]string)
			}
			last = strings.TrimSpace(k)
			cur[last] = strings.TrimSpace(v)
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}
