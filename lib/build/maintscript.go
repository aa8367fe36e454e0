package build

// Maintainer scripts of imported Debian packages.
//
// distri runs no package hooks, so what a .deb's preinst and postinst
// would do at install time is read from the scripts once, at import, and
// turned into data in the package: update-alternatives --install becomes
// a symlink the package provides, adduser/addgroup/useradd/groupadd
// become sysusers.d lines, systemctl/deb-systemd-helper enable become a
// preset. The scripts are not run and not interpreted in general: this
// is a scanner for the few commands debhelper and package maintainers
// write in a handful of fixed shapes. Control flow is ignored (every
// command counts as if the configure branch ran, function bodies
// included), "for X in a b c; do … done" is unrolled, and a variable is
// only expanded when the script assigns it a literal value (ver=1.16).
// Everything else a script does is listed in the build log as "not
// reproduced: …" so that nothing is lost silently. prerm and postrm undo
// what the package did and are not read.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"distri.dev/distri/lib/sysusers"
)

// Alternative is one update-alternatives --install call: Link (e.g.
// /usr/bin/awk) points to Path (/usr/bin/gawk) under the generic Name
// (awk) with Priority; Slaves follow their master.
type Alternative struct {
	Link, Name, Path string
	Priority         int
	Slaves           []Alternative
}

// MaintEffects is what [ScanMaintScripts] found.
type MaintEffects struct {
	Alternatives []Alternative
	// SysUsers are sysusers.d(5) lines, e.g.
	// "u sshd - - /run/sshd /usr/sbin/nologin".
	SysUsers []string
	// Enable lists the systemd units the scripts enable.
	Enable []string
	// Notes are log lines: "not reproduced: …", or why something needs
	// no reproducing (ldconfig).
	Notes []string
}

func (e *MaintEffects) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(e.Notes, n) {
		e.Notes = append(e.Notes, n)
	}
}

// ScanMaintScripts scans the preinst and postinst of a .deb's control
// files (by name, as [debian.ReadControl] returns them).
func ScanMaintScripts(files map[string][]byte) *MaintEffects {
	e := &MaintEffects{}
	for _, name := range []string{"preinst", "postinst"} {
		if b, ok := files[name]; ok {
			s := &scanner{script: name, vars: map[string]string{}, funcs: map[string]bool{}, e: e}
			s.run(splitCommands(string(b)))
		}
	}
	return e
}

// word is a shell word after quote removal; ok is false when it holds an
// expansion the scanner cannot resolve ($1, $(...), `...`, ${x:-y}).
type word struct {
	text string
	raw  string
}

// command is a simple command: its words, and the line it starts on.
type command struct {
	words []word
	line  int
}

