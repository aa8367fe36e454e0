package fusefs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/fusectl"
	"distri.dev/distri/lib/internal/mountinfo"
	"distri.dev/distri/lib/pkgname"
)

// Options say what to serve where.
type Options struct {
	// Store is the package store, a folder of <full>.squashfs and
	// <full>.meta.textproto, e.g. /roimg.
	Store string

	// Mountpoint is where /ro is mounted, e.g. /ro. It must exist.
	Mountpoint string

	// Passthrough makes the daemon open files (FUSE OPEN) and hand the
	// kernel a backing file for each one of 128 KiB or more (FUSE
	// passthrough), where the kernel offers passthrough and the daemon
	// runs as root. By default (false), and where passthrough is not
	// offered, the kernel opens files without asking the daemon (FUSE's
	// no-open support), reads each page of a file from the daemon once and
	// keeps it in the page cache. See the package documentation for why
	// that is the default.
	Passthrough bool

	// AllowOther lets users other than the daemon's use the mount
	// (mount option allow_other). A system's /ro needs it.
	AllowOther bool

	// CtlSocket, if set, is the unix socket on which the daemon takes
	// commands (see lib/fusectl), e.g. /run/distri-fuse.sock. The mount
	// publishes it as the symlink MOUNTPOINT/.ctl. Empty: no control
	// socket (rescan with [Server.Rescan] or SIGHUP only).
	CtlSocket string

	// Log receives errors the daemon cannot return to anyone (a corrupt
	// image, a failed rescan), once each. nil discards them.
	Log *log.Logger

	// Verbose adds debug lines (images opened and closed, rescans) to Log.
	Verbose bool

	// DebugFUSE logs every FUSE request and answer to Log.
	DebugFUSE bool
}

// forever is the kernel cache timeout of everything: images never change,
// and the exchange directories are invalidated explicitly on rescan.
const forever = 365 * 24 * time.Hour

// Fixed inode numbers of virtual nodes. Exchange directories and symlinks
// get numbers from a counter starting at firstVirtualIno; image nodes
// have numbers of 1<<32 and above (see image.gen).
const (
	rootIno         = 1
	ctlIno          = 2
	firstVirtualIno = 16
	ctlName         = fusectl.MountLink
)

// Server is a mounted /ro.
type Server struct {
	opts Options
	log  *log.Logger

	fuse *fuse.Server
	root *rootNode

	tree atomic.Pointer[tree]
	gens atomic.Uint64 // image generations
	inos atomic.Uint64 // virtual inode numbers

	rescanMu sync.Mutex           // serialises scans; never taken by FUSE operations
	metas    map[string]*metaInfo // guarded by rescanMu
	vinos    map[string]uint64    // inode numbers of the current tree's virtual nodes; guarded by rescanMu

	// How files are opened, decided once from what the kernel offers
	// (see [Server.openMode]).
	modeOnce    sync.Once
	passthrough bool // files of passthroughMinSize or more are passed through
	openFiles   bool // OPEN is answered; false: ENOSYS, the kernel opens files itself

	ctlStop context.CancelFunc
	ctlDone chan struct{}
	ctlOnce sync.Once
}

