package elfdeps

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FuzzRead reads arbitrary files as Read does for every file of a
// package being built (a build's output is untrusted), and checks what
// it reports: an ELF file's needs, or a script's #! line as the kernel
// reads it (the first line, at most 256 bytes, split once at a blank).
func FuzzRead(f *testing.F) {
	for _, name := range []string{"gcc-amd64-linux-exec", "gcc-riscv64-linux-exec", "gcc-386-freebsd-exec"} {
		b, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "debug", "elf", "testdata", name))
		if err != nil {
			f.Fatalf("seed ELF files come from Go's own tests: %v", err)
		}
		f.Add(b)
	}
	f.Add([]byte("#!/usr/bin/env python3\nprint()\n"))
	f.Add([]byte("#! /usr/bin/awk\t-f -x\r\n"))
	f.Add([]byte("#!" + strings.Repeat("x", 300)))
	path := filepath.Join(f.TempDir(), "file")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// A hang is a failure too: crash the worker, so that the
		// fuzzer keeps the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic("Read took more than 10 s") })
		defer watchdog.Stop()
		d, err := Read(path)
		if err != nil {
			if errors.Is(err, ErrNotExecutable) && (len(b) > 2 && bytes.HasPrefix(b, []byte("#!")) || bytes.HasPrefix(b, []byte("\x7fELF"))) {
				t.Errorf("Read(%q) = %v", b, err)
			}
			return
		}
		if d.Script {
			line, _, _ := bytes.Cut(b[:min(len(b), 256)], []byte("\n"))
			if d.Interp == "" || strings.ContainsAny(d.Interp, " \t\n") || strings.Contains(d.InterpArg, "\n") ||
				!bytes.Contains(line, []byte(d.Interp)) || !bytes.Contains(line, []byte(d.InterpArg)) {
				t.Errorf("Read(%q) = %+v", b, d)
			}
			return
		}
		for _, p := range append(d.RPath, d.RunPath...) {
			if p == "" || strings.Contains(p, ":") {
				t.Errorf("Read(%q): search path entry %q", b, p)
			}
		}
	})
}

// FuzzPkgConfigRequires reads arbitrary pkg-config files (they come
// with the packages a build depends on) and checks that what it returns
// are module names: no blanks, separators or version operators.
func FuzzPkgConfigRequires(f *testing.F) {
	f.Add("prefix=/usr\nName: x\nRequires: glib-2.0 >= 2.50, zlib\nRequires.private: libffi>=3 , mount\nRequires=not\n")
	f.Add("Requires: a>= b <1 c != 2,d\n")
	f.Fuzz(func(t *testing.T, text string) {
		mods, err := PkgConfigRequires(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, m := range mods {
			if m == "" || strings.ContainsAny(m, " \t\n,<>=!") {
				t.Errorf("PkgConfigRequires(%q) = %q", text, mods)
			}
		}
	})
}
