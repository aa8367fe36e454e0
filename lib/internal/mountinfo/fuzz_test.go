package mountinfo

import (
	"fmt"
	"strings"
	"testing"
)

// kernelEscape escapes a path as the kernel writes it into mountinfo
// (seq_path with " \t\n\\" mangled to octal).
func kernelEscape(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzParse parses arbitrary mount tables, and checks that a mount
// point the kernel escaped comes back as it was, whatever bytes it has.
func FuzzParse(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"+
		"22 1 0:21 / /ro rw,nosuid,nodev,relatime shared:2 - fuse.distri distri rw,user_id=0\n", "/mnt/with space")
	f.Add(`40 22 0:35 / /media/a\040b\134c rw - tmpfs tmpfs rw`+"\n- - -\n", `/x\040y`)
	f.Add("1 2 3 4 5 6 - \n1 2 3 4 - a\n", "/\t\n\\")
	f.Fuzz(func(t *testing.T, text, point string) {
		for _, m := range Parse(text) {
			if m.FSType == "" || strings.ContainsAny(m.FSType, " \n") {
				t.Errorf("Parse(%q): file system type %q", text, m.FSType)
			}
		}
		if !strings.HasPrefix(point, "/") {
			return // the kernel writes absolute paths only
		}
		line := fmt.Sprintf("36 35 98:0 / %s rw,noatime shared:1 - ext4 /dev/vda1 rw\n", kernelEscape(point))
		ms := Parse(line)
		if len(ms) != 1 || ms[0].Point != point || ms[0].FSType != "ext4" {
			t.Errorf("Parse(%q) = %q, want point %q of ext4", line, ms, point)
		}
	})
}