// Mount scans the store, mounts /ro at opts.Mountpoint and serves it in
// the background until [Server.Unmount] or an external umount. The scan
// reads the store's listing and one meta file per package; no image is
// opened until something below /ro/<full>/ is accessed.
func Mount(ctx context.Context, opts Options) (*Server, error) {
	if opts.Store == "" || opts.Mountpoint == "" {
		return nil, errors.New("mount: store and mount point are required")
	}
	var err error
	if opts.Store, err = filepath.Abs(opts.Store); err != nil {
		return nil, err
	}
	if opts.Mountpoint, err = filepath.Abs(opts.Mountpoint); err != nil {
		return nil, err
	}
	s := &Server{
		opts:  opts,
		log:   opts.Log,
		metas: map[string]*metaInfo{},
	}
	if s.log == nil {
		s.log = log.New(io.Discard, "", 0)
	}
	s.inos.Store(firstVirtualIno)
	if err := s.rescan(ctx); err != nil {
		return nil, err
	}

	var flags uintptr = syscall.MS_RDONLY | syscall.MS_NODEV // not MS_NOSUID: setuid programs and file capabilities work
	mopts := fuse.MountOptions{
		AllowOther: opts.AllowOther,
		// default_permissions: the kernel checks modes and owners, so a
		// 0600 file in a package is private also under allow_other.
		// suid, ro, nodev: for the fusermount path when not root.
		Options:              []string{"default_permissions", "suid", "ro", "nodev"},
		FsName:               opts.Store,
		Name:                 "distri",
		DirectMount:          true,
		DirectMountFlags:     flags,
		EnableSymlinkCaching: true, // symlink nodes never change (a new target is a new inode)
		// The page cache of a file is never invalidated by the kernel on
		// its own: image contents are immutable.
		ExplicitDataCacheControl: true,
		MaxWrite:                 1 << 20, // larger reads when the daemon answers them
		// No POSIX ACLs: images cannot carry them. With ACL support
		// the kernel would cache their absence per inode, but ask
		// again for every inode it has forgotten: a GETXATTR per entry
		// of a cold ls -l. Without it, an ACL is "not supported"
		// (noXattr), and ls stops asking for the whole mount.
		EnableAcl: false,
		Debug:     opts.DebugFUSE,
		Logger:    s.log,
	}
	if os.Geteuid() != 0 {
		mopts.Options = []string{"default_permissions", "ro", "nodev"} // fusermount refuses suid for users
	}
	long := forever
	fsopts := &fs.Options{
		MountOptions:    mopts,
		EntryTimeout:    &long,
		AttrTimeout:     &long,
		NegativeTimeout: &long,
		NullPermissions: true, // a 0000 file in an image stays 0000
		RootStableAttr:  &fs.StableAttr{Ino: rootIno},
		Logger:          s.log,
	}
	s.root = &rootNode{srv: s}
	// fs.Mount, but with s.fuse set before the first request: Open asks
	// it what the kernel offers.
	raw := &rawFS{RawFileSystem: fs.NewNodeFS(s.root, fsopts), srv: s}
	server, err := fuse.NewServer(raw, opts.Mountpoint, &fsopts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", opts.Mountpoint, err)
	}
	s.fuse = server
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, errors.Join(fmt.Errorf("mount %s: %w", opts.Mountpoint, err), s.abandon())
	}
	s.openMode()
	s.debugf("mounted %s on %s (passthrough: %v, open requests: %v)", opts.Store, opts.Mountpoint, s.passthrough, s.openFiles)

	if opts.CtlSocket != "" {
		if err := s.listenCtl(); err != nil {
			return nil, errors.Join(err, s.abandon())
		}
	}
	return s, nil
}

// abandon takes down the mount of a start that failed half way, so that
// no dead mount stays behind (a /ro whose daemon exited answers
// ENOTCONN until someone unmounts it): unmount, or, if that fails (a
// process already entered it), detach. It returns an error only if
// neither worked.
func (s *Server) abandon() error {
	if err := s.Unmount(); err == nil {
		return nil
	}
	if !s.mounted() {
		return nil
	}
	return s.Detach()
}

// Abandon is [Server.Unmount], and if that fails, [Server.Detach]: for a
// caller whose start failed after Mount returned (e.g. it could not
// signal readiness), so that no dead mount stays behind.
func (s *Server) Abandon() error { return s.abandon() }

// Passthrough reports whether reads of large files are passed through to
// the kernel (FUSE passthrough) rather than answered by the daemon.
func (s *Server) Passthrough() bool { s.openMode(); return s.passthrough }

