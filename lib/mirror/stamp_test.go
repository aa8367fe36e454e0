package mirror_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// TestIndexStamp checks the trusted comment Index signs, with minisign
// itself: the time stamp, the expiry and the repository's name.
func TestIndexStamp(t *testing.T) {
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "hello-amd64-2.12-1"})
	now := time.Unix(1765000000, 0)
	if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key, Now: now, ValidFor: 7 * 24 * time.Hour, Name: "distri"}); err != nil {
		t.Fatal(err)
	}
	const want = "timestamp:1765000000\tfile:index\texpires:1765604800\trepo:distri"
	idx := filepath.Join(r.Dir, "pkg", mirror.IndexFile)
	sig, err := os.ReadFile(idx + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(idx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := minisign.Verify(f, sig, r.Pub()); err != nil || got != want {
		t.Errorf("trusted comment %q, %v; want %q", got, err, want)
	}
	tool := distritest.NeedTool(t, "minisign")
	out, err := exec.Command(tool, "-V", "-p", r.PubFile(t), "-m", idx).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Trusted comment: "+want) {
		t.Errorf("minisign -V: %v\n%s\nwant trusted comment %q", err, out, want)
	}
}

func TestIndexStampErrors(t *testing.T) {
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "hello-amd64-2.12-1"})
	for _, tt := range []struct {
		name    string
		opts    mirror.IndexOptions
		wantErr string
	}{
		{name: "name with a slash", opts: mirror.IndexOptions{Name: "a/b"}, wantErr: `repository name "a/b"`},
		{name: "name with a tab", opts: mirror.IndexOptions{Name: "a\trepo:b"}, wantErr: "repository name"},
		{name: "negative validity", opts: mirror.IndexOptions{ValidFor: -time.Hour}, wantErr: "negative validity"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Repo, tt.opts.Key = r.Dir, r.Key
			if _, err := mirror.Index(tt.opts); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Index = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
