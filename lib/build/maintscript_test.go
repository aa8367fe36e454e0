package build

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A postinst in the shapes Debian's scripts use: continuation lines, a
// comment inside a continued command, literal variables, a for loop,
// debhelper's if blocks, a function holding adduser, a case.
const testPostinst = `#!/bin/sh
set -e
ver=1.5
prio=40

update-alternatives --quiet --install /usr/bin/tool tool \
	/usr/bin/tool-$ver $prio \
	--slave /usr/bin/toolhelper toolhelper /usr/bin/toolhelper-$ver \
	#--slave /usr/share/man/man1/tool.1.gz tool.1.gz /usr/share/man/man1/tool-$ver.1.gz

update-alternatives --install /usr/bin/tool tool /usr/bin/tool-old 10
update-alternatives --install /usr/bin/missing missing /usr/bin/nothere 50
update-alternatives --install /usr/bin/$1 x /usr/bin/tool-1.5 5

for i in ed red; do
	update-alternatives --install "/usr/bin/$i" "$i" /usr/bin/tool-$ver 30
done

setup_user() {
	if ! getent passwd tooluser >/dev/null; then
		adduser --quiet --system --no-create-home --home /run/tool --shell /usr/sbin/nologin tooluser
	fi
}
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ]; then
	addgroup --system --quiet toolgroup
	setup_user
	deb-systemd-helper enable 'tool.service' >/dev/null || true
	systemctl enable ghost.service
fi
case "$1" in
	configure)
		ldconfig
		dpkg-divert --package tool --rename --add /usr/bin/other
		mkdir -p /var/lib/tool && chown tooluser /var/lib/tool
	;;
esac
exit 0
`

func TestScanMaintScripts(t *testing.T) {
	e := ScanMaintScripts(map[string][]byte{"postinst": []byte(testPostinst), "prerm": []byte("update-alternatives --remove tool /usr/bin/tool-1.5\n")})
	var got []string
	for _, a := range e.Alternatives {
		s := a.Link + " " + a.Name + " " + a.Path
		for _, sl := range a.Slaves {
			s += " +" + sl.Link + ">" + sl.Path
		}
		got = append(got, s)
	}
	want := []string{
		"/usr/bin/tool tool /usr/bin/tool-1.5 +/usr/bin/toolhelper>/usr/bin/toolhelper-1.5",
		"/usr/bin/tool tool /usr/bin/tool-old",
		"/usr/bin/missing missing /usr/bin/nothere",
		"/usr/bin/ed ed /usr/bin/tool-1.5",
		"/usr/bin/red red /usr/bin/tool-1.5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("alternatives:\n got %q\nwant %q", got, want)
	}
	if e.Alternatives[0].Priority != 40 || e.Alternatives[3].Priority != 30 {
		t.Errorf("priorities %d, %d, want 40, 30", e.Alternatives[0].Priority, e.Alternatives[3].Priority)
	}
	wantUsers := []string{"u tooluser -:nogroup - /run/tool /usr/sbin/nologin", "g toolgroup -"}
	if !slices.Equal(e.SysUsers, wantUsers) {
		t.Errorf("sysusers %q, want %q", e.SysUsers, wantUsers)
	}
	if !slices.Equal(e.Enable, []string{"tool.service", "ghost.service"}) {
		t.Errorf("enable %q", e.Enable)
	}
	notes := strings.Join(e.Notes, "\n")
	for _, want := range []string{
		"not reproduced: postinst:13: update-alternatives --install /usr/bin/$1",
		"ldconfig: not needed",
		"not reproduced: postinst:33: dpkg-divert",
		"not reproduced: postinst:34: mkdir -p /var/lib/tool",
		"not reproduced: postinst:34: chown tooluser /var/lib/tool",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	for _, bad := range []string{"setup_user", "getent", "configure", "remove", "set -e", "exit"} {
		if strings.Contains(notes, bad) {
			t.Errorf("notes mention %q:\n%s", bad, notes)
		}
	}
}

func TestApplyAlternatives(t *testing.T) {
	dest := t.TempDir()
	for _, f := range []string{"out/bin/tool-1.5", "out/bin/tool-old", "out/bin/toolhelper-1.5", "out/bin/shipped", "out/bin/own"} {
		os.MkdirAll(filepath.Join(dest, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(dest, f), nil, 0o755)
	}
	alts := []Alternative{
		{Link: "/usr/bin/tool", Name: "tool", Path: "/usr/bin/tool-old", Priority: 10},
		{Link: "/usr/bin/tool", Name: "tool", Path: "/usr/bin/tool-1.5", Priority: 40,
			Slaves: []Alternative{{Link: "/usr/bin/toolhelper", Name: "toolhelper", Path: "/usr/bin/toolhelper-1.5"}}},
		{Link: "/usr/bin/missing", Name: "missing", Path: "/usr/bin/nothere", Priority: 50},
		{Link: "/usr/bin/own", Name: "own", Path: "/usr/bin/tool-1.5", Priority: 50},
		{Link: "/etc/tool.conf", Name: "toolconf", Path: "/usr/bin/tool-1.5", Priority: 50},
	}
	recs, _, err := applyAlternatives(alts, dest)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.GetLink()+" "+r.GetPath()+" "+map[bool]string{true: "yes", false: "no: " + r.GetReason()}[r.GetProvided()])
	}
	want := []string{
		"bin/tool /usr/bin/tool-old no: the package offers /usr/bin/tool-1.5 with a higher priority (40)",
		"bin/tool /usr/bin/tool-1.5 yes",
		"bin/toolhelper /usr/bin/toolhelper-1.5 yes",
		"bin/missing /usr/bin/nothere no: its target is not in the package",
		"bin/own /usr/bin/tool-1.5 no: the package ships /usr/bin/own itself",
		"etc/tool.conf /usr/bin/tool-1.5 no: the link is outside the exchange directories",
	}
	if !slices.Equal(got, want) {
		t.Errorf("decisions:\n got %q\nwant %q", got, want)
	}
	for link, target := range map[string]string{"out/bin/tool": "tool-1.5", "bin/tool": "../out/bin/tool", "bin/toolhelper": "../out/bin/toolhelper"} {
		if got, err := os.Readlink(filepath.Join(dest, link)); err != nil || got != target {
			t.Errorf("%s → %q (%v), want %q", link, got, err, target)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "bin/tool")); err != nil {
		t.Errorf("bin/tool does not resolve: %v", err)
	}
}