// openMode decides, once, how files are opened: with passthrough where
// asked for, offered by the kernel and the daemon is root; else without
// OPEN requests where the kernel says it supports that
// (FUSE_NO_OPEN_SUPPORT), else with OPEN and daemon reads. The kernel
// sends no OPEN before the INIT handshake is done, so the first Open may
// decide.
func (s *Server) openMode() {
	s.modeOnce.Do(func() {
		kernel := s.fuse.KernelSettings().Flags64()
		s.passthrough = s.opts.Passthrough && os.Geteuid() == 0 && kernel&fuse.CAP_PASSTHROUGH != 0
		s.openFiles = s.passthrough || kernel&fuse.CAP_NO_OPEN_SUPPORT == 0
	})
}

// Mountpoint returns the absolute mount point.
func (s *Server) Mountpoint() string { return s.opts.Mountpoint }

// Wait blocks until the file system is unmounted (by [Server.Unmount]
// or from outside), then stops the control socket.
func (s *Server) Wait() {
	s.fuse.Wait()
	s.stopCtl()
}

// Unmount unmounts /ro and stops the control socket. It fails (EBUSY)
// while files are open or a process has its working directory in /ro.
// A mount that was unmounted or detached from outside meanwhile (init
// detaches /ro at shutdown before it stops the daemon) is not an error.
func (s *Server) Unmount() error {
	if !s.mounted() {
		s.stopCtl()
		return nil
	}
	if err := s.fuse.Unmount(); err != nil {
		if !s.mounted() {
			s.stopCtl()
			return nil
		}
		return fmt.Errorf("unmount %s: %w", s.opts.Mountpoint, err)
	}
	s.stopCtl()
	return nil
}

// mounted reports whether the mount point still has a FUSE mount in
// this mount namespace. An error reading the mount table counts as
// mounted: then Unmount tries and reports what fails.
func (s *Server) mounted() bool {
	ms, err := mountinfo.Read()
	if err != nil {
		return true
	}
	for _, m := range ms {
		if m.Point == s.opts.Mountpoint && (m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.")) {
			return true
		}
	}
	return false
}

// Detach unmounts /ro lazily (MNT_DETACH), for when [Server.Unmount]
// fails because /ro is busy: the mount leaves the namespace at once, and
// the files still open in it keep working for as long as the daemon
// serves them.
func (s *Server) Detach() error {
	if err := unix.Unmount(s.opts.Mountpoint, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach %s: %w", s.opts.Mountpoint, err)
	}
	s.stopCtl()
	return nil
}

// Rescan re-reads the store and makes /ro show what it holds now: new
// packages appear and removed ones disappear at once (the kernel's
// caches are invalidated entry by entry), files already open keep
// working. Readers of /ro never wait for a rescan: the new state is
// built aside and swapped in atomically.
func (s *Server) Rescan(ctx context.Context) error {
	return s.rescan(ctx)
}

func (s *Server) rescan(ctx context.Context) error {
	s.rescanMu.Lock()
	defer s.rescanMu.Unlock()
	start := time.Now()
	old := s.tree.Load()
	pkgs, err := s.scanStore(ctx, old)
	if err != nil {
		return err
	}
	alloc := &inoAlloc{next: func() uint64 { return s.inos.Add(1) }, old: s.vinos, now: map[string]uint64{}}
	nt := buildTree(pkgs, old, alloc, time.Now())
	s.vinos = alloc.now
	changed := markSuperseded(pkgs)
	s.tree.Store(nt)
	if old == nil {
		s.debugf("scanned %d packages in %v", len(nt.names), time.Since(start))
		return nil
	}
	var added, removed int
	for full, img := range old.pkgs {
		if nt.pkgs[full] != img {
			removed++
		}
	}
	for full, img := range nt.pkgs {
		if old.pkgs[full] != img {
			added++
		}
	}
	if s.root != nil {
		// What the kernel knows below removed packages first: the
		// images stay open until it has forgotten those nodes.
		for full, img := range old.pkgs {
			if nt.pkgs[full] != img {
				if n := s.root.GetChild(full); n != nil {
					s.invalidateBelow(n)
				}
			}
		}
		s.notify(old, nt)
		// Attributes the kernel cached of revisions that a newer one
		// superseded now (their setuid bits go), or that are the
		// newest again (they come back).
		for _, img := range changed {
			if n := s.root.GetChild(img.full); n != nil {
				invalidateAttrsBelow(n)
			}
		}
	}
	// Images that left the store close now, or when their last open
	// file is closed.
	for full, img := range old.pkgs {
		if nt.pkgs[full] != img {
			img.remove()
		}
	}
	s.debugf("rescan: %d packages (+%d -%d) in %v", len(nt.names), added, removed, time.Since(start))
	return nil
}

