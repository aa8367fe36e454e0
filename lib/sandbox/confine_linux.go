package sandbox

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptCaps are the capabilities the step's root keeps: none. It is root
// by id only: it owns what it writes, but cannot give files away, change
// ids or pass permission bits, and nothing of the host or of /ro is its.
// Test suites that refuse to run as root (gnu-make's) pass as it; a
// recipe that needs an id change inside the sandbox has none.
var keptCaps = []uint{}

// confine takes from the calling thread everything a build step does not
// need, before the step is cloned from it: no_new_privs, every capability
// but keptCaps (effective, permitted and bounding set; inheritable and
// ambient empty, so a setuid file or file capabilities gain nothing, and a
// process that drops to another id loses them all) and the seccomp filter
// (seccompFilter). The thread must be locked (runtime.LockOSThread): all
// of it is per thread.
func confine() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	var keep uint64
	for _, c := range keptCaps {
		keep |= 1 << c
	}
	for c := 0; ; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the last capability the kernel knows
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// Root's exec gets the bounding set; no_new_privs keeps it from
	// getting more than the parent had. Both are keptCaps, i.e. empty.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{{Effective: uint32(keep), Permitted: uint32(keep)}}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	filter, err := seccompFilter()
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("install seccomp filter: %w", err)
	}
	return nil
}

// Offsets in struct seccomp_data (linux/seccomp.h); arguments are 64 bits,
// and their low halves come first on the little-endian architectures the
// tables cover.
const (
	offNr   = 0
	offArch = 4
)

func offArgLow(i int) uint32 { return 16 + 8*uint32(i) }

// denied is a system call the filter refuses with EPERM.
type denied struct {
	name string // for errors and docs, e.g. "mount"
	nr   uintptr
}

// argRule refuses a system call with EPERM only for some values of one
// argument's low 32 bits: if arg&mask is one of values (mask 0: the whole
// low half).
type argRule struct {
	name   string
	nr     uintptr
	arg    int
	mask   uint32
	values []uint32
}

// Request numbers and flags the rules check, the same on amd64 and arm64
// (asm-generic).
const (
	tiocsti       = 0x5412
	tioclinux     = 0x541c
	cloneNewuser  = 0x10000000
	modeTypeMask  = unix.S_IFMT
	modeCharDev   = unix.S_IFCHR
	modeBlockDev  = unix.S_IFBLK
	x32SyscallBit = 0x40000000
)

// commonDenied are refused on every architecture: mounting and the mount
// API (the step's mounts stay as the helper made them), module loading,
// kexec, reboot, swap, the clocks, kernel attack surface a build does not
// use (bpf, perf_event_open, io_uring, keyrings), tracing and reading other
// processes' memory, joining other namespaces, process accounting, the
// kernel log, and opening files by handle.
func commonDenied() []denied {
	return []denied{
		{"mount", unix.SYS_MOUNT},
		{"umount2", unix.SYS_UMOUNT2},
		{"pivot_root", unix.SYS_PIVOT_ROOT},
		{"open_tree", unix.SYS_OPEN_TREE},
		{"move_mount", unix.SYS_MOVE_MOUNT},
		{"fsopen", unix.SYS_FSOPEN},
		{"fsconfig", unix.SYS_FSCONFIG},
		{"fsmount", unix.SYS_FSMOUNT},
		{"fspick", unix.SYS_FSPICK},
		{"mount_setattr", unix.SYS_MOUNT_SETATTR},
		{"init_module", unix.SYS_INIT_MODULE},
		{"finit_module", unix.SYS_FINIT_MODULE},
		{"delete_module", unix.SYS_DELETE_MODULE},
		{"kexec_load", unix.SYS_KEXEC_LOAD},
		{"kexec_file_load", unix.SYS_KEXEC_FILE_LOAD},
		{"reboot", unix.SYS_REBOOT},
		{"swapon", unix.SYS_SWAPON},
		{"swapoff", unix.SYS_SWAPOFF},
		{"settimeofday", unix.SYS_SETTIMEOFDAY},
		{"clock_settime", unix.SYS_CLOCK_SETTIME},
		{"clock_adjtime", unix.SYS_CLOCK_ADJTIME},
		{"adjtimex", unix.SYS_ADJTIMEX},
		{"bpf", unix.SYS_BPF},
		{"perf_event_open", unix.SYS_PERF_EVENT_OPEN},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP},
		{"io_uring_enter", unix.SYS_IO_URING_ENTER},
		{"io_uring_register", unix.SYS_IO_URING_REGISTER},
		{"keyctl", unix.SYS_KEYCTL},
		{"add_key", unix.SYS_ADD_KEY},
		{"request_key", unix.SYS_REQUEST_KEY},
		{"ptrace", unix.SYS_PTRACE},
		{"process_vm_readv", unix.SYS_PROCESS_VM_READV},
		{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV},
		{"setns", unix.SYS_SETNS},
		{"acct", unix.SYS_ACCT},
		{"syslog", unix.SYS_SYSLOG},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT},
		{"vhangup", unix.SYS_VHANGUP},
	}
}

