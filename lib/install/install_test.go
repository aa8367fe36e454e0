package install_test

import (
	"bytes"
	"errors"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/repo"
)

var (
	libc1 = mirrortest.Package{Name: "libc-amd64-1-1"}
	libc2 = mirrortest.Package{Name: "libc-amd64-1-2"}
	// hello9 and hello10: revision 10 is newer, although "2.10" < "2.12".
	hello9 = mirrortest.Package{Name: "hello-amd64-2.12-9", Deps: []string{"libc-amd64-1-1"}, Files: map[string]string{
		"out/bin/hello":       "hello 9",
		"etc/hello.conf":      "greeting=hello\n",
		"etc/hello.d/default": "default 9\n",
	}, Symlinks: map[string]string{"etc/hello.d/link": "../hello.conf"}}
	hello10 = mirrortest.Package{Name: "hello-amd64-2.10-10", Deps: []string{"libc-amd64-1-2"}, Files: map[string]string{
		"out/bin/hello":       "hello 10",
		"etc/hello.conf":      "greeting=hi\n",
		"etc/hello.d/default": "default 10\n",
	}, Symlinks: map[string]string{"etc/hello.d/link": "../hello.conf"}}
	help  = mirrortest.Package{Name: "help-amd64-1-1"}
	shell = mirrortest.Package{Name: "shell-amd64-5-3", Deps: []string{"libc-amd64-1-2"}, Blob: 100 << 10}
)

// serve serves the repository over HTTP for the test.
func serve(t *testing.T, r *mirrortest.Repo) string {
	t.Helper()
	srv := httptest.NewServer(mirror.Handler(r.Dir))
	t.Cleanup(srv.Close)
	return srv.URL
}

