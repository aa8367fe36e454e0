// Package sandbox runs one build step in a hermetic sandbox: fresh mount,
// PID, network, UTS and IPC namespaces, and a root assembled in a tmpfs that
// holds only
//
//   - /ro: the packages the step may use, bound read-only (a distri-fuse
//     mount or any directory tree);
//   - the source, bound read-only (really: writes fail with EROFS);
//   - the build directory and /dest, bound writable;
//   - /tmp (tmpfs), /proc (of the new PID namespace), a minimal /dev (null,
//     zero, full, random, urandom, tty, fd links, /dev/shm tmpfs), and an
//     /etc with passwd, group and hosts only (no resolv.conf);
//   - the symlinks the caller asks for, e.g. /bin → /ro/bin, /usr → /,
//     /lib64/ld-linux-x86-64.so.2 → the loader under /ro, so the root looks
//     like an installed distri system. Nothing of the host's /usr is visible.
//
// The step gets exactly Options.Env, runs in Options.Dir and sees
// Options.Hostname. The network namespace has only lo (brought up), so
// nothing outside the sandbox is reachable, not even the host's loopback.
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
//   - No user namespace. distri-build runs as root (it mounts FUSE and needs
//     CAP_SYS_ADMIN for the mounts anyway); a user namespace mapping root to
//     root would add nothing but restrictions (locked mount flags, binding
//     /dev nodes). The isolation comes from the other five namespaces and
//     pivot_root.
//   - The marker is argv[0], not an environment variable, so the helper's
//     environment is empty and the step's environment is exactly
//     Options.Env. The configuration travels as JSON over a pipe (fd 3);
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
//   - /dev nodes are bind mounts of the host's nodes, not mknod, so they
//     work wherever a device cgroup would refuse mknod.
//   - The step is started with ForkExec from the helper after pivot_root, so
//     Argv[0] without a slash is looked up in Env's PATH inside the sandbox.
//
// # Limitations
//
// Run needs root (CAP_SYS_ADMIN in the initial user namespace). No /dev/pts
// (no terminal inside), no /sys, no cgroup or resource limits, no seccomp.
// A writable bind must not lie inside a read-only one (its mount point would
// have to be created in the read-only tree). Stdin, Stdout and Stderr that
// are not *os.File are copied through pipes by the calling process. The
// helper gets SIGKILL if the thread that started it exits (Pdeathsig), which
// in Go happens only for a locked OS thread; cancel ctx to stop a step.
package sandbox
