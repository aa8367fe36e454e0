package tour

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pkgname"
)

// basePkgs is the Makefile's IMAGE_PKGS: the base system the main job
// puts on distri-disk.img, the meta-package pkgs/base (its runtime deps
// are the kernel, the boot loader, shells, core tools, login and distri).
var basePkgs = []string{"base"}

// tourPkgs are installed during the tour, from the repository disk.
var tourPkgs = []string{"i3status", "gcc", "make", "autoconf", "automake", "lua"}

// The suite's binaries, packed as the package distri (as `make repo` does).
var cmds = []string{"distri", "distri-build", "distri-install", "distri-fuse", "distri-mkimage", "distri-init", "distri-mirror"}

// helloRecipe is GNU hello's recipe: its source tarball goes onto the
// repository disk.
const helloRecipe = "../pkgs/hello"

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("%s %s: %v", filepath.Base(name), args[0], time.Since(start).Round(time.Millisecond))
	return string(out)
}

// selectRecipes copies the recipes of names and of everything they need
// (runtime_dep, dep, the builders' implicit deps) from pkgsDir into a new
// recipe tree, so that batch builds only those.
func selectRecipes(t *testing.T, pkgsDir string, names []string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "pkgs")
	seen := map[string]bool{}
	todo := append([]string(nil), names...)
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if n, err := pkgname.Parse(name); err == nil {
			name = n.Pkg
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		dir := filepath.Join(pkgsDir, name)
		recipes, _ := filepath.Glob(filepath.Join(dir, "build.textproto"))
		versions, _ := filepath.Glob(filepath.Join(dir, "*", "build.textproto"))
		recipes = append(recipes, versions...)
		if len(recipes) == 0 {
			continue // built outside pkgs/, e.g. the package distri
		}
		for _, f := range recipes {
			r, err := build.ReadRecipe(filepath.Dir(f))
			if err != nil {
				t.Fatal(err)
			}
			todo = append(todo, r.GetRuntimeDep()...)
			todo = append(todo, r.GetDep()...)
			todo = append(todo, build.BuilderDeps(r.Build)...)
		}
		if err := os.CopyFS(filepath.Join(dst, name), os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// buildRepo packs this suite as distri and builds the base and tour
// packages into a repository kept in the test cache (batch rebuilds only
// what is stale), as `make repo` does, and signs the index with a fresh
// key. It returns the
// repository and the public key.
func buildRepo(t *testing.T, cache string, bins map[string]string) (repo, pub string) {
	t.Helper()
	repo = filepath.Join(cache, "tour", "repo")
	pkgs := selectRecipes(t, "../pkgs", append(append([]string(nil), basePkgs...), tourPkgs...))

	// distri first: base's runtime dep without a recipe comes from the
	// repository.
	stage := filepath.Join(t.TempDir(), "distri")
	for _, d := range []string{"out/bin", "bin"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		b, err := os.ReadFile(bins[c])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stage, "out/bin", c), b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../out/bin/"+c, filepath.Join(stage, "bin", c)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, bins["distri-build"], "pack", "--name", "distri-amd64-0-1", stage, "-o", filepath.Join(repo, "pkg"))
	start := time.Now()
	run(t, bins["distri-build"], "batch", "--repo", repo, "--cache", filepath.Join(cache, "sources"),
		"--jobs", "2", "--log-dir", filepath.Join(repo, "log", "batch"), pkgs)
	t.Logf("batch: %v", time.Since(start).Round(time.Second))
	key := filepath.Join(t.TempDir(), "distri")
	run(t, bins["distri-mirror"], "keygen", "-o", key)
	pub = key + ".pub"
	b, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "distri.pub"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, bins["distri-mirror"], "index", "--key", key+".key", repo)
	return repo, pub
}

// repoDisk writes an ext4 image holding the repository and GNU hello's
// source tarball at its top.
func repoDisk(t *testing.T, cache, repo string) string {
	t.Helper()
	r, err := build.ReadRecipe(helloRecipe)
	if err != nil {
		t.Fatal(err)
	}
	uris, _ := debian.DefaultSources.ArchiveURIs()
	f := &source.Fetcher{CacheDir: filepath.Join(cache, "sources"), ArchiveURIs: uris}
	tarball, err := f.Fetch(context.Background(), r.File, r.Dir, r.GetHash(), []string{r.GetSource()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "hello_2.10.orig.tar.gz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var size int64
	filepath.Walk(repo, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return nil
	})
	img := filepath.Join(t.TempDir(), "repo.img")
	run(t, distritest.NeedTool(t, "mkfs.ext4"), "-q", "-F", "-t", "ext4", "-L", "distri-repo", "-d", repo, img,
		fmt.Sprintf("%dK", (size*5/4+64<<20)>>10))
	return img
}

// shell runs commands on a logged-in console and reads their output.
type shell struct {
	t *testing.T
	c *distritest.Console
	n int
}

// run types cmd and returns its output (both streams) and exit status.
func (s *shell) run(cmd string, timeout time.Duration) (string, int) {
	s.t.Helper()
	s.n++
	// The markers are split in the typed line, so its echo never matches.
	begin, end := fmt.Sprintf("@@B%d@@", s.n), fmt.Sprintf("@@E%d=", s.n)
	start := time.Now()
	s.c.Send(fmt.Sprintf(`echo "@@B""%d@@"; %s 2>&1; echo "@@E""%d=$?@@"`, s.n, cmd, s.n))
	s.c.Expect("^"+regexp.QuoteMeta(begin), timeout)
	m := s.c.Expect("^"+regexp.QuoteMeta(end)+`(\d+)@@`, timeout)
	log := s.c.Log()
	i := strings.LastIndex(log, "\n"+begin)
	j := strings.LastIndex(log, "\n"+end)
	var out string
	if i >= 0 && j > i {
		out = strings.TrimPrefix(log[i+1+len(begin):j], "\r\n")
		out = strings.ReplaceAll(out, "\r", "")
	}
	var rc int
	fmt.Sscan(m[1], &rc)
	s.t.Logf("$ %s → %d (%v)\n%s", cmd, rc, time.Since(start).Round(time.Millisecond), out)
	return out, rc
}

// must runs cmd and fails the test unless it succeeds.
func (s *shell) must(cmd string, timeout time.Duration) string {
	s.t.Helper()
	out, rc := s.run(cmd, timeout)
	if rc != 0 {
		s.t.Fatalf("%s: exit status %d:\n%s", cmd, rc, out)
	}
	return out
}

func login(t *testing.T, c *distritest.Console) *shell {
	t.Helper()
	c.Expect(`login: $`, 3*time.Minute)
	c.Send("root")
	c.Expect(`Password: $`, time.Minute)
	c.Send("peace")
	// login flushes what was typed while it authenticated: type until
	// the shell answers. The flush may eat the start of a line and leave
	// its tail, so the line has no quotes (a tail with an odd number of
	// them would leave the shell waiting for the closing one, as seen
	// once); the backslash keeps the echoed input from matching.
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(c.Log(), "\n@@LOGGEDIN@@") {
		if time.Now().After(deadline) {
			t.Fatalf("no shell after logging in within 2m")
		}
		c.Send(`echo @@LOGGED\IN@@`)
		time.Sleep(5 * time.Second)
	}
	c.Expect(`^@@LOGGEDIN@@`, time.Minute)
	return &shell{t: t, c: c}
}

func TestTour(t *testing.T) {
	distritest.NeedRoot(t) // batch builds lua from source in the build sandbox
	distritest.NeedTool(t, "mkfs.ext4")
	distritest.NeedQEMU(t)
	distritest.NeedOVMF(t)
	start := time.Now()
	cache := distritest.CacheDir(t)
	bins := map[string]string{}
	for _, c := range cmds {
		bins[c] = distritest.StaticBinary(t, "distri.dev/distri/"+c)
	}
	repo, pub := buildRepo(t, cache, bins)
	disk2 := repoDisk(t, cache, repo)

	// The image as `make image` makes it, listing the repository disk.
	dir := t.TempDir()
	img := filepath.Join(dir, "distri-disk.img")
	mk := []string{"disk", "-v", "--serial", "--size", "3G", "--repo", repo, "--pubkey", pub,
		"--image-repo", "/mnt/repo", "--init", bins["distri-init"], "--fuse", bins["distri-fuse"]}
	run(t, bins["distri-mkimage"], append(append(mk, "-o", img), basePkgs...)...)
	t.Logf("repository and image ready after %v", time.Since(start).Round(time.Second))

	t.Run("plain", func(t *testing.T) {
		c := distritest.StartUEFIVM(t, distritest.UEFIVMOptions{Disk: img, Disks: []string{disk2}, MemoryMB: 1536, CPUs: 2})
		s := login(t, c)
		t.Logf("logged in after %v", c.Elapsed().Round(time.Second))
		// The repository disk (documented step: /etc/distri/repos.d lists /mnt/repo).
		s.must("dmesg -n 1; mkdir -p /mnt/repo && mount -o ro /dev/vdb /mnt/repo", time.Minute)

		// 1. i3status is not installed; distri install; it runs.
		if out, rc := s.run("i3status --version", time.Minute); rc == 0 {
			t.Fatalf("i3status runs before it is installed: %s", out)
		}
		s.must("distri install i3status", 5*time.Minute)
		if out := s.must("i3status --version", time.Minute); !strings.Contains(out, "i3status") {
			t.Errorf("i3status --version: %q", out)
		}
		// 2. It comes from its package directory under /ro.
		if out := s.must("readlink -f /bin/i3status", time.Minute); !regexp.MustCompile(`(?m)^/ro/i3status-amd64-2\.14[^/]*/out/bin/i3status$`).MatchString(out) {
			t.Errorf("readlink -f /bin/i3status: %q", out)
		}
		// 3. Two versions of lua side by side.
		s.must("distri install lua-amd64-5.3.6-1 lua-amd64-5.4.4-1", 5*time.Minute)
		for v, want := range map[string]string{"5.3": "Lua 5.3.6", "5.4": "Lua 5.4.4"} {
			if out := s.must("/ro/lua-amd64-"+v+"*/bin/lua -v", time.Minute); !strings.Contains(out, want) {
				t.Errorf("lua %s -v: %q, want %s", v, out, want)
			}
		}
		// 4. /bin holds every installed package's programs; /usr/include
		// is the exchange directory.
		out := s.must(`ls /bin | sort >/tmp/bin; for d in /ro/*-amd64-*/bin; do ls "$d"; done | sort -u >/tmp/pkgbin; `+
			`echo "$(wc -l </tmp/pkgbin) programs"; comm -13 /tmp/bin /tmp/pkgbin | sed 's/^/missing: /'`, time.Minute)
		if strings.Contains(out, "missing: ") || !strings.Contains(out, " programs") {
			t.Errorf("ls /bin lacks programs of installed packages:\n%s", out)
		}
		if out := s.must("ls -l /usr/include", time.Minute); !strings.Contains(out, "-> /ro/include") {
			t.Errorf("ls -l /usr/include: %q", out)
		}
		if out := s.must("ls /usr/include/", time.Minute); !strings.Contains(out, "stdio.h") {
			t.Errorf("ls /usr/include/: no stdio.h: %q", out)
		}
		// 5. A C build environment: GNU hello with ./configure && make.
		s.must("distri install gcc make autoconf automake", 10*time.Minute)
		s.must("cd /tmp && tar xzf /mnt/repo/hello_2.10.orig.tar.gz && cd hello-2.10 && ./configure >/tmp/configure.log && make -j2 >/tmp/make.log || { tail -20 /tmp/configure.log /tmp/make.log; false; }", 15*time.Minute)
		if out := s.must("./hello", time.Minute); !strings.Contains(out, "Hello, world!") {
			t.Errorf("./hello: %q", out)
		}
		t.Logf("tour done after %v in the guest", c.Elapsed().Round(time.Second))
	})

	t.Run("encrypted", func(t *testing.T) {
		pass := filepath.Join(dir, "passphrase")
		if err := os.WriteFile(pass, []byte("peace\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cimg := filepath.Join(dir, "distri-crypt.img")
		run(t, bins["distri-mkimage"], append(append(mk, "-o", cimg, "--size", "2G", "--encrypt", "--passphrase-file", pass), basePkgs...)...)
		c := distritest.StartUEFIVM(t, distritest.UEFIVMOptions{Disk: cimg, MemoryMB: 1024})
		c.Expect(`enter passphrase for `, 3*time.Minute)
		c.Send("peace")
		c.Expect(`unlocked .* with keyslot 0`, 2*time.Minute)
		s := login(t, c)
		if out := s.must("cat /etc/hostname; readlink -f /bin/bash", time.Minute); !strings.Contains(out, "/ro/bash-amd64-") {
			t.Errorf("encrypted image: %q", out)
		}
		t.Logf("encrypted image: logged in after %v", c.Elapsed().Round(time.Second))
	})
	t.Logf("whole tour: %v", time.Since(start).Round(time.Second))
}