func newInstaller(t *testing.T, root string, logw *bytes.Buffer, pubs []string, repos ...string) *install.Installer {
	t.Helper()
	opts := install.Options{Root: root, Repos: repos, PubKeyFiles: pubs, Arch: "amd64"}
	if logw != nil {
		opts.Log = log.New(logw, "", 0)
	}
	in, err := install.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func list(t *testing.T, in *install.Installer) []string {
	t.Helper()
	got, err := in.List(t.Context(), install.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkNothingInstalled fails unless the store of root holds no package
// and no staging.
func checkNothingInstalled(t *testing.T, in *install.Installer) {
	t.Helper()
	if got := list(t, in); len(got) != 0 {
		t.Errorf("store holds %v, want nothing", got)
	}
	ents, _ := os.ReadDir(filepath.Join(in.Store().Dir(), ".staging"))
	if len(ents) != 0 {
		t.Errorf("staging holds %d entries, want none", len(ents))
	}
}

func TestInstall(t *testing.T) {
	r := mirrortest.NewRepo(t, libc1, libc2, hello9, hello10, help)
	url := serve(t, r)
	root := t.TempDir()
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, url)
	got, err := in.Install(t.Context(), []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2"}, got); diff != "" {
		t.Errorf("Install(hello) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2"}, list(t, in)); diff != "" {
		t.Errorf("store mismatch (-want +got):\n%s", diff)
	}
	for p, want := range map[string]string{"etc/hello.conf": "greeting=hi\n", "etc/hello.d/default": "default 10\n"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/hello.d/link")); err != nil || target != "../hello.conf" {
		t.Errorf("etc/hello.d/link -> %q (%v), want ../hello.conf", target, err)
	}
	// Again: nothing new. A pinned full name and an arch-qualified name.
	got, err = in.Install(t.Context(), []string{"hello-amd64", "libc-amd64-1-1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"libc-amd64-1-1"}, got); diff != "" {
		t.Errorf("second Install mismatch (-want +got):\n%s", diff)
	}
	set, err := in.Store().Installed()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64", "libc-amd64-1-1"}, set); diff != "" {
		t.Errorf("installed set mismatch (-want +got):\n%s", diff)
	}
	avail, err := in.List(t.Context(), install.ListOptions{Available: true, Prefix: "hel"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "hello-amd64-2.12-9", "help-amd64-1-1"}, avail); diff != "" {
		t.Errorf("List(available, hel) mismatch (-want +got):\n%s", diff)
	}
}

func TestNewestAcrossRepos(t *testing.T) {
	// Each repository signs with its own key; both are trusted.
	a := mirrortest.NewRepo(t, libc1, hello9, libc2)
	b := mirrortest.NewRepo(t, libc2, hello10)
	root := t.TempDir()
	in := newInstaller(t, root, nil, []string{a.PubFile(t), b.PubFile(t)}, serve(t, a), b.Dir)
	got, err := in.Install(t.Context(), []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2"}, got); diff != "" {
		t.Errorf("Install(hello) across repositories mismatch (-want +got):\n%s", diff)
	}
}

func TestUnknownPackage(t *testing.T) {
	r := mirrortest.NewRepo(t, libc1, hello9, help)
	in := newInstaller(t, t.TempDir(), nil, []string{r.PubFile(t)}, serve(t, r))
	_, err := in.Install(t.Context(), []string{"hello", "helo"})
	var ue *install.UnknownError
	if !errors.As(err, &ue) {
		t.Fatalf("Install(helo) = %v, want an *UnknownError", err)
	}
	if diff := cmp.Diff([]string{"hello", "help"}, ue.NearMisses); diff != "" {
		t.Errorf("near misses mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(err.Error(), `unknown package "helo" (did you mean hello, help?)`) {
		t.Errorf("error %q lacks the near misses", err)
	}
	checkNothingInstalled(t, in)
}

func TestBadInput(t *testing.T) {
	other, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub := filepath.Join(t.TempDir(), "other")
	if _, _, err := minisign.WriteKeyFiles(otherPub, other, false); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		pub     func(r *mirrortest.Repo) string
		tamper  string // file in pkg/ whose bytes to change
		wantErr func(t *testing.T, r *mirrortest.Repo, err error)
	}{
		{
			name: "bad signature",
			pub:  func(*mirrortest.Repo) string { return otherPub + ".pub" },
			wantErr: func(t *testing.T, r *mirrortest.Repo, err error) {
				if !errors.Is(err, minisign.ErrVerify) {
					t.Errorf("Install = %v, want ErrVerify", err)
				}
			},
		},
		{
			name:   "tampered image",
			tamper: "libc-amd64-1-2.squashfs",
			wantErr: func(t *testing.T, r *mirrortest.Repo, err error) {
				var de *repo.DigestError
				if !errors.As(err, &de) || de.File != "libc-amd64-1-2.squashfs" || de.GotSHA256 == "" || de.WantSHA256 == de.GotSHA256 {
					t.Errorf("Install = %v, want a *DigestError for libc-amd64-1-2.squashfs with both digests", err)
				}
			},
		},
		{
			name:   "tampered meta",
			tamper: "hello-amd64-2.10-10.meta.textproto",
			wantErr: func(t *testing.T, r *mirrortest.Repo, err error) {
				var de *repo.DigestError
				if !errors.As(err, &de) || de.File != "hello-amd64-2.10-10.meta.textproto" {
					t.Errorf("Install = %v, want a *DigestError for the meta", err)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mirrortest.NewRepo(t, libc2, hello10)
			if tt.tamper != "" {
				p := filepath.Join(r.Dir, "pkg", tt.tamper)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-1] ^= 1
				for _, suf := range []string{"", ".zst", ".gz"} {
					os.Remove(p + suf)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pub := r.PubFile(t)
			if tt.pub != nil {
				pub = tt.pub(r)
			}
			root := t.TempDir()
			in := newInstaller(t, root, nil, []string{pub}, serve(t, r))
			_, err := in.Install(t.Context(), []string{"hello"})
			tt.wantErr(t, r, err)
			checkNothingInstalled(t, in)
			if _, err := os.Stat(filepath.Join(root, "etc/hello.conf")); !os.IsNotExist(err) {
				t.Errorf("etc/hello.conf written by a failed install (%v)", err)
			}
		})
	}
}

func TestEtcKeepsUserChanges(t *testing.T) {
	r := mirrortest.NewRepo(t, libc1, libc2, hello9, hello10)
	root := t.TempDir()
	var logs bytes.Buffer
	in := newInstaller(t, root, &logs, []string{r.PubFile(t)}, serve(t, r))
	if _, err := in.Install(t.Context(), []string{"hello-amd64-2.12-9"}); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "etc/hello.conf")
	if err := os.WriteFile(conf, []byte("greeting=mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(t.Context(), []string{"hello-amd64-2.10-10"}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"etc/hello.conf":            "greeting=mine\n", // changed by the user: kept
		"etc/hello.conf.distri-new": "greeting=hi\n",
		"etc/hello.d/default":       "default 10\n", // unchanged: updated
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hello.d/default.distri-new")); !os.IsNotExist(err) {
		t.Errorf("an unchanged file got a .distri-new (%v)", err)
	}
	if !strings.Contains(logs.String(), "/etc/hello.conf was changed locally and is kept") || !strings.Contains(logs.String(), "/etc/hello.conf.distri-new") {
		t.Errorf("log %q does not say that hello.conf was kept", logs.String())
	}
}

func TestConcurrentInstalls(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, hello10, shell, help)
	url := serve(t, r)
	root := t.TempDir()
	pub := r.PubFile(t)
	var wg sync.WaitGroup
	for _, names := range [][]string{{"hello", "help"}, {"shell", "hello"}, {"help"}} {
		wg.Go(func() {
			in := newInstaller(t, root, nil, []string{pub}, url)
			if _, err := in.Install(t.Context(), names); err != nil {
				t.Errorf("Install(%v): %v", names, err)
			}
		})
	}
	wg.Wait()
	in := newInstaller(t, root, nil, []string{pub}, url)
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "help-amd64-1-1", "libc-amd64-1-2", "shell-amd64-5-3"}, list(t, in)); diff != "" {
		t.Errorf("store after concurrent installs mismatch (-want +got):\n%s", diff)
	}
	set, err := in.Store().Installed()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64", "help-amd64", "shell-amd64"}, set); diff != "" {
		t.Errorf("installed set mismatch (-want +got):\n%s", diff)
	}
}

