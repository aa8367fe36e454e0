package install_test

import (
	"bytes"
	"errors"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/repo"
)

// writeFiles writes files (path in root → content) into root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pubText(t *testing.T, k minisign.PrivateKey) string {
	t.Helper()
	b, err := k.Public().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign re-indexes r as distri-mirror index would with opts' Now,
// ValidFor and Name (and r's key unless opts has one), and returns the
// index and its signature as written.
func sign(t *testing.T, r *mirrortest.Repo, opts mirror.IndexOptions) (index, sig []byte) {
	t.Helper()
	opts.Repo = r.Dir
	if opts.Key.Key == nil {
		opts.Key = r.Key
	}
	if _, err := mirror.Index(opts); err != nil {
		t.Fatal(err)
	}
	return readPair(t, r)
}

func readPair(t *testing.T, r *mirrortest.Repo) (index, sig []byte) {
	t.Helper()
	index, err := os.ReadFile(filepath.Join(r.Dir, "pkg", mirror.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	sig, err = os.ReadFile(filepath.Join(r.Dir, "pkg", mirror.SignatureFile))
	if err != nil {
		t.Fatal(err)
	}
	return index, sig
}

// replay puts an index and signature saved before back into r, as a
// mirror replaying them would serve them (the siblings are removed, so
// no fresher .zst is served beside them).
func replay(t *testing.T, r *mirrortest.Repo, index, sig []byte) {
	t.Helper()
	dir := filepath.Join(r.Dir, "pkg")
	for _, suf := range []string{".zst", ".gz"} {
		os.Remove(filepath.Join(dir, mirror.IndexFile+suf))
	}
	writeFiles(t, dir, map[string]string{mirror.IndexFile: string(index), mirror.SignatureFile: string(sig)})
}

// TestRollback replays an older, validly signed index after a newer one
// was accepted: install and update refuse it, naming both times, and
// nothing is installed. Before, update installed the older revision.
func TestRollback(t *testing.T) {
	now := time.Now()
	r := mirrortest.NewRepo(t, libc1, hello9)
	oldIdx, oldSig := sign(t, r, mirror.IndexOptions{Now: now.Add(-48 * time.Hour), Name: "main"})
	mirrortest.WritePackages(t, filepath.Join(r.Dir, "pkg"), libc2, hello10)
	// The repository dropped hello 9 (say, for a hole); the old index
	// still lists it.
	hello9Files := []string{"hello-amd64-2.12-9.squashfs", "hello-amd64-2.12-9.meta.textproto"}
	aside := t.TempDir()
	for _, f := range hello9Files {
		if err := os.Rename(filepath.Join(r.Dir, "pkg", f), filepath.Join(aside, f)); err != nil {
			t.Fatal(err)
		}
	}
	sign(t, r, mirror.IndexOptions{Now: now.Add(-time.Hour), Name: "main"})

	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/distri/repos.d/main.repo": r.Dir + " name=main\n",
		"etc/distri/keys/main.pub":     pubText(t, r.Key),
	})
	in := newInstaller(t, root, nil, nil)
	if _, err := in.Install(t.Context(), []string{"hello-amd64-2.10-10"}); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "var/lib/distri/repos/main.json")
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), `"repository": "main"`) {
		t.Fatalf("state file %s: %q, %v", state, b, err)
	}

	// A mirror now serves the old index; put hello 9 back so that it
	// could be installed.
	replay(t, r, oldIdx, oldSig)
	for _, f := range hello9Files {
		if err := os.Rename(filepath.Join(aside, f), filepath.Join(r.Dir, "pkg", f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		run  func() ([]string, error)
	}{
		{"install", func() ([]string, error) { return in.Install(t.Context(), []string{"hello-amd64-2.12-9"}) }},
		{"update", func() ([]string, error) { return in.Update(t.Context()) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			added, err := tt.run()
			var rb *repo.RollbackError
			if !errors.As(err, &rb) {
				t.Fatalf("%s with a replayed older index = %v, %v; want a *repo.RollbackError", tt.name, added, err)
			}
			for _, want := range []string{"repository main", now.Add(-48 * time.Hour).UTC().Format(time.RFC3339), now.Add(-time.Hour).UTC().Format(time.RFC3339)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.10-10", "libc-amd64-1-2"}, list(t, in)); diff != "" {
		t.Errorf("store after the replays (-want +got):\n%s", diff)
	}

	// Without the remembered time stamp (a new root), the same old index
	// is valid: the refusal comes from the state, not from the index.
	fresh := t.TempDir()
	writeFiles(t, fresh, map[string]string{
		"etc/distri/repos.d/main.repo": r.Dir + " name=main\n",
		"etc/distri/keys/main.pub":     pubText(t, r.Key),
	})
	if _, err := newInstaller(t, fresh, nil, nil).Install(t.Context(), []string{"libc-amd64-1-1"}); err != nil {
		t.Errorf("install from the old index into a new root: %v", err)
	}

	// A corrupt state file is an error naming it, not a fresh start.
	writeFiles(t, root, map[string]string{"var/lib/distri/repos/main.json": "{"})
	if _, err := in.Install(t.Context(), []string{"libc-amd64-1-1"}); err == nil || !strings.Contains(err.Error(), state) {
		t.Errorf("install with a corrupt state file = %v, want an error naming %s", err, state)
	}
}

// TestRollbackUnnamed: a repository given by URL only (--repo) is
// remembered by its URL.
func TestRollbackUnnamed(t *testing.T) {
	now := time.Now()
	r := mirrortest.NewRepo(t, libc1)
	oldIdx, oldSig := sign(t, r, mirror.IndexOptions{Now: now.Add(-2 * time.Hour)})
	sign(t, r, mirror.IndexOptions{Now: now.Add(-time.Hour)})
	root := t.TempDir()
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, r.Dir)
	if _, err := in.Install(t.Context(), []string{"libc"}); err != nil {
		t.Fatal(err)
	}
	replay(t, r, oldIdx, oldSig)
	_, err := in.Update(t.Context())
	if rb := (*repo.RollbackError)(nil); !errors.As(err, &rb) || rb.Repo != r.Dir {
		t.Errorf("update from a replayed index = %v, want a *repo.RollbackError for %s", err, r.Dir)
	}
}

// TestExpired serves an index past its expiry: refused, unless
// AllowExpired (distri-install --allow-expired) says to use it.
func TestExpired(t *testing.T) {
	r := mirrortest.NewRepo(t, libc1)
	sign(t, r, mirror.IndexOptions{Now: time.Now().Add(-3 * time.Hour), ValidFor: 2 * time.Hour})
	root := t.TempDir()
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, r.Dir)
	if _, err := in.Install(t.Context(), []string{"libc"}); !errors.Is(err, repo.ErrExpired) || !strings.Contains(err.Error(), "--allow-expired") {
		t.Errorf("install from an expired index = %v, want repo.ErrExpired mentioning --allow-expired", err)
	}
	checkNothingInstalled(t, in)

	var logw bytes.Buffer
	opts := install.Options{Root: root, Repos: []string{r.Dir}, PubKeyFiles: []string{r.PubFile(t)}, Arch: "amd64", AllowExpired: true}
	opts.Log = log.New(&logw, "", 0)
	in, err := install.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(t.Context(), []string{"libc"}); err != nil {
		t.Fatalf("install from an expired index with AllowExpired: %v", err)
	}
	if !strings.Contains(logw.String(), "expired") {
		t.Errorf("log %q does not say the index expired", logw.String())
	}

	// Still valid: accepted.
	sign(t, r, mirror.IndexOptions{Now: time.Now(), ValidFor: time.Hour})
	if _, err := newInstaller(t, t.TempDir(), nil, []string{r.PubFile(t)}, r.Dir).Install(t.Context(), []string{"libc"}); err != nil {
		t.Errorf("install from an index valid for an hour: %v", err)
	}
}

// TestRepoIdentity serves repository X's index (validly signed, by a
// trusted key) where the root expects repository Y.
func TestRepoIdentity(t *testing.T) {
	x := mirrortest.NewRepo(t, libc1)
	for _, tt := range []struct {
		name    string
		line    string
		signFor string
		wantErr string // empty: installs
	}{
		{name: "signed for x, served as y", line: " name=y", signFor: "x", wantErr: `signed for repository "x", repos.d says name=y`},
		{name: "signed for none, served as y", line: " name=y", signFor: "", wantErr: "names no repository"},
		{name: "signed for x, served as x", line: " name=x", signFor: "x"},
		{name: "signed for x, unnamed entry", line: "", signFor: "x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sign(t, x, mirror.IndexOptions{Name: tt.signFor})
			root := t.TempDir()
			writeFiles(t, root, map[string]string{
				"etc/distri/repos.d/r.repo": x.Dir + tt.line + "\n",
				"etc/distri/keys/x.pub":     pubText(t, x.Key),
			})
			in := newInstaller(t, root, nil, nil)
			_, err := in.Install(t.Context(), []string{"libc"})
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Install = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, repo.ErrIdentity) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Install = %v, want repo.ErrIdentity saying %q", err, tt.wantErr)
			}
			checkNothingInstalled(t, in)
		})
	}
}

