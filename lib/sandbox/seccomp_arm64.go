package sandbox

import "golang.org/x/sys/unix"

// The filter's architecture: the arm64 system call table (no mknod, only
// mknodat). 32-bit arm calls use other numbers; the filter kills a process
// making them.
const (
	auditArch = unix.AUDIT_ARCH_AARCH64
	checkX32  = false
)

func archDenied() []denied { return nil }

func archArgRules() []argRule { return nil }
