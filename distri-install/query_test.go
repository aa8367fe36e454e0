package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/fusefs"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// runIn runs distri-install in-process with stdin and args.
func runIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	stdio := cli.Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb}
	root := newRootCmd(stdio)
	root.SetArgs(args)
	code := cli.Run(t.Context(), root, stdio)
	return code, out.String(), errb.String()
}

// queryRepo is a repository where two packages provide bin/tool (one
// wins by name, as distri-fuse resolves it) and hello depends on libc.
func queryRepo(t *testing.T) *mirrortest.Repo {
	return mirrortest.NewRepo(t,
		mirrortest.Package{Name: "libc-amd64-1-2", Files: map[string]string{"out/lib/libc.so.6": "ELF"}},
		mirrortest.Package{Name: "hello-amd64-2.12-3", Deps: []string{"libc-amd64-1-2"},
			Files:    map[string]string{"out/bin/hello": "#!/bin/sh\n", "out/share/doc/hello/README": "hi\n"},
			Symlinks: map[string]string{"bin/hello": "../out/bin/hello"}},
		mirrortest.Package{Name: "atool-amd64-1-1", Files: map[string]string{"bin/tool": "a\n"}},
		mirrortest.Package{Name: "ztool-amd64-1-1", Files: map[string]string{"bin/tool": "z\n"}},
		mirrortest.Package{Name: "help-amd64-1-1"},
	)
}