// TestSignedBy: repository B's index signed by repository A's key, both
// keys in keys/: accepted where keys are not bound (as before), refused
// once repos.d binds keys to repositories, also for an entry without
// signed-by when another entry binds A's key.
func TestSignedBy(t *testing.T) {
	a := mirrortest.NewRepo(t, libc1)
	b := mirrortest.NewRepo(t, libc2, hello10)
	// A's key holder signs a B index, e.g. to replace B's libc.
	sign(t, b, mirror.IndexOptions{Key: a.Key})
	keys := map[string]string{
		"etc/distri/keys/a.pub": pubText(t, a.Key),
		"etc/distri/keys/b.pub": pubText(t, b.Key),
	}
	for _, tt := range []struct {
		name    string
		repos   string
		wantErr string // empty: installs
	}{
		{name: "unbound", repos: a.Dir + "\n" + b.Dir + "\n"},
		{name: "both bound", repos: a.Dir + " signed-by=a.pub\n" + b.Dir + " signed-by=b.pub\n", wantErr: "signed with key " + a.Key.ID.String()},
		{name: "a bound, b not", repos: a.Dir + " signed-by=a.pub\n" + b.Dir + "\n", wantErr: "signed with key " + a.Key.ID.String()},
		{name: "b bound to a and b", repos: b.Dir + " signed-by=b.pub,/etc/distri/keys/a.pub\n"},
		{name: "missing key file", repos: b.Dir + " signed-by=c.pub\n", wantErr: "signed-by: open"},
		{name: "only bound keys", repos: a.Dir + " signed-by=a.pub,b.pub\n" + b.Dir + "\n", wantErr: "no key left to trust"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{"etc/distri/repos.d/r.repo": tt.repos}
			for k, v := range keys {
				files[k] = v
			}
			writeFiles(t, root, files)
			in := newInstaller(t, root, nil, nil)
			_, err := in.Install(t.Context(), []string{"hello"})
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Install = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Install = %v, want an error saying %q", err, tt.wantErr)
			}
			checkNothingInstalled(t, in)
		})
	}
}

