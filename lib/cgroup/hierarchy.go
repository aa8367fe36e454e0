package cgroup

import (
	"path"
	"slices"
	"strings"

	"distri.dev/distri/lib/internal/mountinfo"
)

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	Point       string   // mount point, e.g. /sys/fs/cgroup/memory
	Root        string   // the hierarchy's directory mounted there, usually /
	V2          bool     // cgroup2
	Controllers []string // v1: from the super options, e.g. [cpu cpuacct]; v2: empty
}

// parseMountinfo returns the cgroup and cgroup2 mounts in the text of
// /proc/self/mountinfo.
func parseMountinfo(text string) []hierarchy {
	var out []hierarchy
	for line := range strings.SplitSeq(text, "\n") {
		// 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+3 >= len(fields) {
			continue
		}
		h := hierarchy{Root: mountinfo.Unescape(fields[3]), Point: mountinfo.Unescape(fields[4])}
		switch fields[sep+1] {
		case "cgroup2":
			h.V2 = true
		case "cgroup":
			for o := range strings.SplitSeq(fields[sep+3], ",") {
				switch {
				case o == "rw" || o == "ro" || strings.Contains(o, "="):
					// mount flags, name=systemd, release_agent=…
				case o == "noprefix" || o == "clone_children" || o == "xattr" || o == "cpuset_v2_mode":
				default:
					h.Controllers = append(h.Controllers, o)
				}
			}
		default:
			continue
		}
		out = append(out, h)
	}
	return out
}

// parseProcCgroup returns this process's group in each hierarchy from the
// text of /proc/self/cgroup: v1 controller name → path, and "" → the v2
// path.
func parseProcCgroup(text string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		// 4:memory:/user.slice   or   0::/init.scope
		id, rest, ok := strings.Cut(line, ":")
		if !ok || id == "" {
			continue
		}
		ctrls, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if ctrls == "" {
			out[""] = p
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			out[c] = p
		}
	}
	return out
}

// ownDir returns the directory of this process's group in h, given its path
// p from /proc/self/cgroup. ok is false if that group is not visible under
// h's mount (a mount of another part of the hierarchy).
func ownDir(h hierarchy, p string) (string, bool) {
	rel := p
	if h.Root != "/" {
		r, found := strings.CutPrefix(p, h.Root)
		if !found || (r != "" && !strings.HasPrefix(r, "/")) {
			return "", false
		}
		rel = r
	}
	return path.Join(h.Point, rel), true
}
