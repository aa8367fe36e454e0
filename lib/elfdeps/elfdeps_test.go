package elfdeps

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
)

func gcc(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("gcc", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
}

func TestELF(t *testing.T) {
	distritest.NeedTool(t, "gcc")
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib.c", "int answer(void) { return 42; }\n")
	write("main.c", "int answer(void);\nint main(void) { return answer() - 42; }\n")
	gcc(t, dir, "-shared", "-fPIC", "-o", "libanswer.so", "lib.c")
	gcc(t, dir, "-o", "runpath", "main.c", "-L.", "-lanswer", "-Wl,-rpath,/opt/a:/opt/b", "-Wl,--enable-new-dtags")
	gcc(t, dir, "-o", "rpath", "main.c", "-L.", "-lanswer", "-Wl,-rpath,/opt/c", "-Wl,--disable-new-dtags")

	d, err := Read(filepath.Join(dir, "runpath"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.Needed, "libanswer.so") || !slices.Contains(d.Needed, "libc.so.6") {
		t.Errorf("Needed = %q, want libanswer.so and libc.so.6", d.Needed)
	}
	if !strings.HasPrefix(filepath.Base(d.Interp), "ld-linux") {
		t.Errorf("Interp = %q, want the dynamic loader", d.Interp)
	}
	if diff := cmp.Diff([]string{"/opt/a", "/opt/b"}, d.RunPath); diff != "" {
		t.Errorf("RunPath (-want +got):\n%s", diff)
	}
	if len(d.RPath) != 0 || d.Script {
		t.Errorf("RPath = %q, Script = %v; want none, false", d.RPath, d.Script)
	}

	d, err = Read(filepath.Join(dir, "rpath"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/opt/c"}, d.RPath); diff != "" {
		t.Errorf("RPath (-want +got):\n%s", diff)
	}

	d, err = Read(filepath.Join(dir, "libanswer.so"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Interp != "" {
		t.Errorf("shared library Interp = %q, want none", d.Interp)
	}
}

func TestStatic(t *testing.T) {
	distritest.NeedTool(t, "gcc")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.c"), []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("gcc", "-static", "-o", "s", "s.c")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		distritest.Skip(t, "gcc -static does not work here (no static libc?): %v\n%s", err, out)
	}
	d, err := Read(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Needed) != 0 || d.Interp != "" {
		t.Errorf("static binary: Needed %q, Interp %q; want none", d.Needed, d.Interp)
	}
}

func TestScripts(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		content     string
		interp, arg string
	}{
		{"#!/bin/sh\necho hi\n", "/bin/sh", ""},
		{"#! /usr/bin/env python3\n", "/usr/bin/env", "python3"},
		{"#!/usr/bin/awk -f\n", "/usr/bin/awk", "-f"},
		{"#!/bin/bash", "/bin/bash", ""},
	} {
		p := filepath.Join(dir, "script")
		if err := os.WriteFile(p, []byte(tt.content), 0o755); err != nil {
			t.Fatal(err)
		}
		d, err := Read(p)
		if err != nil {
			t.Fatalf("%q: %v", tt.content, err)
		}
		if d.Interp != tt.interp || d.InterpArg != tt.arg || !d.Script {
			t.Errorf("%q: got %q %q script=%v, want %q %q", tt.content, d.Interp, d.InterpArg, d.Script, tt.interp, tt.arg)
		}
	}
	p := filepath.Join(dir, "text")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); !errors.Is(err, ErrNotExecutable) {
		t.Errorf("Read(text) = %v, want ErrNotExecutable", err)
	}
}

func TestPkgConfigRequires(t *testing.T) {
	pc := `prefix=/ro/x-amd64-1-1/out
Requires=not a field
Name: x
Description: a: b
Requires: glib-2.0 >= 2.50, zlib,gio-2.0>=2.1 libfoo>= 3 bar
Requires.private: libxcrypt
Libs: -L${prefix}/lib -lx
`
	got, err := PkgConfigRequires(strings.NewReader(pc))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"glib-2.0", "zlib", "gio-2.0", "libfoo", "bar", "libxcrypt"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PkgConfigRequires (-want +got):\n%s", diff)
	}
}
