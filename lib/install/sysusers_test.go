package install_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/mirror/mirrortest"
)

// TestInstallSysusers installs packages that declare users in
// out/lib/sysusers.d: they appear in the root's /etc/passwd and group,
// and a package whose file tries to re-declare root changes nothing.
// A package with a malformed file fails with the package and line named.
func TestInstallSysusers(t *testing.T) {
	sshd := mirrortest.Package{Name: "sshd-amd64-9-1", Files: map[string]string{
		"out/bin/sshd":                 "x",
		"out/lib/sysusers.d/sshd.conf": "u sshd -:nogroup - /run/sshd /usr/sbin/nologin\nu root 0 - /evil /bin/sh\n",
	}}
	bus := mirrortest.Package{Name: "bus-amd64-1-1", Deps: []string{"sshd-amd64-9-1"}, Files: map[string]string{
		"out/lib/sysusers.d/bus.conf": "g messagebus -\nu messagebus - - /nonexistent\n",
	}}
	bad := mirrortest.Package{Name: "bad-amd64-1-1", Files: map[string]string{
		"out/lib/sysusers.d/bad.conf": "# comment\nu ev:il -\n",
	}}
	r := mirrortest.NewRepo(t, sshd, bus, bad)
	url := serve(t, r)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	var logw bytes.Buffer
	in := newInstaller(t, root, &logw, []string{r.PubFile(t)}, url)
	if _, err := in.Install(t.Context(), []string{"bus"}); err != nil {
		t.Fatal(err)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	// bus.conf sorts before sshd.conf: messagebus gets 999.
	want := "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:999:999::/nonexistent:/usr/sbin/nologin\nsshd:x:998:65534::/run/sshd:/usr/sbin/nologin\n"
	if string(passwd) != want {
		t.Errorf("passwd:\n%s\nwant:\n%s\nlog:\n%s", passwd, want, logw.String())
	}
	if group, _ := os.ReadFile(filepath.Join(root, "etc/group")); !strings.Contains(string(group), "\nmessagebus:x:999:\n") {
		t.Errorf("group:\n%s", group)
	}
	if !strings.Contains(logw.String(), "added user sshd (uid 998, gid 65534)") {
		t.Errorf("log lacks the added user:\n%s", logw.String())
	}
	_, err := in.Install(t.Context(), []string{"bad"})
	if err == nil || !strings.Contains(err.Error(), "bad-amd64-1-1/out/lib/sysusers.d/bad.conf:2") {
		t.Errorf("bad sysusers file: err %v", err)
	}
	if p, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(p) != want {
		t.Errorf("bad file changed passwd:\n%s", p)
	}
}