func TestQueries(t *testing.T) {
	r := queryRepo(t)
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	if code, _, errs := runIn(t, "", append(g, "hello", "ztool", "atool")...); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	// The root's /bin is a symlink into /ro, as on an image.
	if err := os.Symlink("ro/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "usr/up")); err != nil { // absolute: the root's /, not the host's
		t.Fatal(err)
	}
	if err := os.Symlink("loop", filepath.Join(root, "loop")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		wantCode    int
		wantOut     string
		wantErr     string
	}{
		// search matches anywhere in the name, not only a prefix, ignoring case.
		{name: "search substring", args: []string{"search", "ELL"}, wantOut: "hello-amd64-2.12-3\n"},
		{name: "search available", args: []string{"search", "elp"}, wantOut: "help-amd64-1-1\n"},
		{name: "search installed only", args: []string{"search", "--installed", "el"}, wantOut: "hello-amd64-2.12-3\n"},
		{name: "search provides", args: []string{"search", "--installed", "libc.so"}, wantOut: "libc-amd64-1-2\n"},
		{name: "info installed", args: []string{"info", "hello"}, wantOut: fmt.Sprintf(
			"name: hello-amd64-2.12-3\nversion: 2.12-3\nsize: %d\ninstalled: true\nrepository: %s\ndepends: libc-amd64-1-2\nrequired-by: \n",
			fileSize(t, filepath.Join(root, "roimg/hello-amd64-2.12-3.squashfs")), r.Dir)},
		{name: "info reverse deps", args: []string{"info", "libc-amd64"}, wantOut: "required-by: hello-amd64-2.12-3\n"},
		{name: "info available", args: []string{"info", "help-amd64-1-1"}, wantOut: "installed: false\n"},
		{name: "info stdin", stdin: "help\n\nlibc\n", args: []string{"info", "-"}, wantOut: "name: help-amd64-1-1\n"},
		{name: "info unknown", args: []string{"info", "hel"}, wantCode: 1, wantErr: `unknown package "hel" (did you mean hello-amd64-2.12-3, help-amd64-1-1?)`},
		{name: "files", args: []string{"files", "hello"}, wantOut: "/ro/hello-amd64-2.12-3/bin/hello\n/ro/hello-amd64-2.12-3/out/bin/hello\n/ro/hello-amd64-2.12-3/out/share/doc/hello/README\n"},
		{name: "files not installed", args: []string{"files", "help"}, wantCode: 1, wantErr: "not installed"},
		{name: "owner exchange", args: []string{"owner", "/ro/bin/hello"}, wantOut: "hello-amd64-2.12-3\n"},
		{name: "owner through symlink", args: []string{"owner", "/bin/hello"}, wantOut: "hello-amd64-2.12-3\n"},
		{name: "owner absolute symlink stays in root", args: []string{"owner", "/usr/up/bin/hello"}, wantOut: "hello-amd64-2.12-3\n"},
		{name: "owner conflict", args: []string{"owner", "/ro/bin/tool"}, wantOut: "atool-amd64-1-1\n"},
		{name: "owner lib", args: []string{"owner", "/ro/lib/libc.so.6"}, wantOut: "libc-amd64-1-2\n"},
		{name: "owner exchange dir", args: []string{"owner", "/ro/share/doc"}, wantOut: "hello-amd64-2.12-3\n"},
		{name: "owner exchange dir without the shadowed", args: []string{"owner", "/ro/bin"}, wantOut: "atool-amd64-1-1\nhello-amd64-2.12-3\n"},
		{name: "owner package dir", args: []string{"owner", "/ro/libc-amd64-1-2/out/lib"}, wantOut: "libc-amd64-1-2\n"},
		{name: "owner stdin", stdin: "/ro/bin/hello\n/ro/lib/libc.so.6\n", args: []string{"owner", "-"}, wantOut: "hello-amd64-2.12-3\nlibc-amd64-1-2\n"},
		{name: "owner nobody", args: []string{"owner", "/ro/bin/nothing"}, wantCode: 1, wantErr: "no package provides it"},
		{name: "owner outside ro", args: []string{"owner", "/etc/passwd"}, wantCode: 1, wantErr: "not below /ro"},
		{name: "owner loop", args: []string{"owner", "/loop/x"}, wantCode: 1, wantErr: "too many symlinks"},
		{name: "stdin twice", args: []string{"info", "-", "-"}, wantCode: 2, wantErr: "given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runIn(t, tt.stdin, append(slices.Clone(g), tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, errs)
			}
			if !strings.Contains(out, tt.wantOut) || (tt.wantOut == "") != (out == "") {
				t.Errorf("stdout %q, want it to contain %q", out, tt.wantOut)
			}
			if strings.HasPrefix(tt.name, "search") || strings.HasPrefix(tt.name, "owner") || tt.name == "files" {
				if out != tt.wantOut {
					t.Errorf("stdout %q, want exactly %q", out, tt.wantOut)
				}
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errs, tt.wantErr)
			}
		})
	}
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// snapshot describes every entry below dir: path, mode, size, mtime and
// content hash; two equal snapshots mean nothing was changed or created.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(c)
			sum = hex.EncodeToString(h[:])
		}
		fmt.Fprintf(&b, "%s %v %d %d %s\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDryRun checks that --dry-run prints what the real command then
// does, and changes nothing: the root is byte-identical, nothing is
// created (not even the store or the index time stamps).
func TestDryRun(t *testing.T) {
	r := queryRepo(t)
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	step := func(args ...string) string {
		t.Helper()
		before := snapshot(t, root)
		code, dry, errs := runIn(t, "", append(append(slices.Clone(g), args...), "--dry-run")...)
		if code != 0 {
			t.Fatalf("%q --dry-run: exit %d: %s", args, code, errs)
		}
		if after := snapshot(t, root); after != before {
			t.Fatalf("%q --dry-run changed the root:\nbefore:\n%s\nafter:\n%s", args, before, after)
		}
		code, real, errs := runIn(t, "", append(slices.Clone(g), args...)...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errs)
		}
		if dry != real {
			t.Errorf("%q --dry-run printed %q, the command %q", args, dry, real)
		}
		return real
	}
	if out := step("hello", "help"); out != "hello-amd64-2.12-3\nhelp-amd64-1-1\nlibc-amd64-1-2\n" {
		t.Errorf("install printed %q", out)
	}
	r.Add(t, mirrortest.Package{Name: "hello-amd64-2.12-4", Deps: []string{"libc-amd64-1-2"}})
	if out := step("update"); out != "hello-amd64-2.12-4\n" {
		t.Errorf("update printed %q", out)
	}
	if out := step("remove", "help"); out != "help-amd64-1-1\n" {
		t.Errorf("remove printed %q", out)
	}
	if out := step("gc"); out != "hello-amd64-2.12-3\n" {
		t.Errorf("gc printed %q", out)
	}
	// Remove a package another one needs: kept, in both.
	if out := step("remove", "libc"); out != "" {
		t.Errorf("remove libc printed %q", out)
	}
}

