package sysinit

import (
	"context"
	"path/filepath"

	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/kmod"
	"distri.dev/distri/lib/netconf"
)

// startNetwork loads the drivers of the devices that exist (the network
// card's among them: the initramfs loads only storage drivers) and then
// brings up the network (lib/netconf: lo, DHCP on each Ethernet
// interface), in the background: the console login does not wait for a
// DHCP server that may never answer. Each interface gets a console line
// when it has a lease or gave up (after 8 s).
func (s *system) startNetwork(ctx context.Context) {
	go func() {
		s.coldplug()
		netconf.Up(ctx, netconf.Options{Log: s.log})
	}()
}

// coldplug loads the drivers of every device in /sys/bus/*/devices by
// its modalias, as udev does at boot, from the booted system's module
// index (lib/kmod, cached as for modprobe), and waits for them.
func (s *system) coldplug() {
	rel, err := kmod.RunningRelease()
	if err != nil {
		s.log.Printf("no drivers loaded: %v", err)
		return
	}
	dir := filepath.Join("/", initconfig.ModulesDir, rel)
	x, err := kmod.OpenIndex(dir, kmod.SystemCacheDirs...)
	if err != nil {
		s.log.Printf("no drivers loaded: kernel modules in %s: %v", dir, err)
		return
	}
	_, c := kmod.NewLogged(x, s.log.Printf)
	c.Scan("/sys")
	c.Wait()
}
