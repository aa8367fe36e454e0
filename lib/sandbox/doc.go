// Package sandbox runs one build step in a hermetic sandbox: fresh user,
// mount, PID, network, UTS and IPC namespaces, and a root assembled in a
// tmpfs that holds only
//
//   - /ro: the packages the step may use, bound read-only (a distri-fuse
//     mount or any directory tree);
//   - the source, bound read-only (really: writes fail with EROFS);
//   - the build directory and /dest, bound writable;
//   - /tmp (tmpfs), /proc (of the new PID namespace, with /proc/sys and
//     other kernel knobs read-only), a minimal /dev (null, zero, full,
//     random, urandom, fd links, /dev/shm tmpfs, a devpts instance of its
//     own with /dev/ptmx; no /dev/tty), and an /etc with passwd, group and
//     hosts only (no resolv.conf);
//   - the symlinks the caller asks for, e.g. /bin → /ro/bin, /usr → /,
//     /lib64/ld-linux-x86-64.so.2 → the loader under /ro, so the root looks
//     like an installed distri system. Nothing of the host's /usr is visible.
//
// The step gets exactly Options.Env, runs in Options.Dir and sees
// Options.Hostname. The network namespace has only lo (brought up), so
// nothing outside the sandbox is reachable, not even the host's loopback.
//
// # Confinement
//
// A recipe's build steps are not trusted: they come with the source of
// whatever is built. The step is root inside (builds expect it: make
// install, chmod, test suites) but that root is nobody on the host:
//
//   - User namespace: ids 0 to IDCount-1 inside are HostIDBase (0x70000000)
//     onwards on the host. The source, build directory and /dest are
//     idmapped binds (mount_setattr MOUNT_ATTR_IDMAP), so inside they show
//     the host's owners, the step's root may write what host root owns, and
//     what it writes belongs to host root, as before the user namespace.
//     /ro is not idmapped (FUSE and squashfs may not support it; nothing
//     is written there): its files appear owned by nobody, and are read as
//     others may.
//   - The step itself runs with no_new_privs and no capability at all
//     (effective, permitted, inheritable, ambient and the bounding set
//     empty): its root is root by id only, owns what it writes, and can
//     neither give files away, change ids nor pass permission bits; no
//     exec, setuid or not, gains anything.
//   - A seccomp filter refuses with EPERM: mount, umount2, pivot_root and
//     the new mount API; module loading and removal; kexec; reboot;
//     swapon/swapoff; setting or adjusting clocks; bpf, perf_event_open,
//     io_uring; keyctl, add_key, request_key; ptrace and
//     process_vm_readv/writev (all of ptrace, PTRACE_TRACEME included: a
//     debugger's test suite fails); setns; acct; syslog;
//     open_by_handle_at; vhangup; mknod/mknodat of character and block
//     devices (FIFOs, sockets and regular files are fine); ioctl TIOCSTI
//     and TIOCLINUX on any descriptor; unshare and clone with
//     CLONE_NEWUSER. clone3 gets ENOSYS (the filter cannot read its flags;
//     libc falls back to clone). A call through another ABI (i386 or x32
//     on amd64, arm32 on arm64) kills the process: their numbers differ
//     from the table the filter checks.
//   - The step runs in a session of its own without a controlling
//     terminal, and Run never passes it a terminal: Stdin that is one
//     reads as /dev/null, Stdout or Stderr that are one are copied
//     through a pipe.
//
// The user namespace alone stops most of the attacks (mknod of the host's
// disk, writing host-owned /proc/sys files, loading modules, setting the
// clock: the kernel checks those against the initial namespace); the
// capabilities, the filter and the read-only /proc/sys are the second
// line, and the filter also cuts kernel attack surface a build does not
// use.
//
// # Hooking a binary
//
// Go cannot fork without exec, so Run re-executes a helper binary (by
// default the running binary, /proc/self/exe) with argv[0] set to a marker
// and the namespaces set by clone flags. Every binary that calls Run must
// hand control to the helper first thing in main:
//
//	func main() {
//		if sandbox.IsInit(os.Args[0]) {
//			sandbox.Init() // does not return
//		}
//		...
//	}
//
// Tests do the same in TestMain, before m.Run.
//
// # Decisions
//
//   - A user namespace with a fixed range of 65536 ids, not the caller's
//     subordinate ids (/etc/subuid) nor a single id: Run needs root anyway
//     (idmapped mounts need CAP_SYS_ADMIN in the initial namespace, and so
//     do the control groups and lib/build's loop mounts), so it writes the
//     mapping itself, without newuidmap; 65536 ids keep builds that chown
//     to nobody or test setuid working. Concurrent steps share the range:
//     they cannot reach each other (separate PID, mount and IPC
//     namespaces, no shared writable directory).
//   - Binds are cloned by Run (open_tree OPEN_TREE_CLONE, made read-only
//     or idmapped with mount_setattr) and passed to the helper as file
//     descriptors over a socket (SCM_RIGHTS), which attaches them with
//     move_mount. The helper, an unprivileged id on the host, could not
//     even look up a build directory under a 0700 temporary directory.
//     For the same reason it assembles the root on a tmpfs over /tmp of
//     its own mount namespace, not on a directory of the caller's.
//   - The confinement (confine_linux.go) is applied to the helper's thread
//     that starts the step (locked with runtime.LockOSThread); the step is
//     cloned from it and inherits it. The helper's other threads keep
//     their capabilities, which it needs no more.
//   - The seccomp filter is classic BPF written by hand (confine_linux.go,
//     seccomp_<arch>.go): about fifty system calls and four argument rules
//     do not justify libseccomp (cgo) or a dependency outside the allowed
//     set; x/sys/unix provides the structures and numbers.
//   - The marker is argv[0], not an environment variable, so the helper's
//     environment is empty and the step's environment is exactly
//     Options.Env. The configuration travels as JSON over a socket (fd 3);
//     set-up errors come back over a second pipe (fd 4), on which the helper
//     writes a marker once the step has been started, so Run can tell a
//     set-up failure, or a helper binary that does not call Init, from a
//     failing step.
//   - The helper is PID 1 of the sandbox and the step is its child, not an
//     exec of it: PID 1 reaps orphans (wait4(-1)), and when the step exits
//     the helper exits with its status, which makes the kernel kill
//     everything left in the PID namespace. A step cannot leave a
//     background process running after Run returns.
//   - Read-only binds use mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY), so
//     mounts below the bound directory are read-only too; MS_RDONLY passed
//     together with MS_BIND is silently ignored by the kernel, which is how
//     the original distri's "read-only" source was writable.
//   - pivot_root, not chroot: the old root is detached, so no path leads
//     back to the host.
//   - /dev nodes are bind mounts of the host's nodes: mknod of a device is
//     refused in a user namespace.
//   - The step is started with ForkExec from the helper after pivot_root, so
//     Argv[0] without a slash is looked up in Env's PATH inside the sandbox.
//
// # Limitations
//
// Run needs root (see docs/sandbox.md on rootless builds). No /sys. The
// files of a build directory or source owned by ids beyond IDCount appear
// as nobody's inside. A writable bind must not lie inside a read-only one
// (its mount point would have to be created in the read-only tree).
// Stdin, Stdout and Stderr that are not *os.File are copied through pipes
// by the calling process. The helper gets SIGKILL if the thread that
// started it exits (Pdeathsig), which in Go happens only for a locked OS
// thread; cancel ctx to stop a step.
package sandbox
