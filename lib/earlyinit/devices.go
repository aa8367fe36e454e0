package earlyinit

import "distri.dev/distri/lib/blockdev"

// newDevices returns the block devices the initramfs waits for, woken
// by block uevents (booter.Changed).
func newDevices() *blockdev.Set {
	s := blockdev.New("")
	s.NoneHint = "is the disk's driver in the initramfs?"
	return s
}
