package rootfs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/rootfs"
)

var (
	glibc1 = mirrortest.Package{Name: "glibc-amd64-2.36-1", Files: map[string]string{
		"out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "old loader\n",
	}}
	glibc2 = mirrortest.Package{Name: "glibc-amd64-2.36-2", Files: map[string]string{
		"out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "loader\n",
		"out/lib/x86_64-linux-gnu/libc.so.6":            "libc\n",
	}}
	bash = mirrortest.Package{Name: "bash-amd64-5.2.15-1", Deps: []string{"glibc-amd64-2.36-2"}, Files: map[string]string{
		"out/bin/bash":     "#!/bin/sh\n",
		"etc/bash.bashrc":  "PS1='# '\n",
		"etc/passwd":       "package's passwd\n",
		"out/share/README": "bash\n",
	}}
	hello = mirrortest.Package{Name: "hello-amd64-2.12-1"}
)

// fakeBinaries writes stand-ins for distri-init and distri-fuse.
func fakeBinaries(t *testing.T) (init, fuse string) {
	t.Helper()
	dir := t.TempDir()
	init, fuse = filepath.Join(dir, "distri-init"), filepath.Join(dir, "distri-fuse")
	for _, p := range []string{init, fuse} {
		if err := os.WriteFile(p, []byte("binary "+filepath.Base(p)+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return init, fuse
}

func makeTree(t *testing.T, r *mirrortest.Repo, pkgs ...string) string {
	t.Helper()
	init, fuse := fakeBinaries(t)
	dir := filepath.Join(t.TempDir(), "root")
	if _, err := rootfs.Make(t.Context(), rootfs.Options{
		Dir:         dir,
		Packages:    pkgs,
		Repos:       []string{r.Dir},
		PubKeyFiles: []string{r.PubFile(t)},
		Init:        init,
		Fuse:        fuse,
		Arch:        "amd64",
	}); err != nil {
		t.Fatalf("Make: %v", err)
	}
	return dir
}

func TestMake(t *testing.T) {
	r := mirrortest.NewRepo(t, glibc1, glibc2, bash, hello)
	dir := makeTree(t, r, "bash", "hello")

	for name, want := range map[string]string{
		"bin": "/ro/bin", "sbin": "/ro/bin", "lib": "/ro/lib", "include": "/ro/include",
		"share": "/ro/share", "usr": "/", "var/run": "/run",
		"lib64/ld-linux-x86-64.so.2": "/ro/glibc-amd64-2.36-2/out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	} {
		if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v, want %q", name, got, err, want)
		}
	}
	for name, want := range map[string]os.FileMode{
		"ro": os.ModeDir | 0o755, "proc": os.ModeDir | 0o555, "sys": os.ModeDir | 0o555,
		"dev": os.ModeDir | 0o755, "run": os.ModeDir | 0o755, "boot": os.ModeDir | 0o755,
		"tmp": os.ModeDir | os.ModeSticky | 0o777, "var/tmp": os.ModeDir | os.ModeSticky | 0o777,
		"root": os.ModeDir | 0o700, "init": 0o755, "distri-fuse": 0o755, "etc/shadow": 0o600,
	} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode(); got != want {
			t.Errorf("mode of %s = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"init":                           "binary distri-init\n",
		"distri-fuse":                    "binary distri-fuse\n",
		"etc/hostname":                   "distri0\n",
		"etc/distri/repos.d/distri.repo": r.Dir + "\n",
		"etc/bash.bashrc":                "PS1='# '\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v, want %q", name, b, err, want)
		}
	}
	for name, want := range map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/bash\n",
		"etc/shadow":      "root:" + rootfs.RootPasswordHash + ":",
		"etc/group":       "root:x:0:\n",
		"etc/os-release":  "ID=distri\n",
		"etc/fstab":       "LABEL=distri-root / ext4 ",
		"roimg/installed": "\nbash-amd64\nhello-amd64\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s = %q, %v, want it to contain %q", name, b, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/distri/keys/repo.pub")); err != nil || len(b) == 0 {
		t.Errorf("etc/distri/keys/repo.pub: %q, %v", b, err)
	}
	var store []string
	entries, err := os.ReadDir(filepath.Join(dir, "roimg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".squashfs") {
			store = append(store, e.Name())
		}
	}
	if got, want := strings.Join(store, " "), "bash-amd64-5.2.15-1.squashfs glibc-amd64-2.36-2.squashfs hello-amd64-2.12-1.squashfs"; got != want {
		t.Errorf("roimg images = %s, want %s", got, want)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "roimg"), &st); err != nil || st.Mtim.Sec != rootfs.Epoch.Unix() {
		t.Errorf("mtime of roimg = %d, %v, want %d", st.Mtim.Sec, err, rootfs.Epoch.Unix())
	}
}

// TestMakeDeterministic makes the same tree twice.
func TestMakeDeterministic(t *testing.T) {
	r := mirrortest.NewRepo(t, glibc2, bash)
	a, b := makeTree(t, r, "bash"), makeTree(t, r, "bash")
	// The two trees' fake binaries and keys come from different temp
	// folders, with the same contents.
	if diff := distritest.DiffTrees(a, b); len(diff) > 0 {
		t.Errorf("two trees from the same inputs differ:\n%s", strings.Join(diff, "\n"))
	}
}

// TestMakeNoGlibc checks the /lib64 fallback and the shell without bash.
func TestMakeNoGlibc(t *testing.T) {
	r := mirrortest.NewRepo(t, hello)
	dir := makeTree(t, r, "hello")
	if got, err := os.Readlink(filepath.Join(dir, "lib64")); err != nil || got != "/ro/lib64" {
		t.Errorf("readlink lib64 = %q, %v, want /ro/lib64", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/passwd")); err != nil || !strings.HasPrefix(string(b), "root:x:0:0:root:/root:/bin/sh\n") {
		t.Errorf("etc/passwd = %q, %v", b, err)
	}
}

func TestMakeUnknownPackage(t *testing.T) {
	r := mirrortest.NewRepo(t, hello)
	init, fuse := fakeBinaries(t)
	_, err := rootfs.Make(t.Context(), rootfs.Options{
		Dir: t.TempDir(), Packages: []string{"nosuchpkg"}, Repos: []string{r.Dir},
		PubKeyFiles: []string{r.PubFile(t)}, Init: init, Fuse: fuse, Arch: "amd64",
	})
	if err == nil || !strings.Contains(err.Error(), "nosuchpkg") {
		t.Errorf("Make(nosuchpkg) = %v, want an error naming it", err)
	}
}

// TestRootPasswordHash checks the precomputed hash against openssl.
func TestRootPasswordHash(t *testing.T) {
	openssl := distritest.NeedTool(t, "openssl")
	out, err := exec.Command(openssl, "passwd", "-6", "-salt", "distri", "peace").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), rootfs.RootPasswordHash; got != want {
		t.Errorf("openssl passwd -6 -salt distri peace = %q, want %q", got, want)
	}
}
