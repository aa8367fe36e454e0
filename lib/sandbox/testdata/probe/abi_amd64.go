package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// foreignABI calls getpid through the x32 numbering (bit 30 set), which a
// seccomp filter that only knows the amd64 table would let through
// unchecked. It prints what the call returned, if the process survives.
func foreignABI() {
	const x32 = 0x40000000
	pid, _, e := unix.RawSyscall(x32|unix.SYS_GETPID, 0, 0, 0)
	fmt.Println(pid, e)
}