// TestReadOnlyVerbs runs the read-only verbs on an empty root and checks
// that they create nothing there: no store, no lock, no index state.
func TestReadOnlyVerbs(t *testing.T) {
	r := queryRepo(t)
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	for _, args := range [][]string{
		{"list"}, {"list", "--available"}, {"search", "hel"}, {"info", "hello"},
		{"files", "hello"}, {"owner", "/ro/bin/hello"},
		{"hello", "--dry-run"}, {"update", "--dry-run"}, {"env"},
	} {
		runIn(t, "", append(slices.Clone(g), args...)...)
		if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
			t.Errorf("%q created %v in the root (%v)", args, ents, err)
		}
	}
	// Without --root: the host's / (as root, who could create /roimg).
	distritest.NeedRoot(t)
	for _, p := range []string{"/roimg", "/var/lib/distri"} {
		if _, err := os.Lstat(p); err == nil {
			distritest.Skip(t, "%s exists on this machine: cannot see whether the verbs create it", p)
		}
	}
	for _, args := range [][]string{{"list"}, {"search", "--installed", "x"}, {"info", "x"}, {"files", "x"}, {"owner", "/ro/bin/x"},
		{"list", "--available", "--repo", r.Dir, "--pubkey", r.PubFile(t)}} {
		runIn(t, "", args...)
		for _, p := range []string{"/roimg", "/var/lib/distri"} {
			if _, err := os.Lstat(p); err == nil {
				os.RemoveAll(p)
				t.Errorf("%q without --root created %s", args, p)
			}
		}
	}
}

// TestComplete checks that shell completion offers package names,
// installed and available.
func TestComplete(t *testing.T) {
	r := queryRepo(t)
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	if code, _, errs := runIn(t, "", append(g, "libc")...); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	_, out, _ := runIn(t, "", append([]string{"__complete"}, append(g, "he")...)...)
	for _, want := range []string{"hello\n", "help\n", "hello-amd64-2.12-3\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("install completion %q lacks %q", out, want)
		}
	}
	_, out, _ = runIn(t, "", append([]string{"__complete"}, append(g, "remove", "")...)...)
	if !strings.Contains(out, "libc\n") || strings.Contains(out, "hello") {
		t.Errorf("remove completion %q: want installed names only", out)
	}
}

// TestReset checks that reset returns the store to a saved list, that
// --dry-run prints the same and changes nothing, and that an empty list
// (a failed pipeline) or a name that is not full deletes nothing.
func TestReset(t *testing.T) {
	r := queryRepo(t)
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	if code, _, errs := runIn(t, "", append(slices.Clone(g), "hello")...); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	_, before, _ := runIn(t, "", append(slices.Clone(g), "list")...)
	saved := filepath.Join(t.TempDir(), "before.txt")
	if err := os.WriteFile(saved, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runIn(t, "", append(slices.Clone(g), "atool")...); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		wantErr     string
	}{
		{name: "empty list", stdin: "\n", args: []string{"reset", "-"}, wantErr: "refusing to delete every package"},
		{name: "not a full name", stdin: "hello\n", args: []string{"reset", "-"}, wantErr: `"hello" is not a full package name`},
		{name: "missing file", args: []string{"reset", filepath.Join(root, "nothing")}, wantErr: "no such file"},
	} {
		snap := snapshot(t, root)
		code, out, errs := runIn(t, tt.stdin, append(slices.Clone(g), tt.args...)...)
		if code == 0 || out != "" || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want an error containing %q", tt.name, code, out, errs, tt.wantErr)
		}
		if snapshot(t, root) != snap {
			t.Errorf("%s: the root changed", tt.name)
		}
	}
	snap := snapshot(t, root)
	_, dry, _ := runIn(t, "", append(slices.Clone(g), "reset", "--dry-run", saved)...)
	if snapshot(t, root) != snap {
		t.Error("reset --dry-run changed the root")
	}
	code, out, errs := runIn(t, before, append(slices.Clone(g), "reset", "-")...)
	if code != 0 || out != "atool-amd64-1-1\n" || dry != out {
		t.Errorf("reset = exit %d, %q (stderr %q), --dry-run said %q; want atool-amd64-1-1", code, out, errs, dry)
	}
	if _, after, _ := runIn(t, "", append(slices.Clone(g), "list")...); after != before {
		t.Errorf("after reset the store lists %q, want %q", after, before)
	}
	// atool left the installed set: update does not bring it back.
	if _, out, _ := runIn(t, "", append(slices.Clone(g), "update", "--dry-run")...); out != "" {
		t.Errorf("update --dry-run after reset = %q, want nothing", out)
	}
}

