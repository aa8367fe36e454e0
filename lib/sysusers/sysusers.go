// Package sysusers reads sysusers.d(5) files and merges the system users
// and groups they declare into a root's /etc/passwd, /etc/group and
// /etc/shadow.
//
// distri runs no package scripts: a package declares its users as data
// (Debian imports get out/lib/sysusers.d/<pkg>.conf from their adduser
// calls, other packages ship sysusers.d files), and distri-install and
// distri-mkimage apply them with [Apply]; where systemd runs,
// systemd-sysusers reads the same files from /ro/lib/sysusers.d at boot.
// This is a small reimplementation rather than a call to
// systemd-sysusers because the installer must work on roots without
// systemd and must not run programs from the packages it installs.
//
// Supported: u (with uid, uid:gid, uid:group, -:group), g, m; r lines
// and the path form of IDs are accepted and ignored (IDs are allocated
// instead). Rules, chosen to be deterministic and safe:
//
//   - an existing user or group is never changed (a file cannot take
//     over root by declaring "u root 0" or re-declare an existing name);
//   - a requested ID is used only if it is free, else one is allocated;
//     IDs are allocated downwards from 999 (the top of the system range,
//     as systemd does), skipping used ones, a user's group preferring the
//     user's ID; 0 and 65534 are never handed out;
//   - groups first, then users, then memberships, each in the order the
//     files give them (the caller passes files sorted by name);
//   - names, GECOS, home and shell that could break the colon-separated
//     files (':', newline, control characters) are errors naming file and
//     line, and nothing is written;
//   - the three files are replaced atomically (temporary file, rename),
//     shadow keeps mode 0600; new accounts are locked ("!*").
package sysusers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Entry is one line of a sysusers.d file.
type Entry struct {
	Type  byte   // 'u', 'g', 'm' or 'r'
	Name  string // user or group name (the user for 'm')
	ID    string // "-", "N", "N:G", "-:G", or the group for 'm'
	GECOS string
	Home  string
	Shell string
	Where string // file:line, for errors
}

