// Package mountinfo reads the mount table of this process's mount
// namespace (/proc/self/mountinfo).
package mountinfo

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mount is one line of the mount table.
type Mount struct {
	Point  string // mount point, unescaped
	FSType string // e.g. "ext4", "fuse.distri"
}

// Read returns the mounts in /proc/self/mountinfo order (parents before
// the mounts on top of them).
func Read() ([]Mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return Parse(string(b)), nil
}

// Parse parses the text of a mountinfo file, skipping lines it cannot
// read.
func Parse(text string) []Mount {
	var out []Mount
	for line := range strings.SplitSeq(text, "\n") {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		// Fields end at spaces only: the kernel escapes space, tab,
		// newline and backslash in paths, but not, e.g., \r, which
		// strings.Fields would split at.
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, Mount{Point: Unescape(fields[4]), FSType: fields[sep+1]})
	}
	return out
}

// Unescape undoes the octal escapes of mountinfo (\040 for a space).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
