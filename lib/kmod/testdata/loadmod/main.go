// Command loadmod is the /init of the initramfs that TestLoadCompressedVM
// boots: it loads the modules named in /modules.txt with a kmod.Loader
// from the tree under /lib/modules (compressed files, no modules.dep),
// prints what /proc/modules then lists, and powers off.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/kmod"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("LOADMOD FAIL: %v\n", err)
	} else {
		fmt.Println("LOADMOD OK")
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	os.MkdirAll("/proc", 0o755)
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	release, err := kmod.RunningRelease()
	if err != nil {
		return err
	}
	t, err := kmod.Scan(filepath.Join("/lib/modules", release))
	if err != nil {
		return err
	}
	l := kmod.NewLoader(t.Index(), func(name string) { fmt.Printf("loaded %s\n", name) })
	names, err := os.ReadFile("/modules.txt")
	if err != nil {
		return err
	}
	for _, n := range strings.Fields(string(names)) {
		if _, err := l.Load(n); err != nil {
			return err
		}
	}
	mods, err := os.ReadFile("/proc/modules")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(mods)), "\n") {
		fmt.Printf("proc/modules: %s\n", strings.Fields(line)[0])
	}
	return nil
}