// TestMaintEffectsStayInPackage attacks the import with a package whose
// own symlinks lead out of it (out/lib/evil → a host directory,
// out/lib/sysusers.d → the same): an alternative whose link lies below
// such a symlink, and the sysusers.d file the import writes, must not
// create anything outside the package; the import fails or declines.
func TestMaintEffectsStayInPackage(t *testing.T) {
	host := t.TempDir()
	dest := t.TempDir()
	os.MkdirAll(filepath.Join(dest, "out/bin"), 0o755)
	os.WriteFile(filepath.Join(dest, "out/bin/tool"), nil, 0o755)
	os.MkdirAll(filepath.Join(dest, "out/lib"), 0o755)
	os.Symlink(host, filepath.Join(dest, "out/lib/evil"))
	recs, _, err := applyAlternatives([]Alternative{
		{Link: "/usr/lib/evil/x", Name: "x", Path: "/usr/bin/tool", Priority: 1},
		{Link: "/usr/bin/../../../../lib/evil/y", Name: "y", Path: "/usr/bin/tool", Priority: 1},
	}, dest)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.GetProvided() {
			t.Errorf("%s provided through a symlink out of the package", r.GetLink())
		}
	}
	os.Symlink(host, filepath.Join(dest, "out/lib/sysusers.d"))
	if err := writeNew(dest, "out/lib/sysusers.d/p.conf", "u x -\n", time.Unix(1, 0)); err == nil {
		t.Errorf("writeNew through a symlink out of the package succeeded")
	}
	if ents, _ := os.ReadDir(host); len(ents) != 0 {
		t.Errorf("the import wrote outside the package: %v", ents)
	}
}

// TestScanMaintScriptsBounded attacks the loop unrolling with nested
// loops (20^8 iterations unrolled naively): the scan stops at maxSteps
// and says so.
func TestScanMaintScriptsBounded(t *testing.T) {
	items := strings.Repeat("x ", 20)
	var b strings.Builder
	for range 8 {
		b.WriteString("for i in " + items + "; do\n")
	}
	b.WriteString("update-alternatives --install /usr/bin/$i $i /usr/bin/t 1\n")
	for range 8 {
		b.WriteString("done\n")
	}
	start := time.Now()
	e := ScanMaintScripts(map[string][]byte{"postinst": []byte(b.String())})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("scan took %v", d)
	}
	if !strings.Contains(strings.Join(e.Notes, "\n"), "more than 20000 commands") {
		t.Errorf("notes lack the bound: %q", e.Notes)
	}
}
