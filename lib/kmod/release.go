package kmod

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RunningRelease returns the running kernel's release, e.g.
// "6.1.0-56-cloud-amd64": the directory below /lib/modules its modules
// are in.
func RunningRelease() (string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(uts.Release[:]), nil
}

// NewLogged returns a Loader of x and a Coldplug using it that log each
// module inserted and each driver that failed to load with logf, as
// distri-init does in the initramfs and in the booted system.
func NewLogged(x *Index, logf func(format string, v ...any)) (*Loader, *Coldplug) {
	l := NewLoader(x, func(name string) { logf("loaded module %s", name) })
	return l, NewColdplug(l, func(alias string, err error) { logf("driver for %s: %v", alias, err) })
}
