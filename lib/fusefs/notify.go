package fusefs

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"distri.dev/distri/lib/squashfs"
)

// notify invalidates what the kernel may have cached of old that differs
// in nt: each changed, added or removed name in /ro and in the exchange
// directories (NotifyDelete for a name the kernel knows, NotifyEntry for
// the rest, which also drops negative entries), the listing and
// attributes of each changed directory (NotifyContent), and the
// directories of host packages whose runtime unions changed. Only nodes
// the kernel knows are touched: go-fuse tracks them, so this costs
// nothing for directories nobody has looked at.
//
// It runs after the swap, outside any lock FUSE operations take.
func (s *Server) notify(old, nt *tree) {
	root := s.root.EmbeddedInode()
	s.notifyDir(root, &old.root, &nt.root)
	for p, od := range old.dirs {
		nd := nt.dirs[p]
		if nd == nil {
			continue // gone: its parent's entry was invalidated
		}
		if sameListing(od, nd) {
			continue
		}
		if n := walk(root, p); n != nil {
			s.notifyDir(n, od, nd)
		}
	}
	// New directories have nothing cached below them; their own names
	// were invalidated in their parents.

	// Runtime unions whose plugin set changed.
	hosts := map[string]bool{}
	for h := range old.unions {
		hosts[h] = true
	}
	for h := range nt.unions {
		hosts[h] = true
	}
	for host := range hosts {
		dirs := map[string]bool{}
		for d := range old.unions[host] {
			dirs[d] = true
		}
		for d := range nt.unions[host] {
			dirs[d] = true
		}
		for d := range dirs {
			before, after := old.unionPlugins(host, d), nt.unionPlugins(host, d)
			if slices.Equal(before, after) || nt.pkgs[host] == nil {
				continue
			}
			n := walk(root, host+"/"+d)
			if n == nil {
				continue // the kernel has not looked at it
			}
			// Every name the kernel knows in the directory, and every
			// name a new plugin brings (it may be cached as absent).
			var names []string
			for name := range n.Children() {
				names = append(names, name)
			}
			for _, plug := range after {
				if !slices.Contains(before, plug) {
					names = append(names, pluginNames(plug, d)...)
				}
			}
			slices.Sort(names)
			for _, name := range slices.Compact(names) {
				if ch := n.GetChild(name); ch != nil {
					s.invalidateBelow(ch)
				}
				s.notifyEntry(n, name)
			}
			n.NotifyContent(0, 0)
			s.debugf("runtime union %s/%s: %d → %d plugins", host, d, len(before), len(after))
		}
	}
}

// notifyDir invalidates the names that differ between od and nd in the
// directory node n, then its listing and attributes.
func (s *Server) notifyDir(n *gofs.Inode, od, nd *xdir) {
	changed := false
	for name, oe := range od.entries {
		if ne, ok := nd.entries[name]; !ok || ne != oe {
			s.notifyEntry(n, name)
			changed = true
		}
	}
	for name := range nd.entries {
		if _, ok := od.entries[name]; !ok {
			s.notifyEntry(n, name)
			changed = true
		}
	}
	if changed {
		n.NotifyContent(0, 0)
	}
}

func (s *Server) notifyEntry(parent *gofs.Inode, name string) {
	var errno syscall.Errno
	if child := parent.GetChild(name); child != nil {
		errno = parent.NotifyDelete(name, child)
	} else {
		errno = parent.NotifyEntry(name)
	}
	if errno != 0 && errno != syscall.ENOENT {
		s.debugf("invalidate %q: %v", name, errno)
	}
}

// invalidateBelow invalidates every entry the kernel knows below n,
// deepest first. An invalidated entry is dropped from the kernel's cache
// at once if unused, else when its last user (an open file, a working
// directory) is done with it; then the kernel forgets the node and the
// pin on its image goes (imageNode.OnForget). Without this, the entries
// below a removed package would stay cached, unreachable, until memory
// pressure, and keep its image open.
func (s *Server) invalidateBelow(n *gofs.Inode) {
	for name, ch := range n.Children() {
		s.invalidateBelow(ch)
		if ch.IsDir() {
			// In case it stays in use (a working directory): its
			// listing may change too (a runtime union's).
			ch.NotifyContent(0, 0)
		}
		if errno := n.NotifyEntry(name); errno != 0 && errno != syscall.ENOENT {
			s.debugf("invalidate %q: %v", name, errno)
		}
	}
}

// walk returns the node at the slash-separated path p below root, if the
// kernel knows it.
func walk(root *gofs.Inode, p string) *gofs.Inode {
	n := root
	for comp := range strings.SplitSeq(p, "/") {
		if comp == "" {
			continue
		}
		if n = n.GetChild(comp); n == nil {
			return nil
		}
	}
	return n
}

// pluginNames lists the directory dir of plug's image.
func pluginNames(plug *image, dir string) []string {
	r, errno := plug.acquire()
	if errno != 0 {
		return nil
	}
	defer plug.release()
	ino, err := r.LookupPath(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			plug.fail("runtime union "+dir, err)
		}
		return nil
	}
	var names []string
	r.ReadDir(ino, 0, func(e squashfs.DirEntry) bool {
		names = append(names, e.Name)
		return true
	})
	return names
}
