// Package elfdeps finds what a program needs at run time from the file
// itself, without running it (no ldd): the shared libraries (DT_NEEDED),
// the program interpreter (PT_INTERP) and the library search path
// (DT_RPATH, DT_RUNPATH) of ELF files, and the interpreter of scripts
// (#!).
package elfdeps

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Deps is what one file needs at run time.
type Deps struct {
	// Needed lists the DT_NEEDED entries, e.g. libc.so.6.
	Needed []string
	// Interp is the PT_INTERP program interpreter, e.g.
	// /lib64/ld-linux-x86-64.so.2, or for a script the #! interpreter,
	// e.g. /bin/sh.
	Interp string
	// InterpArg is the optional argument of a #! line, e.g. "-f" in
	// "#!/usr/bin/awk -f".
	InterpArg string
	// RPath and RunPath are the DT_RPATH and DT_RUNPATH entries, split at
	// ":".
	RPath, RunPath []string
	// Script is true for a #! script, false for an ELF file.
	Script bool
}

// ErrNotExecutable is returned for files that are neither ELF files nor
// #! scripts.
var ErrNotExecutable = errors.New("neither an ELF file nor a #! script")

// Read returns the run-time dependencies of the file at path.
func Read(path string) (*Deps, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	// A script may be shorter than ELF's magic: "#!x" runs x.
	if n, err := io.ReadFull(f, magic[:]); err != nil && (n < 3 || err != io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotExecutable)
	}
	switch {
	case string(magic[:]) == elf.ELFMAG:
		d, err := readELF(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return d, nil
	case magic[0] == '#' && magic[1] == '!':
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		d, err := ParseShebang(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("%s: %w", path, ErrNotExecutable)
}

func readELF(r io.ReaderAt) (*Deps, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	d := &Deps{}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, fmt.Errorf("read PT_INTERP: %w", err)
		}
		d.Interp = string(bytes.TrimRight(b, "\x00"))
	}
	if ef.Section(".dynamic") == nil && ef.SectionByType(elf.SHT_DYNAMIC) == nil {
		return d, nil // statically linked
	}
	if d.Needed, err = ef.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("read DT_NEEDED: %w", err)
	}
	split := func(tag elf.DynTag) ([]string, error) {
		vals, err := ef.DynString(tag)
		if err != nil {
			return nil, fmt.Errorf("read %v: %w", tag, err)
		}
		var out []string
		for _, v := range vals {
			for _, p := range strings.Split(v, ":") {
				if p != "" {
					out = append(out, p)
				}
			}
		}
		return out, nil
	}
	if d.RPath, err = split(elf.DT_RPATH); err != nil {
		return nil, err
	}
	if d.RunPath, err = split(elf.DT_RUNPATH); err != nil {
		return nil, err
	}
	return d, nil
}

// ParseShebang reads the #! line of a script: "#!/usr/bin/env python3"
// gives Interp /usr/bin/env and InterpArg python3, as the kernel splits
// it (the interpreter, then the rest of the line as one argument).
func ParseShebang(r io.Reader) (*Deps, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 256)).ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, err
	}
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return nil, ErrNotExecutable
	}
	rest = strings.TrimSpace(rest)
	interp, arg, _ := strings.Cut(rest, " ")
	if i := strings.IndexByte(rest, '\t'); i >= 0 && (strings.IndexByte(rest, ' ') < 0 || i < strings.IndexByte(rest, ' ')) {
		interp, arg, _ = strings.Cut(rest, "\t")
	}
	if interp == "" {
		return nil, errors.New("empty #! line")
	}
	return &Deps{Interp: interp, InterpArg: strings.TrimSpace(arg), Script: true}, nil
}

// PkgConfigRequires returns the modules a pkg-config file requires: the
// module names of its Requires and Requires.private fields, without
// version constraints ("glib-2.0 >= 2.50, zlib" gives glib-2.0 and zlib).
func PkgConfigRequires(r io.Reader) ([]string, error) {
	var mods []string
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(key, "= \t") {
			continue // a variable definition or no field
		}
		if key != "Requires" && key != "Requires.private" {
			continue
		}
		skip := false
		for _, tok := range strings.Fields(strings.ReplaceAll(val, ",", " ")) {
			if skip {
				skip = false
				continue
			}
			if i := strings.IndexAny(tok, "<>=!"); i >= 0 {
				// "glib-2.0>=2.50", "glib-2.0>=", or a lone ">=": the
				// version follows unless it is in the same token.
				name, rest := tok[:i], strings.TrimLeft(tok[i:], "<>=!")
				if name != "" {
					mods = append(mods, name)
				}
				skip = rest == ""
				continue
			}
			mods = append(mods, tok)
		}
	}
	return mods, s.Err()
}