func TestReadRepoEntries(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		want    []install.RepoEntry
		wantErr string
	}{
		{name: "old format", content: "# comment\n\nhttp://a:7080 official mirror\n/srv/b\n", want: []install.RepoEntry{
			{URL: "http://a:7080", Where: "r.repo:3", Ignored: []string{"official", "mirror"}},
			{URL: "/srv/b", Where: "r.repo:4"},
		}},
		{name: "options", content: "http://a name=distri signed-by=distri.pub,/opt/k.pub priority=1\n", want: []install.RepoEntry{
			{URL: "http://a", Name: "distri", SignedBy: []string{"distri.pub", "/opt/k.pub"}, Where: "r.repo:1", Ignored: []string{"priority=1"}},
		}},
		{name: "bare option", content: "http://a signed-by distri.pub\n", wantErr: `r.repo:1: "signed-by": want signed-by=VALUE`},
		{name: "bad name", content: "http://a\nhttp://b name=../x\n", wantErr: `r.repo:2: repository name "../x"`},
		{name: "twice", content: "http://a name=x name=y\n", wantErr: "r.repo:1: name= given twice"},
		{name: "empty key", content: "http://a signed-by=a.pub,\n", wantErr: "r.repo:1: signed-by=a.pub,: empty file name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"etc/distri/repos.d/r.repo": tt.content})
			got, err := install.ReadRepoEntries(root)
			for i := range got {
				got[i].Where = filepath.Base(got[i].Where)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ReadRepoEntries = %v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadRepoEntries mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRollbackReadOnlyState: where the state cannot be written (here a
// read-only bind mount; for a user, no permission), an older index is
// still refused, and a newer one is used with a notice that it is not
// remembered.
func TestRollbackReadOnlyState(t *testing.T) {
	distritest.NeedRoot(t)
	now := time.Now()
	r := mirrortest.NewRepo(t, libc1)
	oldIdx, oldSig := sign(t, r, mirror.IndexOptions{Now: now.Add(-3 * time.Hour)})
	sign(t, r, mirror.IndexOptions{Now: now.Add(-2 * time.Hour)})
	root := t.TempDir()
	in := newInstaller(t, root, nil, []string{r.PubFile(t)}, r.Dir)
	if _, err := in.Install(t.Context(), []string{"libc"}); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "var/lib/distri/repos")
	if err := unix.Mount(state, state, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(state, 0); err != nil {
			t.Errorf("unmount %s: %v", state, err)
		}
	})
	if err := unix.Mount("", state, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	replay(t, r, oldIdx, oldSig)
	var rb *repo.RollbackError
	if _, err := in.Update(t.Context()); !errors.As(err, &rb) {
		t.Errorf("update from a replayed index with a read-only state = %v, want a *repo.RollbackError", err)
	}
	sign(t, r, mirror.IndexOptions{Now: now.Add(-time.Hour)})
	var logw bytes.Buffer
	in = newInstaller(t, root, &logw, []string{r.PubFile(t)}, r.Dir)
	if _, err := in.Update(t.Context()); err != nil || !strings.Contains(logw.String(), "not remembered") {
		t.Errorf("update from a newer index with a read-only state = %v, log %q; want success and a notice", err, logw.String())
	}
}
