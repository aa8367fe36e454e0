// Command rescue stands in for /bin/sh in the initramfs in the VM test
// of a failed boot: it reports that it runs on the console and what the
// kernel command line is, and exits, which makes distri-init try the
// boot again. Started a second time (it leaves a mark in /run), it
// says so and powers the machine off itself.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

const mark = "/run/rescue-ran"

func main() {
	if _, err := os.Stat(mark); err == nil {
		fmt.Println("RESCUE SHELL again")
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		return
	}
	os.WriteFile(mark, nil, 0o644)
	sid, _ := unix.Getsid(0)
	_, err := unix.IoctlGetTermios(0, unix.TCGETS)
	cmdline, _ := os.ReadFile("/proc/cmdline")
	fmt.Printf("RESCUE SHELL session-leader=%v tty=%v cmdline=%q\n", sid == os.Getpid(), err == nil, strings.TrimSpace(string(cmdline)))
}