// Parse parses a sysusers.d file; name is used in errors.
func Parse(name string, b []byte) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		f, err := fields(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for len(f) < 6 {
			f = append(f, "-")
		}
		if len(f) > 6 {
			return nil, fmt.Errorf("%s: %d fields, want at most 6", where, len(f))
		}
		typ := strings.TrimSuffix(f[0], "!")
		if len(typ) != 1 || !strings.Contains("ugmr", typ) {
			return nil, fmt.Errorf("%s: unknown type %q (want u, g, m or r)", where, f[0])
		}
		e := Entry{Type: typ[0], Name: f[1], ID: f[2], GECOS: dash(f[3]), Home: dash(f[4]), Shell: dash(f[5]), Where: where}
		if e.Type == 'r' {
			continue // ranges: allocation here always uses the system range below 1000
		}
		if err := checkName(e.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if e.Type == 'm' {
			if err := checkName(e.ID); err != nil {
				return nil, fmt.Errorf("%s: group: %w", where, err)
			}
		}
		for _, v := range []struct{ what, s string }{{"GECOS", e.GECOS}, {"home", e.Home}, {"shell", e.Shell}, {"ID", e.ID}} {
			if strings.ContainsFunc(v.s, func(r rune) bool { return r == ':' && v.what != "ID" || r < 0x20 || r == 0x7f }) {
				return nil, fmt.Errorf("%s: %s %q holds ':' or a control character", where, v.what, v.s)
			}
		}
		if _, g, ok := strings.Cut(e.ID, ":"); e.Type == 'u' && ok && strings.Trim(g, "0123456789") == "" {
			if id, err := strconv.Atoi(g); err != nil || id <= 0 || id >= 65534 {
				return nil, fmt.Errorf("%s: primary group %q: want a system group ID from 1 to 65533 or a name", where, g)
			}
		}
		for _, v := range []struct{ what, s string }{{"home", e.Home}, {"shell", e.Shell}} {
			if v.s != "" && !strings.HasPrefix(v.s, "/") {
				return nil, fmt.Errorf("%s: %s %q is not an absolute path", where, v.what, v.s)
			}
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// fields splits a line at blanks, with double-quoted fields.
func fields(line string) ([]string, error) {
	var out []string
	for {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			return out, nil
		}
		if line[0] == '"' {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			out = append(out, line[1:1+end])
			line = line[2+end:]
			continue
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		out = append(out, line[:end])
		line = line[end:]
	}
}

// checkName accepts the portable user/group names: [a-z_][a-z0-9_-]*,
// optionally ending in $, at most 31 bytes.
func checkName(s string) error {
	ok := s != "" && len(s) <= 31
	for i, c := range s {
		switch {
		case c == '_' || c >= 'a' && c <= 'z':
		case i > 0 && (c == '-' || c >= '0' && c <= '9'):
		case i > 0 && i == len(s)-1 && c == '$':
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("name %q: want [a-z_][a-z0-9_-]*, at most 31 bytes", s)
	}
	return nil
}

// db is a colon-separated file: its lines and the index of names and IDs.
type db struct {
	path  string
	mode  os.FileMode
	lines []string
	names map[string]int // name → line index
	ids   map[int]bool
	added bool
}

func readDB(path string, mode os.FileMode) (*db, error) {
	d := &db{path: path, mode: mode, names: map[string]int{}, ids: map[int]bool{}}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		d.lines = append(d.lines, l)
		f := strings.Split(l, ":")
		d.names[f[0]] = len(d.lines) - 1
		if len(f) > 2 {
			if id, err := strconv.Atoi(f[2]); err == nil {
				d.ids[id] = true
			}
		}
	}
	return d, nil
}

func (d *db) add(line string, id int) {
	d.lines = append(d.lines, line)
	d.names[strings.SplitN(line, ":", 2)[0]] = len(d.lines) - 1
	if id >= 0 {
		d.ids[id] = true
	}
	d.added = true
}

func (d *db) write() error {
	if !d.added {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.path), "."+filepath.Base(d.path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(d.mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(strings.Join(d.lines, "\n") + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), d.path)
}

// Apply merges entries into root's etc/passwd, etc/group and
// etc/shadow (see the package doc for the rules) and returns a line per
// user or group it added, e.g. "user sshd (uid 999, gid 65534)".
func Apply(root string, entries []Entry) ([]string, error) {
	passwd, err := readDB(filepath.Join(root, "etc/passwd"), 0o644)
	if err != nil {
		return nil, err
	}
	group, err := readDB(filepath.Join(root, "etc/group"), 0o644)
	if err != nil {
		return nil, err
	}
	shadow, err := readDB(filepath.Join(root, "etc/shadow"), 0o600)
	if err != nil {
		return nil, err
	}
	var done []string
	reserved := func(id int) bool { return id <= 0 || id == 65534 || id >= 65535 }
	free := func(d *db, id int) bool { return !reserved(id) && !d.ids[id] }
	alloc := func(prefer int, dbs ...*db) (int, error) {
		ok := func(id int) bool {
			for _, d := range dbs {
				if !free(d, id) {
					return false
				}
			}
			return true
		}
		if prefer > 0 && ok(prefer) {
			return prefer, nil
		}
		for id := 999; id > 0; id-- {
			if ok(id) {
				return id, nil
			}
		}
		return 0, errors.New("no free system ID below 1000")
	}
	addGroup := func(name string, want int, where string) (int, error) {
		gid, err := alloc(want, group)
		if err != nil {
			return 0, fmt.Errorf("%s: group %s: %w", where, name, err)
		}
		group.add(fmt.Sprintf("%s:x:%d:", name, gid), gid)
		done = append(done, fmt.Sprintf("group %s (gid %d)", name, gid))
		return gid, nil
	}
	gidOf := func(name string) (int, bool) {
		i, ok := group.names[name]
		if !ok {
			return 0, false
		}
		f := strings.Split(group.lines[i], ":")
		if len(f) < 3 {
			return 0, false
		}
		id, err := strconv.Atoi(f[2])
		return id, err == nil
	}
	num := func(s string) int {
		if id, err := strconv.Atoi(s); err == nil && id > 0 {
			return id
		}
		return 0
	}
	for _, e := range entries {
		if e.Type != 'g' {
			continue
		}
		if _, ok := group.names[e.Name]; ok {
			continue
		}
		if _, err := addGroup(e.Name, num(e.ID), e.Where); err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		if e.Type != 'u' {
			continue
		}
		if _, ok := passwd.names[e.Name]; ok {
			continue
		}
		uidPart, groupPart, hasGroup := strings.Cut(e.ID, ":")
		uid, err := alloc(num(uidPart), passwd)
		if err != nil {
			return nil, fmt.Errorf("%s: user %s: %w", e.Where, e.Name, err)
		}
		var gid int
		switch {
		case hasGroup && num(groupPart) > 0:
			gid = num(groupPart)
		case hasGroup:
			if err := checkName(groupPart); err != nil {
				return nil, fmt.Errorf("%s: user %s: group: %w", e.Where, e.Name, err)
			}
			g, ok := gidOf(groupPart)
			if !ok {
				if g, err = addGroup(groupPart, 0, e.Where); err != nil {
					return nil, err
				}
			}
			gid = g
		default:
			g, ok := gidOf(e.Name)
			if !ok {
				// The user's own group, with the user's ID where free.
				if g, err = addGroup(e.Name, uid, e.Where); err != nil {
					return nil, err
				}
			}
			gid = g
		}
		home, shell := e.Home, e.Shell
		if home == "" {
			home = "/"
		}
		if shell == "" {
			shell = "/usr/sbin/nologin"
		}
		passwd.add(fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", e.Name, uid, gid, e.GECOS, home, shell), uid)
		if _, ok := shadow.names[e.Name]; !ok {
			shadow.add(e.Name+":!*:::::::", -1)
		}
		done = append(done, fmt.Sprintf("user %s (uid %d, gid %d)", e.Name, uid, gid))
	}
	for _, e := range entries {
		if e.Type != 'm' {
			continue
		}
		i, ok := group.names[e.ID]
		if !ok {
			if _, err := addGroup(e.ID, 0, e.Where); err != nil {
				return nil, err
			}
			i = group.names[e.ID]
		}
		f := strings.Split(group.lines[i], ":")
		for len(f) < 4 {
			f = append(f, "")
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		if slices.Contains(members, e.Name) {
			continue
		}
		f[3] = strings.Join(append(members, e.Name), ",")
		group.lines[i] = strings.Join(f, ":")
		group.added = true
		done = append(done, fmt.Sprintf("member %s of %s", e.Name, e.ID))
	}
	// Group first: a passwd line never names a gid that group lacks.
	for _, d := range []*db{group, passwd, shadow} {
		if err := d.write(); err != nil {
			return nil, err
		}
	}
	return done, nil
}
