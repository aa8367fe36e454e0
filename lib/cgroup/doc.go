// Package cgroup creates a control group for a set of processes, bounds
// what they may use (processes, memory, CPU share), tells afterwards
// whether a bound was hit, and kills and removes the group so that nothing
// is left behind.
//
// A control group is a directory in a cgroup file system: writing a PID to
// its cgroup.procs moves that process (all its threads) into the group,
// and every process it forks afterwards is born there. The kernel enforces
// the limits written to the group's files (pids.max, memory.limit_in_bytes
// or memory.max, cpu.shares or cpu.weight) on all of them together, counts
// how often a limit was hit (pids.events, memory.oom_control or
// memory.events), and refuses to remove the directory while a process is
// in it.
//
// # v1 and v2
//
// Linux has two layouts. In cgroup v2 one "unified" hierarchy carries
// every controller; a group is one directory. In cgroup v1 each controller
// (or a few together) has its own hierarchy, mounted on its own directory
// (/sys/fs/cgroup/pids, /sys/fs/cgroup/memory, …); a group is one
// directory per hierarchy, and a process is added to each. Hosts in
// between mount a v2 hierarchy with no controllers in it next to v1 ones
// (as the development machines do: v1 pids, memory, cpu and freezer, and
// an empty v2 at /sys/fs/cgroup/unified).
//
// [New] uses v2 when the v2 hierarchy of this process's own group offers
// the pids and memory controllers, and v1 otherwise: the pids and memory
// hierarchies are required, cpu (for the CPU weight, as cpu.shares) and
// freezer (for [Group.Kill]) are used when mounted. Which hierarchy is
// mounted where, and where this process sits in each, come from
// /proc/self/mountinfo and /proc/self/cgroup.
//
// # Where groups are made
//
// A group is made below this process's own group in each hierarchy, not at
// the hierarchy's root: limits nest (a child can never use more than its
// parent allows), so a build started inside a container, a systemd unit
// or a CI job stays within what that one was given, and moving the build
// to the root would escape it. With v2 this needs the controllers to be
// enabled in the own group's cgroup.subtree_control, which the kernel
// allows only in a group without processes of its own (the "no internal
// processes" rule) or in the root; New enables them if it can and
// otherwise says which file to fix (e.g. run the builder in a systemd
// scope with Delegate=yes).
//
// # Why hand-written
//
// None of the allowed dependencies manages control groups (x/sys has the
// system calls, not the file layout), and the libraries that do
// (containerd/cgroups, opencontainers/runc/libcontainer) pull in dozens of
// modules for the five files per hierarchy used here.
package cgroup
