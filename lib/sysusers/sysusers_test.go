package sysusers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func root(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nold:x:999:999::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\nold:x:999:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/shadow"), []byte("root:hash:18262:0:99999:7:::\n"), 0o600)
	return dir
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApply(t *testing.T) {
	dir := root(t)
	es, err := Parse("openssh-server.conf", []byte(`# from adduser
u sshd -:nogroup - /run/sshd /usr/sbin/nologin
g messagebus -
u messagebus - "System Message Bus" /nonexistent
u svc 500 - /var/lib/svc
m svc messagebus
r - 500-900
`))
	if err != nil {
		t.Fatal(err)
	}
	done, err := Apply(dir, es)
	if err != nil {
		t.Fatal(err)
	}
	wantPasswd := "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nold:x:999:999::/:/bin/false\n" +
		"sshd:x:998:65534::/run/sshd:/usr/sbin/nologin\n" +
		"messagebus:x:997:998:System Message Bus:/nonexistent:/usr/sbin/nologin\n" +
		"svc:x:500:500::/var/lib/svc:/usr/sbin/nologin\n"
	if got := read(t, filepath.Join(dir, "etc/passwd")); got != wantPasswd {
		t.Errorf("passwd:\n%s\nwant:\n%s\n(done %q)", got, wantPasswd, done)
	}
	wantGroup := "root:x:0:\nnogroup:x:65534:\nold:x:999:\nmessagebus:x:998:svc\nsvc:x:500:\n"
	if got := read(t, filepath.Join(dir, "etc/group")); got != wantGroup {
		t.Errorf("group:\n%s\nwant:\n%s", got, wantGroup)
	}
	if got := read(t, filepath.Join(dir, "etc/shadow")); !strings.Contains(got, "\nsshd:!*:::::::\n") {
		t.Errorf("shadow lacks a locked sshd:\n%s", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc/shadow")); fi.Mode().Perm() != 0o600 {
		t.Errorf("shadow mode %v", fi.Mode())
	}
	// Idempotent: a second run adds nothing and changes no byte.
	before := read(t, filepath.Join(dir, "etc/passwd")) + read(t, filepath.Join(dir, "etc/group"))
	if done, err := Apply(dir, es); err != nil || len(done) != 0 {
		t.Errorf("second Apply: %q, %v", done, err)
	}
	if after := read(t, filepath.Join(dir, "etc/passwd")) + read(t, filepath.Join(dir, "etc/group")); after != before {
		t.Errorf("second Apply changed the files")
	}
}

// TestApplyAttacks: a package's sysusers.d file tries to take over root
// or an existing account, to reuse uid 0 or a taken ID, and to inject
// lines into the colon-separated files. Existing accounts stay, IDs are
// never shared or 0, and bad fields are errors naming file:line with
// nothing written.
func TestApplyAttacks(t *testing.T) {
	dir := root(t)
	es, err := Parse("evil.conf", []byte("u root 0 - /evil /bin/sh\nu old 5 - /evil\nu zero 0\nu twin 999\ng wheel 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(dir, es); err != nil {
		t.Fatal(err)
	}
	p := read(t, filepath.Join(dir, "etc/passwd"))
	if !strings.HasPrefix(p, "root:x:0:0:root:/root:/bin/bash\n") || strings.Contains(p, "/evil") {
		t.Errorf("an existing account changed:\n%s", p)
	}
	for _, l := range strings.Split(strings.TrimSpace(p), "\n") {
		f := strings.Split(l, ":")
		if f[0] != "root" && f[2] == "0" || f[0] == "twin" && f[2] == "999" {
			t.Errorf("ID handed out again: %s", l)
		}
	}
	if g := read(t, filepath.Join(dir, "etc/group")); strings.Contains(g, "wheel:x:0:") {
		t.Errorf("gid 0 handed out:\n%s", g)
	}
	for _, bad := range []string{
		"u x:y -",
		"u zero 0:0",
		"u zero -:65534",
		"u evil - \"a:b\"",
		"u evil - - relative",
		"u Evil -",
		"z evil -",
		"u evil - \"unterminated",
		"m evil gr:oup",
		"u evil - - /a /b extra",
	} {
		dir := root(t)
		before := read(t, filepath.Join(dir, "etc/passwd"))
		_, err := Parse("bad.conf", []byte("# c\n"+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "bad.conf:2") {
			t.Errorf("%q: err %v, want one naming bad.conf:2", bad, err)
		}
		if read(t, filepath.Join(dir, "etc/passwd")) != before {
			t.Errorf("%q: passwd written", bad)
		}
	}
	// A control character inside a quoted GECOS.
	if _, err := Parse("ctl.conf", []byte("u evil - \"a\x01b\"\n")); err == nil {
		t.Errorf("control character in GECOS accepted")
	}
}
