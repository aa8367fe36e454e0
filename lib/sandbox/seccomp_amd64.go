package sandbox

import "golang.org/x/sys/unix"

// The filter's architecture: the amd64 system call table. i386 (int 0x80)
// and x32 calls use other numbers; the filter kills a process making them.
const (
	auditArch = unix.AUDIT_ARCH_X86_64
	checkX32  = true
)

func archDenied() []denied {
	return []denied{
		{"iopl", unix.SYS_IOPL},
		{"ioperm", unix.SYS_IOPERM},
	}
}

func archArgRules() []argRule {
	return []argRule{
		{"mknod", unix.SYS_MKNOD, 1, modeTypeMask, []uint32{modeCharDev, modeBlockDev}},
	}
}