// splitCommands cuts a script into simple commands at newlines and the
// operators ; & | && || ( ) and the keywords that precede commands (if,
// then, …), joining backslash-newline continuations and dropping
// comments. Quotes are kept in raw and removed in text; expansion comes
// later (it depends on the variables at that point).
func splitCommands(script string) []command {
	var cmds []command
	var cur []word
	var w strings.Builder
	inWord := false
	line := 1
	start := 1
	flushWord := func() {
		if inWord {
			raw := w.String()
			cur = append(cur, word{raw: raw})
			w.Reset()
			inWord = false
		}
	}
	flushCmd := func() {
		flushWord()
		if len(cur) > 0 {
			cmds = append(cmds, command{words: cur, line: start})
		}
		cur = nil
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		if !inWord && len(cur) == 0 {
			start = line
		}
		switch {
		case c == '\\' && i+1 < len(script) && script[i+1] == '\n':
			i++
			line++
		case c == '\\' && i+1 < len(script):
			w.WriteByte(c)
			w.WriteByte(script[i+1])
			inWord = true
			i++
		case c == '\'' || c == '"' || c == '`':
			// Copy the quoted part verbatim (a quote ends it, a
			// backslash escapes in double quotes).
			j := i + 1
			for j < len(script) && script[j] != c {
				if c != '\'' && script[j] == '\\' {
					j++
				}
				if j < len(script) && script[j] == '\n' {
					line++
				}
				j++
			}
			if j >= len(script) {
				j = len(script) - 1
			}
			w.WriteString(script[i : j+1])
			inWord = true
			i = j
		case c == '$' && i+1 < len(script) && script[i+1] == '(':
			// $(...) with nesting: kept as one unresolvable word part.
			depth, j := 0, i+1
			for ; j < len(script); j++ {
				if script[j] == '(' {
					depth++
				} else if script[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				} else if script[j] == '\n' {
					line++
				}
			}
			if j >= len(script) {
				j = len(script) - 1
			}
			w.WriteString(script[i : j+1])
			inWord = true
			i = j
		case c == '#' && !inWord:
			for i < len(script) && script[i] != '\n' {
				i++
			}
			i-- // the newline ends the command
		case c == '\n':
			flushCmd()
			line++
		case c == '&' && inWord && (strings.HasSuffix(w.String(), ">") || strings.HasSuffix(w.String(), "<")):
			w.WriteByte(c) // 2>&1
		case c == '(' && inWord && i+1 < len(script) && script[i+1] == ')':
			w.WriteString("()") // name(): a function definition
			i++
		case c == ';' || c == '&' || c == '|' || c == '(' || c == ')':
			if c == ')' && inWord {
				// "configure)" in a case: a pattern, not a command.
				w.Reset()
				inWord = false
				cur = nil
				continue
			}
			flushCmd()
		case c == ' ' || c == '\t':
			flushWord()
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	flushCmd()
	// Keywords that precede a command start a new one.
	var out []command
	for _, cmd := range cmds {
		ws := cmd.words
		for len(ws) > 0 && slices.Contains([]string{"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done", "esac"}, ws[0].raw) {
			if ws[0].raw == "done" {
				out = append(out, command{words: ws[:1], line: cmd.line})
			}
			ws = ws[1:]
		}
		if len(ws) > 0 {
			out = append(out, command{words: ws, line: cmd.line})
		}
	}
	return out
}

type scanner struct {
	script string
	vars   map[string]string // variables assigned literal values
	funcs  map[string]bool   // the script's functions
	steps  int               // commands scanned, bounded by maxSteps
	e      *MaintEffects
}

// expand removes quotes and expands $VAR and ${VAR} from s.vars. ok is
// false for anything else ($1, $(...), `...`, an unknown variable).
func (s *scanner) expand(raw string) (string, bool) {
	var b strings.Builder
	ok := true
	quote := byte(0)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case quote == '\'' && c != '\'':
			b.WriteByte(c)
		case c == '\'' && quote == 0, c == '"' && quote == 0:
			quote = c
		case c == quote:
			quote = 0
		case c == '\\' && i+1 < len(raw):
			i++
			b.WriteByte(raw[i])
		case c == '`':
			ok = false
		case c == '$':
			name := ""
			j := i + 1
			if j < len(raw) && raw[j] == '{' {
				k := strings.IndexByte(raw[j:], '}')
				if k < 0 {
					return "", false
				}
				name = raw[j+1 : j+k]
				i = j + k
			} else {
				k := j
				for k < len(raw) && (raw[k] == '_' || raw[k] >= 'a' && raw[k] <= 'z' || raw[k] >= 'A' && raw[k] <= 'Z' || raw[k] >= '0' && raw[k] <= '9' && k > j) {
					k++
				}
				name = raw[j:k]
				i = k - 1
			}
			v, known := s.vars[name]
			if name == "" || !known {
				ok = false
			}
			b.WriteString(v)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ok
}

// isAssignment reports whether raw is NAME=value.
func isAssignment(raw string) (name, value string, yes bool) {
	name, value, yes = strings.Cut(raw, "=")
	if !yes || name == "" {
		return "", "", false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			return "", "", false
		}
	}
	return name, value, true
}

// silent are commands whose effect is nothing distri needs (tests, output,
// shell state) or that the scanner handles by themselves.
var silent = []string{"set", "exit", "return", "echo", "printf", "[", "test", "true", "false", ":",
	"local", "shift", "trap", "umask", "getent", "command", "which", "break", "continue", "unset",
	"export", "case", "in", ";;", "db_version", "db_get", "db_input", "db_go", "db_stop", "db_purge",
	"db_fget", "db_fset", "db_set", "db_title", "db_capb", "db_metaget", "db_register", "db_unregister",
	"dpkg", "grep", "sed", "cut", "ls", "cat", "head", "tail", "tr", "awk", "readlink", "id", "return"}

// maxSteps bounds the commands one script's scan visits: unrolled
// nested loops (for a in 1 2 3 …; do for b in …) grow exponentially.
// Real scripts need a few hundred.
const maxSteps = 20000

func (s *scanner) run(cmds []command) {
	for i := 0; i < len(cmds); i++ {
		if s.steps++; s.steps > maxSteps {
			if s.steps == maxSteps+1 {
				s.e.note("not reproduced: %s: the rest of the script (more than %d commands with its loops unrolled)", s.script, maxSteps)
			}
			return
		}
		cmd := cmds[i]
		first := cmd.words[0].raw
		if first == "for" {
			// for X in a b c (the do is split off): unroll the body up to
			// the matching done.
			depth, j := 0, i+1
			for ; j < len(cmds); j++ {
				if cmds[j].words[0].raw == "for" {
					depth++
				}
				if cmds[j].words[0].raw == "done" {
					if depth == 0 {
						break
					}
					depth--
				}
			}
			body := cmds[i+1 : min(j, len(cmds))]
			ws := cmd.words
			if len(ws) >= 3 && ws[2].raw == "in" {
				v := ws[1].raw
				old, had := s.vars[v]
				for _, item := range ws[3:] {
					x, ok := s.expand(item.raw)
					if !ok || strings.ContainsAny(x, "*?[") {
						delete(s.vars, v)
						s.run(body)
						break
					}
					s.vars[v] = x
					s.run(body)
				}
				if had {
					s.vars[v] = old
				} else {
					delete(s.vars, v)
				}
			} else {
				s.run(body)
			}
			i = j
			continue
		}
		if first == "done" {
			continue
		}
		if name, ok := strings.CutSuffix(first, "()"); ok {
			// A function definition's head; its body is scanned where
			// it stands, its calls need nothing more.
			s.funcs[name] = true
			continue
		}
		// Leading assignments: alone they set variables, before a
		// command they only set its environment.
		ws := cmd.words
		assigns := 0
		for _, w := range ws {
			if _, _, ok := isAssignment(w.raw); !ok {
				break
			}
			assigns++
		}
		if assigns == len(ws) {
			for _, w := range ws {
				n, v, _ := isAssignment(w.raw)
				if x, ok := s.expand(v); ok {
					s.vars[n] = x
				} else {
					delete(s.vars, n)
				}
			}
			continue
		}
		ws = ws[assigns:]
		s.command(ws, cmd.line)
	}
}

func (s *scanner) command(all []word, line int) {
	// Redirections (>/dev/null, 2>&1, > file) are no arguments.
	var ws []word
	for i := 0; i < len(all); i++ {
		r := strings.TrimLeft(all[i].raw, "0123456789")
		if strings.HasPrefix(r, ">") || strings.HasPrefix(r, "<") {
			if strings.Trim(r, "<>&") == "" && i+1 < len(all) {
				i++ // "> file": the file is the next word
			}
			continue
		}
		ws = append(ws, all[i])
	}
	if len(ws) == 0 {
		return
	}
	args := make([]string, len(ws))
	resolved := true
	for i, w := range ws {
		var ok bool
		args[i], ok = s.expand(w.raw)
		resolved = resolved && ok
	}
	raw := make([]string, len(ws))
	for i, w := range ws {
		raw[i] = w.raw
	}
	text := strings.Join(raw, " ")
	if len(text) > 160 {
		text = text[:160] + "…"
	}
	notReproduced := func(why string) {
		if why != "" {
			why = " (" + why + ")"
		}
		s.e.note("not reproduced: %s:%d: %s%s", s.script, line, text, why)
	}
	name := args[0]
	switch name {
	case "update-alternatives":
		if !resolved {
			notReproduced("an argument the import cannot resolve")
			return
		}
		if err := s.alternatives(args[1:]); err != nil {
			notReproduced(err.Error())
		}
	case "adduser", "addgroup", "useradd", "groupadd", "usermod":
		if !resolved {
			notReproduced("an argument the import cannot resolve")
			return
		}
		lines, err := sysusersOf(name, args[1:])
		if err != nil {
			notReproduced(err.Error())
			return
		}
		for _, l := range lines {
			// What distri-install would refuse is refused here.
			if _, err := sysusers.Parse("sysusers", []byte(l)); err != nil {
				notReproduced(err.Error())
				return
			}
		}
		for _, l := range lines {
			if !slices.Contains(s.e.SysUsers, l) {
				s.e.SysUsers = append(s.e.SysUsers, l)
			}
		}
	case "ldconfig":
		s.e.note("%s:%d: ldconfig: not needed: programs find their libraries through their pinned rpath and /ro/lib, and distri has no ld.so.cache", s.script, line)
	case "systemctl", "deb-systemd-helper":
		verbs := []string{}
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "-") {
				verbs = append(verbs, a)
			}
		}
		if len(verbs) >= 2 && verbs[0] == "enable" && resolved {
			for _, u := range verbs[1:] {
				if !slices.Contains(s.e.Enable, u) {
					s.e.Enable = append(s.e.Enable, u)
				}
			}
			return
		}
		if len(verbs) >= 1 && slices.Contains([]string{"was-enabled", "is-enabled", "debian-installed", "update-state", "unmask", "daemon-reload", "--system"}, verbs[0]) {
			return // state queries and bookkeeping of a dpkg-managed system
		}
		notReproduced("")
	case "dpkg-divert":
		notReproduced("a diversion renames another package's file; distri packages never replace each other's files")
	default:
		if slices.Contains(silent, name) || strings.HasPrefix(name, "db_") || name == "" || s.funcs[name] {
			return
		}
		notReproduced("")
	}
}

