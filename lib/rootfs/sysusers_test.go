package rootfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"distri.dev/distri/lib/mirror/mirrortest"
)

// TestMakeSysusers: the users and groups a package declares in
// out/lib/sysusers.d are in the tree's /etc after Make, which writes
// passwd and group afresh (so applying them at install time alone would
// lose them), and a declaration of root changes nothing.
func TestMakeSysusers(t *testing.T) {
	sshd := mirrortest.Package{Name: "sshd-amd64-9-1", Deps: []string{"glibc-amd64-2.36-2"}, Files: map[string]string{
		"out/lib/sysusers.d/sshd.conf": "u sshd -:nogroup - /run/sshd /usr/sbin/nologin\nu root 0 - /evil /bin/sh\ng _ssh -\n",
	}}
	r := mirrortest.NewRepo(t, glibc2, bash, sshd)
	dir := makeTree(t, r, "bash", "sshd")
	for f, want := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nsshd:x:999:65534::/run/sshd:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n_ssh:x:999:\n",
	} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", f, b, err, want)
		}
	}
}
