package fstab

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// escape writes a field the way fstab(5) wants it: octal escapes for
// what would end the field or start a comment.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c == '\\' || c == '#' || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzParse parses arbitrary fstab files (on the root file system, read
// by PID 1) and checks what it accepts: mount points are absolute (or
// none for swap), and every entry written back as a line, escaped,
// parses to the same entry.
func FuzzParse(f *testing.F) {
	f.Add("# /etc/fstab\nUUID=5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77 / ext4 errors=remount-ro 0 1\n" +
		"LABEL=data /mnt/my\\040data ext4,xfs noatime,nofail,x-systemd.automount 0 2\n" +
		"tmpfs /tmp tmpfs size=1m,mode=0700,nosuid,nodev 0 0\n")
	f.Add("PARTUUID=0d15ea5e-02 none swap sw,pri=5,discard=once 0 0\n/dev/vdb swap swap defaults\n")
	f.Add("/srv /export none rbind,ro,noauto\nproc /proc proc defaults\n  \t\n#x\nbad\n/a \\043b c d 1 x\n")
	f.Fuzz(func(t *testing.T, text string) {
		entries, _ := Parse(strings.NewReader(text), "fstab")
		for _, e := range entries {
			if e.Swap() {
				if e.File != "none" && e.File != "swap" && !strings.HasPrefix(e.File, "/") {
					t.Errorf("swap entry %+v: mount point", e)
				}
			} else if !strings.HasPrefix(e.File, "/") {
				t.Errorf("entry %+v: mount point is not absolute", e)
			}
			line := fmt.Sprintf("%s %s %s %s %d %d", escape(e.Spec), escape(e.File), escape(e.Type), escape(e.Options), e.Freq, e.PassNo)
			back, err := Parse(strings.NewReader(line), "back")
			if err != nil || len(back) != 1 {
				t.Fatalf("entry %+v written as %q parses as %+v, %v", e, line, back, err)
			}
			back[0].Line = e.Line
			if !reflect.DeepEqual(back[0], e) {
				t.Errorf("entry %+v written as %q parses as %+v", e, line, back[0])
			}
		}
	})
}