// alternatives parses update-alternatives' arguments.
func (s *scanner) alternatives(args []string) error {
	var cur *Alternative
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--quiet", "--verbose", "--force", "--debug":
		case "--altdir", "--admindir", "--instdir", "--root", "--log":
			i++
		case "--install":
			if i+4 >= len(args) {
				return fmt.Errorf("--install needs LINK NAME PATH PRIORITY")
			}
			prio, err := strconv.Atoi(args[i+4])
			if err != nil {
				return fmt.Errorf("priority %q is no integer", args[i+4])
			}
			s.e.Alternatives = append(s.e.Alternatives, Alternative{Link: args[i+1], Name: args[i+2], Path: args[i+3], Priority: prio})
			cur = &s.e.Alternatives[len(s.e.Alternatives)-1]
			i += 4
		case "--slave", "--follower":
			if cur == nil || i+3 >= len(args) {
				return fmt.Errorf("%s without --install or without LINK NAME PATH", a)
			}
			cur.Slaves = append(cur.Slaves, Alternative{Link: args[i+1], Name: args[i+2], Path: args[i+3], Priority: cur.Priority})
			i += 3
		case "--remove", "--remove-all", "--auto":
			return nil // undoes or resets; a fresh install has nothing of it
		case "--set", "--config", "--display", "--query", "--list", "--get-selections", "--set-selections", "--all":
			return fmt.Errorf("update-alternatives %s: only --install is reproduced", a)
		default:
			return fmt.Errorf("unknown argument %q", a)
		}
	}
	return nil
}

