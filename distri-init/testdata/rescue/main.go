// Command rescue stands in for /bin/sh in the initramfs in the VM test
// of a failed boot: it reports that it runs on the console and exits,
// which makes distri-init power off.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	sid, _ := unix.Getsid(0)
	_, err := unix.IoctlGetTermios(0, unix.TCGETS)
	fmt.Printf("RESCUE SHELL session-leader=%v tty=%v\n", sid == os.Getpid(), err == nil)
}