func TestUpdateRemoveGC(t *testing.T) {
	r := mirrortest.NewRepo(t, libc1, hello9, help)
	url := serve(t, r)
	root := t.TempDir()
	var logs bytes.Buffer
	in := newInstaller(t, root, &logs, []string{r.PubFile(t)}, url)
	if _, err := in.Install(t.Context(), []string{"hello", "help"}); err != nil {
		t.Fatal(err)
	}
	r.Add(t, libc2, hello10)
	got, err := in.Update(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2"}, got); diff != "" {
		t.Errorf("Update mismatch (-want +got):\n%s", diff)
	}
	removed, err := in.GC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.12-9", "libc-amd64-1-1"}, removed); diff != "" {
		t.Errorf("GC after update mismatch (-want +got):\n%s", diff)
	}
	if _, err := in.Remove(t.Context(), []string{"nope"}); err == nil {
		t.Errorf("Remove(nope) = nil, want an error")
	}
	removed, err = in.Remove(t.Context(), []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10"}, removed); diff != "" {
		t.Errorf("Remove(hello) mismatch (-want +got):\n%s", diff)
	}
	removed, err = in.GC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"libc-amd64-1-2"}, removed); diff != "" {
		t.Errorf("GC after remove mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"help-amd64-1-1"}, list(t, in)); diff != "" {
		t.Errorf("store at the end mismatch (-want +got):\n%s", diff)
	}
}

func TestGCWithoutInstalledSet(t *testing.T) {
	in := newInstaller(t, t.TempDir(), nil, nil)
	if _, err := in.GC(t.Context()); err == nil || !strings.Contains(err.Error(), "no explicitly installed set") {
		t.Errorf("GC without installed set = %v, want a refusal", err)
	}
}

func TestReposFromRoot(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, hello10)
	root := t.TempDir()
	pubText, err := r.Pub().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string]string{
		"etc/distri/repos.d/main.repo": "# the test repository\n" + serve(t, r) + " priority=1\n",
		"etc/distri/keys/main.pub":     string(pubText),
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := newInstaller(t, root, nil, nil)
	if _, err := in.Install(t.Context(), []string{"hello"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2"}, list(t, in)); diff != "" {
		t.Errorf("store mismatch (-want +got):\n%s", diff)
	}
}

// TestNginxInstall installs from Debian's nginx with the configuration
// of docs/repository.md, compressed (as from a remote mirror) and as the
// installer chooses for loopback (identity).
func TestNginxInstall(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, hello10, shell)
	url := mirrortest.Nginx(t, r.Dir)
	for _, tt := range []struct {
		name      string
		encodings []string
	}{{"compressed", repo.Compressed}, {"auto", nil}} {
		t.Run(tt.name, func(t *testing.T) {
			in, err := install.New(install.Options{Root: t.TempDir(), Repos: []string{url}, PubKeyFiles: []string{r.PubFile(t)}, Arch: "amd64", Encodings: tt.encodings})
			if err != nil {
				t.Fatal(err)
			}
			got, err := in.Install(t.Context(), []string{"hello", "shell"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2", "shell-amd64-5-3"}, got); diff != "" {
				t.Errorf("Install from nginx mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiskFull(t *testing.T) {
	distritest.NeedRoot(t)
	r := mirrortest.NewRepo(t, libc2, mirrortest.Package{Name: "big-amd64-1-1", Deps: []string{"libc-amd64-1-2"}, Blob: 3 << 20})
	root := t.TempDir()
	roimg := filepath.Join(root, "roimg")
	os.MkdirAll(roimg, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", roimg).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", roimg).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", roimg, err, out)
		}
	})
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, serve(t, r))
	_, err := in.Install(t.Context(), []string{"big"})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Install onto a full disk = %v, want a disk-full error", err)
	}
	checkNothingInstalled(t, in)
}

func TestProgress(t *testing.T) {
	r := mirrortest.NewRepo(t, libc2, hello10, shell)
	var progress bytes.Buffer
	in, err := install.New(install.Options{Root: t.TempDir(), Repos: []string{serve(t, r)}, PubKeyFiles: []string{r.PubFile(t)}, Arch: "amd64", Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(t.Context(), []string{"shell", "hello"}); err != nil {
		t.Fatal(err)
	}
	// The last redraw shows every package and byte done.
	lines := strings.Split(strings.TrimSpace(progress.String()), "\r")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "3/3 packages") || !strings.Contains(last, "MB/s") {
		t.Errorf("last progress line %q, want 3/3 packages with a rate", last)
	}
}
