// Command rootinit is the /init of the root file systems the VM tests
// boot: it prints a marker line with how the root is mounted, then
// powers the machine off.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	root := "?"
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 4 && f[1] == "/" {
				opts := "rw"
				if strings.HasPrefix(f[3], "ro") {
					opts = "ro"
				}
				root = f[0] + " " + f[2] + " " + opts // the last "/" wins: it is on top
			}
		}
	}
	_, err := os.Stat("/init.marker")
	fmt.Printf("ROOT INIT REACHED pid=%d root=%s marker=%v\n", os.Getpid(), root, err == nil)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
