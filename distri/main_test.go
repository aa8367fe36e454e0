package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// TestRunsVerb checks that "distri VERB" runs the distri-VERB next to it,
// passing arguments and exit codes through.
func TestRunsVerb(t *testing.T) {
	distri := distritest.Binary(t, "distri.dev/distri/distri")
	distritest.Binary(t, "distri.dev/distri/distri-build") // built beside distri
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "version of the verb", args: []string{"build", "--version"}, wantOut: "distri-build version"},
		{name: "flags pass through", args: []string{"build", "check", "--frob"}, wantCode: 2, wantOut: "unknown flag: --frob"},
		{name: "own help lists verbs", args: []string{"--help"}, wantOut: "install"},
		{name: "unknown verb", args: []string{"frob"}, wantCode: 2, wantOut: `unknown command "frob"`},
		{name: "a path is no plugin", args: []string{"../bin/true"}, wantCode: 2, wantOut: `unknown command "../bin/true"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runDistri(t, distri, []string{"PATH=/nonexistent"}, "", tt.args...) // only what is beside distri counts
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("distri %q = exit %d, %q; want exit %d, output containing %q", tt.args, code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}

func runDistri(t *testing.T, bin string, env []string, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// TestPlugins checks git-style plugins: an unknown verb runs distri-VERB
// from $PATH with the remaining arguments; a distri-VERB in $PATH never
// replaces a built-in verb.
func TestPlugins(t *testing.T) {
	distri := distritest.Binary(t, "distri.dev/distri/distri")
	distritest.Binary(t, "distri.dev/distri/distri-install")
	dir := t.TempDir()
	for _, name := range []string{"distri-frob", "distri-search", "distri-install"} {
		script := fmt.Sprintf("#!/bin/sh\necho %s plugin \"$@\"\nexit 3\n", name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + dir + ":/usr/bin:/bin"}
	code, out := runDistri(t, distri, env, "", "frob", "--x", "y")
	if code != 3 || out != "distri-frob plugin --x y\n" {
		t.Errorf("distri frob --x y = exit %d, %q; want the plugin's exit 3 and its output", code, out)
	}
	root := t.TempDir()
	code, out = runDistri(t, distri, env, "", "search", "--root", root, "--installed", "x")
	if code != 0 || strings.Contains(out, "plugin") {
		t.Errorf("distri search = exit %d, %q: a distri-search in $PATH replaced the built-in verb", code, out)
	}
}

// TestVersion checks that every binary reports the same version, never
// "(devel)", and that -v is never --version.
func TestVersion(t *testing.T) {
	want := ""
	for _, c := range []string{"distri", "distri-build", "distri-install", "distri-fuse", "distri-mkimage", "distri-init", "distri-mirror"} {
		bin := distritest.Binary(t, "distri.dev/distri/"+c)
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatalf("%s --version: %v", c, err)
		}
		v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), c+" version ")
		if !ok || strings.Contains(v, "devel") || v == "" {
			t.Errorf("%s --version = %q", c, out)
		}
		if want == "" {
			want = v
		} else if v != want {
			t.Errorf("%s --version = %q, distri's is %q", c, v, want)
		}
		out, _ = exec.Command(bin, "-v").CombinedOutput()
		if strings.Contains(string(out), " version ") {
			t.Errorf("%s -v printed the version: %q", c, out)
		}
	}
}

// TestPipelines runs the README's pipelines through a real shell with the
// built binaries: names and paths flow from one command to the next.
func TestPipelines(t *testing.T) {
	distri := distritest.Binary(t, "distri.dev/distri/distri")
	distritest.Binary(t, "distri.dev/distri/distri-install")
	r := mirrortest.NewRepo(t,
		mirrortest.Package{Name: "lua-amd64-5.4-1", Files: map[string]string{"out/bin/lua": "lua\n"}},
		mirrortest.Package{Name: "luarocks-amd64-3-1", Deps: []string{"lua-amd64-5.4-1"}, Files: map[string]string{"out/bin/luarocks": "rocks\n"}},
		mirrortest.Package{Name: "zsh-amd64-5-1"},
	)
	root := t.TempDir()
	g := fmt.Sprintf("--root %s --repo %s --pubkey %s", root, r.Dir, r.PubFile(t))
	env := []string{"PATH=" + filepath.Dir(distri) + ":/usr/bin:/bin", "G=" + g}
	for _, tt := range []struct{ script, want string }{
		{`distri list $G --available lua | distri install $G -`, "lua-amd64-5.4-1\nluarocks-amd64-3-1\n"},
		{`distri list $G | wc -l`, "2\n"},
		{`distri search $G rocks | distri info $G - | grep ^depends`, "depends: lua-amd64-5.4-1\n"},
		{`distri files $G luarocks | grep /out/bin/ | xargs distri owner $G`, "luarocks-amd64-3-1\n"},
		{`distri files $G lua luarocks | xargs distri owner $G | sort -u`, "lua-amd64-5.4-1\nluarocks-amd64-3-1\n"},
		{`echo luarocks | distri remove $G --dry-run - && distri list $G | wc -l`, "luarocks-amd64-3-1\n2\n"},
		{`echo luarocks | distri remove $G - && distri gc $G`, "luarocks-amd64-3-1\n"},
	} {
		cmd := exec.Command("/bin/sh", "-ec", tt.script)
		cmd.Env = env
		var errb strings.Builder
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil || string(out) != tt.want {
			t.Errorf("sh -c %q = %q, %v (stderr %q); want %q", tt.script, out, err, errb.String(), tt.want)
		}
	}
}

// TestComplete checks that "distri VERB <TAB>" completes package names
// through distri-install's own completion.
func TestComplete(t *testing.T) {
	distri := distritest.Binary(t, "distri.dev/distri/distri")
	distritest.Binary(t, "distri.dev/distri/distri-install")
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "lua-amd64-5.4-1"}, mirrortest.Package{Name: "luajit-amd64-2-1"})
	root := t.TempDir()
	args := []string{"__complete", "install", "--root", root, "--repo", r.Dir, "--pubkey", r.PubFile(t), "lua"}
	code, out := runDistri(t, distri, []string{"PATH=/nonexistent"}, "", args...)
	if code != 0 || !strings.Contains(out, "lua\n") || !strings.Contains(out, "luajit\n") || !strings.Contains(out, "lua-amd64-5.4-1\n") {
		t.Errorf("distri %q = exit %d, %q; want lua, luajit and full names", args, code, out)
	}
}

// TestManPages generates the man pages as make man does (every binary's
// __man into one folder, distri first) and checks that every binary and
// subcommand has one, and that a binary's own page replaces the page of
// distri's verb of the same name (distri build → distri-build.1).
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"distri", "distri-build", "distri-install", "distri-fuse", "distri-mkimage", "distri-init", "distri-mirror"} {
		bin := distritest.Binary(t, "distri.dev/distri/"+c)
		if out, err := exec.Command(bin, "__man", dir).CombinedOutput(); err != nil {
			t.Fatalf("%s __man: %v\n%s", c, err, out)
		}
	}
	for _, page := range []string{"distri.1", "distri-remove.1", "distri-owner.1", "distri-install.1", "distri-install-owner.1",
		"distri-install-reset.1", "distri-build.1", "distri-build-check.1", "distri-fuse-owner.1", "distri-mkimage-disk.1", "distri-mirror-index.1", "distri-init.1"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Errorf("no man page %s: %v", page, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "distri-build.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "distri-build-check(1)") {
		t.Errorf("distri-build.1 is distri's wrapper page, not distri-build's:\n%s", b)
	}
}