// sysusersOf turns an adduser, addgroup, useradd, groupadd or usermod call
// into sysusers.d lines.
func sysusersOf(prog string, args []string) ([]string, error) {
	var pos []string
	opt := map[string]string{}
	flag := map[string]bool{}
	withValue := map[string]bool{
		"--home": true, "--shell": true, "--ingroup": true, "--uid": true, "--gid": true, "--gecos": true,
		"--comment": true, "--firstuid": true, "--lastuid": true, "--firstgid": true, "--lastgid": true,
		"--conf": true, "--add_extra_groups": false,
		"-d": true, "--home-dir": true, "-s": true, "-g": true, "-u": true, "-c": true, "-G": true,
		"--groups": true, "-K": true, "--key": true, "-k": true, "--skel": true, "-e": true, "-f": true,
		"-p": true, "--password": true, "-a": false, "--append": false,
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") {
			opt[k] = v
			continue
		}
		if withValue[a] {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s needs a value", a)
			}
			opt[a] = args[i+1]
			i++
			continue
		}
		if strings.HasPrefix(a, "-") {
			flag[a] = true
			continue
		}
		pos = append(pos, a)
	}
	get := func(def string, keys ...string) string {
		for _, k := range keys {
			if v, ok := opt[k]; ok && v != "" {
				return v
			}
		}
		return def
	}
	field := func(s string) string {
		if s == "" {
			return "-"
		}
		if strings.ContainsAny(s, " \t\"") {
			return strconv.Quote(s)
		}
		return s
	}
	system := flag["--system"] || flag["-r"]
	for _, p := range pos {
		if strings.ContainsAny(p, " \t:/") || p == "" {
			return nil, fmt.Errorf("name %q", p)
		}
	}
	switch prog {
	case "adduser", "useradd":
		if prog == "adduser" && len(pos) == 2 {
			return []string{fmt.Sprintf("m %s %s", pos[0], pos[1])}, nil
		}
		if len(pos) != 1 {
			return nil, fmt.Errorf("want one user name")
		}
		if !system {
			return nil, fmt.Errorf("only system users are reproduced")
		}
		id := get("-", "--uid", "-u")
		group := get("", "--ingroup", "--gid", "-g")
		switch {
		case group != "":
			id += ":" + group
		case prog == "adduser" && !flag["--group"]:
			id += ":nogroup" // adduser --system without --group: the user's group is nogroup
		case prog == "useradd" && flag["-N"]:
			id += ":nogroup"
		}
		home := get("", "--home", "-d", "--home-dir")
		if home == "" && prog == "adduser" {
			home = "/nonexistent"
		}
		shell := get("", "--shell", "-s")
		if shell == "" {
			shell = "/usr/sbin/nologin"
		}
		lines := []string{fmt.Sprintf("u %s %s %s %s %s", pos[0], id, field(get("", "--gecos", "--comment", "-c")), field(home), field(shell))}
		if g := get("", "-G", "--groups"); g != "" {
			for _, x := range strings.Split(g, ",") {
				lines = append(lines, fmt.Sprintf("m %s %s", pos[0], x))
			}
		}
		return lines, nil
	case "addgroup", "groupadd":
		if len(pos) != 1 {
			return nil, fmt.Errorf("want one group name")
		}
		if !system {
			return nil, fmt.Errorf("only system groups are reproduced")
		}
		return []string{fmt.Sprintf("g %s %s", pos[0], get("-", "--gid", "-g"))}, nil
	case "usermod":
		if len(pos) == 1 && (flag["-a"] || flag["--append"]) {
			if g := get("", "-G", "--groups"); g != "" {
				var lines []string
				for _, x := range strings.Split(g, ",") {
					lines = append(lines, fmt.Sprintf("m %s %s", pos[0], x))
				}
				return lines, nil
			}
		}
		return nil, fmt.Errorf("only usermod -a -G is reproduced")
	}
	return nil, fmt.Errorf("unknown program")
}
