// Package fusefs serves a distri package store as the /ro file system
// with go-fuse: one directory per package and the exchange directories
// that merge them.
//
// # What /ro shows
//
//	/ro/<full>/        a package's image, e.g. /ro/bash-amd64-5.2.15-3/out/bin/bash
//	/ro/bin, /ro/lib…  exchange directories (lib/exchange.Dirs): symlinks into packages,
//	                   e.g. /ro/bin/bash → ../bash-amd64-5.2.15-3/bin/bash, and
//	                   real directories, merged: every directory a package
//	                   ships there, also an empty one (share/aclocal/ in its
//	                   provides)
//	/ro/.ctl           symlink to the daemon's control socket (when it has one)
//
// [Mount] reads the store's directory listing and one meta file per
// package (its provides, written by lib/pack). It opens no image. An
// image is opened when something below /ro/<full>/ is first looked up,
// once, and shared by every node of the package.
//
// # Rescans
//
// [Server.Rescan] (the control socket's "rescan", SIGHUP in distri-fuse)
// lists the store again, reads the metas it has not seen, builds a new
// snapshot of /ro aside and swaps it in with one atomic pointer store.
// FUSE operations load the current snapshot and never take a lock a
// rescan holds, so a rescan cannot stall /ro (the original deadlocked
// here). Then the kernel is told what changed: NotifyDelete or
// NotifyEntry for each name added, removed or changed in /ro and in the
// exchange directories (which also drops cached misses), NotifyContent for
// each changed directory's listing. Nothing relies on a timeout: when
// Rescan returns, /ro shows the store.
//
// A package that left the store disappears at once; files open in it
// keep working (the open file holds the image), and its image is closed
// with the last of them.
//
// # Reads
//
// By default the daemon is not asked to open anything: the first OPEN
// and OPENDIR are answered with ENOSYS (FUSE's no-open and no-opendir
// support), and from then on the kernel opens files and directories by
// itself, sends READ and READDIRPLUS without a file handle, and keeps
// file pages and directory listings in its caches across opens (its
// default for handle-less files). Together with entries and attributes
// cached for good, walking and reading a package whose pages are cached
// costs no round trip at all; the first read of a file costs one READ
// per 128 KiB, answered with lib/squashfs. FLUSH is answered with ENOSYS
// too, so close(2) costs nothing.
//
// [Options.Passthrough] (distri-fuse --passthrough) asks for the other
// way: every open is an OPEN, and where the kernel offers FUSE
// passthrough and the daemon runs as root, a file of 128 KiB or more is
// handed to the kernel as a backing file and the daemon sees no reads:
// the image is mounted by the kernel's squashfs driver on a loop device
// (when such a file of it is first opened), as a detached mount
// (fsmount(2)) that is in no mount table, and the file is opened there.
// Smaller files are read by the daemon and kept in the page cache
// (FOPEN_KEEP_CACHE). Passthrough is not the default because it needs
// an OPEN and a RELEASE round trip for every open(2), which costs more
// than it saves: the page cache serves warm reads at the kernel's speed
// either way, and for cold reads the daemon's reads measured faster than
// the detached mount's (which reads the image's metadata a second time,
// through the loop device). A kernel that does not offer no-open
// (FUSE_NO_OPEN_SUPPORT) gets OPEN requests and daemon reads; one that
// does not offer no-opendir (FUSE_NO_OPENDIR_SUPPORT) gets OPENDIR.
//
// # Open files of removed packages
//
// With OPEN, an open file holds its image open. Without, the daemon does
// not see which files are open, but the kernel keeps the node of an open
// file, and of every directory above it up to /ro/<full>, until it is
// done with it. So the package root's node pins its image
// (imageNode.OnAdd/OnForget), and so does the top node of a runtime union
// plugin's entries. When a package is removed, the rescan invalidates
// every entry of it the kernel knows; each is dropped from the kernel's
// cache once unused, the kernel forgets the nodes (FORGET), and the image
// is closed with the last of them.
//
// # Decisions
//
//   - Conflicts. Only the highest revision of each <name>-<arch> feeds the
//     exchange directories (older revisions stay reachable under
//     /ro/<full>/). When different packages provide the same path, the
//     package whose <name>-<arch> sorts first (bytewise) owns it. The rule
//     depends only on the set of packages, so every mount and every rescan
//     of a store agrees, and installing an unrelated package never changes
//     who owns a path. Revisions of different packages are unrelated
//     numbers, so "newest wins" across packages would mean nothing.
//   - A directory beats a file: if any package has entries below a path,
//     the path is a directory and files of that name from other packages
//     are not shown. A name is never listed twice.
//   - Owner. An exchange entry is a symlink whose target names its owner,
//     so [Owner] and `distri-fuse owner` read the symlink. The
//     user.distri.owner xattr is on exchange directories (all packages
//     below them) only: Linux refuses user.* attributes on symlinks.
//   - Mount options: allow_other (a system /ro serves every user),
//     default_permissions (the kernel checks modes and owners; without it a
//     0600 file would be readable by all under allow_other), ro, nodev, and
//     deliberately not nosuid: setuid programs and file capabilities
//     (security.capability, served from the image's xattrs) must work. The
//     detached kernel mounts behind passthrough are nosuid,nodev: the FUSE
//     inode's attributes decide what runs.
//   - Setuid: only the newest revision of each package (per
//     <name>-<arch>, the one the exchange directories show) keeps its
//     setuid and setgid bits and file capabilities. An update leaves
//     the old revision in the store until gc, and a setuid program with
//     a hole would otherwise stay runnable as /ro/<old>/bin/x. FUSE has
//     no per-subtree nosuid, but the kernel honours only the mode bits
//     the daemon reports, so a superseded revision's regular files are
//     reported without S_ISUID/S_ISGID and without security.capability;
//     a rescan drops the attributes the kernel cached of every revision
//     whose status changed. A pinned older revision is superseded too.
//   - A start that fails after the mount (mount handshake, control
//     socket, readiness) unmounts again, or detaches if something is
//     already inside: no dead /ro is left.
//   - Provides entries of a meta that [exchange.CheckPath] refuses (a
//     "..", an absolute path, a newline) are ignored and logged: an
//     exchange symlink never points out of its package.
//   - Kernel caches: entries, attributes, misses and symlink targets are
//     cached for a year, directory listings are kept (FOPEN_CACHE_DIR) and
//     file pages too: images never change, and every change to the virtual
//     parts comes with a notification. Virtual nodes keep their inode
//     numbers across rescans while they are unchanged, so their caches
//     survive; a symlink whose target changes is a new inode.
//   - Extended attributes are not cached by the kernel, and ls -l asks
//     for security.selinux and system.posix_acl_access of every entry.
//     The kernel would stop asking if GETXATTR answered ENOSYS once, but
//     for every attribute of the mount, which would lose
//     security.capability (file capabilities of programs in packages).
//     Instead both are EOPNOTSUPP (squashfs images carry neither SELinux
//     labels nor ACLs, and the kernel's squashfs answers so too), after
//     which ls stops asking for the rest of the file system; other absent
//     attributes are ENODATA. POSIX ACL support stays off: with it the
//     kernel caches an inode's "no ACL", but asks again for every inode
//     it has forgotten, a GETXATTR per entry of a cold ls -l. A node's
//     xattrs are read from the image once and then answered from memory.
//   - Directory offsets are hashes of the names (see readdir.go), so a
//     listing read in several READDIRs across a rescan neither repeats nor
//     skips a name.
//   - Inode numbers: images' nodes are gen<<32 | squashfs inode number,
//     gen counting images the daemon has opened, so hard links within an
//     image share an inode and a package removed and installed again never
//     reuses a number. /ro is 1, .ctl 2, virtual nodes count from 16.
//   - Listing /ro opens nothing: READDIRPLUS returns no attributes for a
//     package whose image is not open, and a stat of /ro/<full> opens it.
//   - Provides. A meta without provides (an image made by mksquashfs, an
//     old meta) is indistinguishable from a package that provides nothing;
//     for both, the image is opened at scan time and its exchange paths
//     computed (lib/exchange.Paths), once per image.
//   - runtime_union: a plugin's out/<dir> (dir relative to out/, as in the
//     original) is merged into the same directory of its host package (a
//     full name, as the original's pkg). Only the newest revision of each
//     plugin takes part, plugins in <name>-<arch> order; the host's own
//     entries win, and a name is listed once. The merge is recursive: a
//     subdirectory that the host and plugins (or several plugins) have is
//     merged the same way.
//   - A corrupt image (one lib/squashfs rejects) makes its package answer
//     EIO, logged once with its name; the rest of /ro is unaffected.
//   - statfs: used = the images' total size, available = the store file
//     system's: df /ro says what is installed and what more fits.
package fusefs