// commonArgRules: device nodes (FIFOs, sockets and regular files stay
// allowed), keystrokes into a terminal, and new user namespaces.
func commonArgRules() []argRule {
	return []argRule{
		{"mknodat", unix.SYS_MKNODAT, 2, modeTypeMask, []uint32{modeCharDev, modeBlockDev}},
		{"ioctl", unix.SYS_IOCTL, 1, 0, []uint32{tiocsti, tioclinux}},
		{"unshare", unix.SYS_UNSHARE, 0, cloneNewuser, []uint32{cloneNewuser}},
		{"clone", unix.SYS_CLONE, 0, cloneNewuser, []uint32{cloneNewuser}},
	}
}

// bpf instructions and their assembly with symbolic jump targets.
type insn struct {
	code   uint16
	k      uint32
	jt, jf string // labels; "" means the next instruction
	label  string // this instruction's label
}

func stmt(code uint16, k uint32) insn { return insn{code: code, k: k} }

func jeq(k uint32, jt, jf string) insn {
	return insn{code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, k: k, jt: jt, jf: jf}
}

func assemble(prog []insn) ([]unix.SockFilter, error) {
	at := map[string]int{}
	for i, in := range prog {
		if in.label != "" {
			at[in.label] = i
		}
	}
	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		off := func(l string) (uint8, error) {
			if l == "" {
				return 0, nil
			}
			j, ok := at[l]
			if !ok || j <= i || j-i-1 > 255 {
				return 0, fmt.Errorf("seccomp filter: jump from %d to %q (%d) out of range", i, l, j)
			}
			return uint8(j - i - 1), nil
		}
		jt, err := off(in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := off(in.jf)
		if err != nil {
			return nil, err
		}
		out[i] = unix.SockFilter{Code: in.code, Jt: jt, Jf: jf, K: in.k}
	}
	return out, nil
}

// seccompFilter builds the classic BPF program: kill the process for a
// foreign architecture or ABI (i386 or x32 on amd64, arm32 on arm64: other
// system call numbers), EPERM for the denied calls and argument rules,
// ENOSYS for clone3 (its flags are in memory the filter cannot read; libc
// falls back to clone), allow the rest.
func seccompFilter() ([]unix.SockFilter, error) {
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		ret = unix.BPF_RET | unix.BPF_K
	)
	if auditArch == 0 {
		return nil, errors.New("seccomp filter: no system call table for this architecture")
	}
	prog := []insn{
		stmt(ld, offArch),
		jeq(auditArch, "", "kill"),
		stmt(ld, offNr),
	}
	if checkX32 {
		// syscall(-1) is no x32 call: the kernel answers ENOSYS (tracers
		// use it to skip a call).
		prog = append(prog,
			jeq(0xffffffff, "allow", ""),
			insn{code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, k: x32SyscallBit, jt: "kill"})
	}
	for _, d := range append(commonDenied(), archDenied()...) {
		prog = append(prog, jeq(uint32(d.nr), "deny", ""))
	}
	prog = append(prog, jeq(uint32(unix.SYS_CLONE3), "enosys", ""))
	for i, r := range append(commonArgRules(), archArgRules()...) {
		next := fmt.Sprintf("rule%d", i+1)
		prog = append(prog, jeq(uint32(r.nr), "", next), stmt(ld, offArgLow(r.arg)))
		if r.mask != 0 {
			prog = append(prog, stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, r.mask))
		}
		for _, v := range r.values {
			prog = append(prog, jeq(v, "deny", ""))
		}
		prog = append(prog, stmt(ret, unix.SECCOMP_RET_ALLOW))
		// The next rule starts by reloading the number.
		prog = append(prog, insn{code: ld, k: offNr, label: next})
	}
	prog = append(prog,
		insn{code: ret, k: unix.SECCOMP_RET_ALLOW, label: "allow"},
		insn{code: ret, k: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM), label: "deny"},
		insn{code: ret, k: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS), label: "enosys"},
		insn{code: ret, k: unix.SECCOMP_RET_KILL_PROCESS, label: "kill"},
	)
	return assemble(prog)
}