func TestEnv(t *testing.T) {
	root := t.TempDir()
	code, out, _ := runIn(t, "", "--root", root, "env", "DISTRI_STORE", "DISTRI_ROOT")
	if code != 0 || out != filepath.Join(root, "roimg")+"\n"+root+"\n" {
		t.Errorf("env = %d, %q", code, out)
	}
	if code, _, errs := runIn(t, "", "--root", root, "env", "NOPE"); code != 2 || !strings.Contains(errs, "DISTRI_STORE") {
		t.Errorf("env NOPE = %d, %q; want a usage error naming the known names", code, errs)
	}
}

// TestOwnerMatchesMount serves a store with distri-fuse and checks that
// owner without the mount (reading the store) answers what the mount
// answers, for exchange entries with a conflict, a package with two
// revisions (only the newest takes part) and exchange directories; and
// that owner with --root / asks the mount.
func TestOwnerMatchesMount(t *testing.T) {
	distritest.NeedFUSE(t)
	fuse := distritest.Binary(t, "distri.dev/distri/distri-fuse")
	r := queryRepo(t)
	r.Add(t, mirrortest.Package{Name: "hello-amd64-2.12-4", Deps: []string{"libc-amd64-1-2"},
		Files:    map[string]string{"out/bin/hello2": "#!/bin/sh\n", "out/share/doc/hello/README": "hi\n"},
		Symlinks: map[string]string{"bin/hello2": "../out/bin/hello2"}})
	root := t.TempDir()
	g := []string{"--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t)}
	if code, _, errs := runIn(t, "", append(slices.Clone(g), "hello-amd64-2.12-3", "hello", "atool", "ztool")...); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	mnt := filepath.Join(root, "ro")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	cmd := exec.Command(fuse, "--store", filepath.Join(root, "roimg"), "--ctl-socket", filepath.Join(t.TempDir(), "ctl.sock"), "--readiness-fd", "3", mnt)
	cmd.ExtraFiles = []*os.File{readyW}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		unix.Unmount(mnt, unix.MNT_DETACH)
	})
	if _, err := bufio.NewReader(ready).ReadString('\n'); err != nil {
		t.Fatalf("distri-fuse readiness: %v (stderr %q)", err, stderr.String())
	}
	for _, p := range []string{"/ro/bin/tool", "/ro/bin/hello2", "/ro/bin/hello", "/ro/lib/libc.so.6", "/ro/share/doc", "/ro/bin", "/ro/hello-amd64-2.12-3/out/bin/hello", "/ro/bin/nothing"} {
		mounted, mErr := fusefs.Owner(filepath.Join(root, p))
		// Without the mount: the store of --root.
		code, out, errs := runIn(t, "", "--root", root, "owner", p)
		var stored []string
		if code == 0 {
			stored = strings.Split(strings.TrimSpace(out), "\n")
		}
		if (mErr == nil) != (code == 0) || !slices.Equal(mounted, stored) {
			t.Errorf("owner %s: the mount says %q, %v; the store %q, exit %d (%s)", p, mounted, mErr, stored, code, strings.TrimSpace(errs))
		}
		// With --root /, the path as the host sees it: the mount answers.
		if mErr == nil {
			code, out, errs := runIn(t, "", "--root", "/", "owner", filepath.Join(root, p))
			if code != 0 || out != strings.Join(mounted, "\n")+"\n" {
				t.Errorf("owner --root / %s = exit %d, %q (%s); want the mount's %q", filepath.Join(root, p), code, out, errs, mounted)
			}
		}
	}
}
