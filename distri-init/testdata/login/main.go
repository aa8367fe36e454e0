// Command login stands in for /bin/login in the VM test of the booted
// system: it reports what distri-init set up and exits, which ends the
// console session.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	host, _ := os.Hostname()
	var ro []string
	ents, err := os.ReadDir("/ro")
	for _, e := range ents {
		ro = append(ro, e.Name())
	}
	var mounts []string
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 2 {
				mounts = append(mounts, f[1]+":"+f[2])
			}
		}
	}
	sid, _ := unix.Getsid(0)
	fmt.Printf("LOGIN hostname=%s session-leader=%v ro=[%s] ro-err=%v\n", host, sid == os.Getpid(), strings.Join(ro, ","), err)
	fmt.Printf("LOGIN mounts=%s\n", strings.Join(mounts, " "))
	// TestBootSystem's /etc/fstab mounts a disk holding this marker and
	// swaps on another disk.
	marker, err := os.ReadFile("/mnt/data/marker")
	fmt.Printf("LOGIN fstab-marker=%q err=%v\n", marker, err)
	var swaps []string
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, l := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(l); len(f) > 0 {
				swaps = append(swaps, f[0])
			}
		}
	}
	fmt.Printf("LOGIN swaps=%s\n", strings.Join(swaps, " "))
}