// markSuperseded sets each image's superseded flag: whether a newer
// revision of its package is among pkgs. It returns the images whose
// flag changed.
func markSuperseded(pkgs []pkgInput) []*image {
	newest := map[string]pkgInput{}
	for _, p := range pkgs {
		u := p.name.Unqualified()
		if cur, ok := newest[u]; !ok || pkgname.Compare(cur.name, p.name) < 0 {
			newest[u] = p
		}
	}
	var changed []*image
	for _, p := range pkgs {
		sup := newest[p.name.Unqualified()].img != p.img
		if was := p.img.superseded.Swap(sup); sup != was {
			changed = append(changed, p.img)
		}
	}
	return changed
}

// invalidateAttrsBelow drops the attributes the kernel cached of n and
// every node it knows below n (offset -1: attributes only, not pages).
func invalidateAttrsBelow(n *fs.Inode) {
	n.NotifyContent(-1, 0)
	for _, ch := range n.Children() {
		invalidateAttrsBelow(ch)
	}
}

func (s *Server) logf(format string, args ...any) { s.log.Printf(format, args...) }

func (s *Server) debugf(format string, args ...any) {
	if s.opts.Verbose {
		s.log.Printf(format, args...)
	}
}

// listenCtl starts the control socket and publishes it as .ctl.
func (s *Server) listenCtl() error {
	p := s.opts.CtlSocket
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.Dial("unix", p); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another daemon is listening", p)
	}
	os.Remove(p) // stale
	ln, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.ctlStop = cancel
	s.ctlDone = make(chan struct{})
	go func() {
		defer close(s.ctlDone)
		if err := fusectl.Serve(ctx, ln, s.Rescan); err != nil {
			s.logf("control socket: %v", err)
		}
	}()
	// .ctl may have been looked up (negatively) before the socket was
	// there.
	s.root.EmbeddedInode().NotifyEntry(ctlName)
	return nil
}

func (s *Server) stopCtl() {
	s.ctlOnce.Do(func() {
		if s.ctlStop != nil {
			s.ctlStop()
			<-s.ctlDone
		}
	})
}

// DefaultCtlSocket returns the control socket path distri-fuse uses when
// none is given: for the conventional layout, a store <root>/roimg, it is
// <root>/run/distri-fuse.sock (what lib/fusectl's Rescan(root) dials);
// otherwise a socket under /run/distri-fuse named after the mount point.
func DefaultCtlSocket(store, mountpoint string) string {
	store = filepath.Clean(store)
	if filepath.Base(store) == "roimg" {
		return fusectl.SocketPath(filepath.Dir(store))
	}
	name := strings.ReplaceAll(strings.Trim(filepath.Clean(mountpoint), "/"), "/", "-")
	if name == "" {
		name = "root"
	}
	if len(name) > 60 { // unix socket paths are short
		h := fnv.New64a()
		h.Write([]byte(mountpoint))
		name = fmt.Sprintf("%x", h.Sum64())
	}
	return filepath.Join("/run/distri-fuse", name+".sock")
}
