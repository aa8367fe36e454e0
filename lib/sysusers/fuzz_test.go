package sysusers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzApply: whatever a sysusers.d file holds, what Parse accepts Apply
// merges into files whose every line has the right number of fields, and
// root stays root.
func FuzzApply(f *testing.F) {
	f.Add("u sshd -:nogroup - /run/sshd /usr/sbin/nologin\ng g 5\nm sshd g\n")
	f.Add("u root 0 - /x /bin/sh\nu a 7:7 \"x y\"\n")
	f.Fuzz(func(t *testing.T, conf string) {
		es, err := Parse("fuzz.conf", []byte(conf))
		if err != nil {
			return
		}
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
		os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
		if _, err := Apply(dir, es); err != nil {
			return
		}
		for f, n := range map[string]int{"passwd": 7, "group": 4, "shadow": 9} {
			b, _ := os.ReadFile(filepath.Join(dir, "etc", f))
			for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				if l != "" && len(strings.Split(l, ":")) != n {
					t.Errorf("%s line %q: want %d fields", f, l, n)
				}
			}
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "etc/passwd")); !strings.HasPrefix(string(b), "root:x:0:0:root:/root:/bin/sh\n") || strings.Count(string(b), ":x:0:") != 1 {
			t.Errorf("root changed or uid 0 given again:\n%s", b)
		}
	})
}
