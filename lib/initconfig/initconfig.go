// Package initconfig is the contract between the code that writes an
// initramfs (lib/initramfs, at build time) and the code that runs in it
// as PID 1 (lib/earlyinit, at boot): where things are in the archive,
// what the generator tells the init in a small JSON file, and the kernel
// command line that image builders write and distri-init reads.
//
// # The initramfs
//
//	/init                          distri-init, a static binary
//	/sbin/modprobe -> /init        lets the kernel autoload modules (crypto templates, file systems) through distri-init
//	/etc/initrd-release            marks the initramfs: distri-init runs its initramfs stage when this exists
//	/etc/distri/initramfs.json     Config
//	/lib/modules/<release>/        the selected modules, modules.dep, modules.alias, … from depmod
//	/dev/console                   so that the kernel gives /init a console
//	/bin/sh                        optional: the rescue shell
//
// All paths here are relative to the archive's root, without a leading
// slash, as they are stored in the cpio archive.
package initconfig

import (
	"encoding/json"
	"fmt"
	"os"
)

// Paths in the initramfs, relative to its root.
const (
	// InitPath is distri-init.
	InitPath = "init"
	// ModprobePath is a symlink to /init: the kernel runs it (as
	// "/sbin/modprobe -q -- NAME") to load a module it needs, e.g. the
	// xts crypto template when dm-crypt sets up a mapping.
	ModprobePath = "sbin/modprobe"
	// ReleaseFile exists only in an initramfs (systemd's convention):
	// distri-init, started as PID 1, runs the initramfs stage when it
	// exists and the booted-system stage otherwise.
	ReleaseFile = "etc/initrd-release"
	// ConfigFile holds Config as JSON.
	ConfigFile = "etc/distri/initramfs.json"
	// ModulesDir holds one directory per kernel release, as /lib/modules.
	ModulesDir = "lib/modules"
	// RescueShell is started when booting fails, if it exists.
	RescueShell = "bin/sh"
	// SysrootDir is where distri-init mounts the root before switching
	// to it.
	SysrootDir = "sysroot"
)

// Paths in the booted system.
const (
	// SystemFuse is where distri-init (as PID 1 of the booted system)
	// looks for distri-fuse by default: next to /init, outside /ro,
	// which it is about to serve.
	SystemFuse = "/distri-fuse"
	// Store is the package store distri-fuse serves.
	Store = "/roimg"
	// ROMount is where the store is served.
	ROMount = "/ro"
)

// Config is what the generator tells distri-init about the initramfs
// it runs in.
type Config struct {
	// KernelRelease is the release of the kernel the modules are for,
	// e.g. "6.1.0-56-cloud-amd64". distri-init warns when the running
	// kernel's differs.
	KernelRelease string `json:"kernel_release"`
	// Load lists modules distri-init loads on every boot, besides
	// those that coldplug finds by modalias: modules no device asks for
	// and the booted system needs, e.g. ["fuse"]. They load once the
	// root device is found, off the critical path.
	Load []string `json:"load,omitempty"`
	// Crypt lists the modules dm-crypt needs (device-mapper and the
	// cipher of aes-xts-plain64), loaded only when a LUKS volume is to
	// be opened. Empty means CryptModules.
	Crypt []string `json:"crypt,omitempty"`
}

// CryptModules are the modules (names or aliases) for a dm-crypt
// mapping of aes-xts-plain64: the kernel would ask modprobe for the
// templates, but loading them first saves the round trips.
var CryptModules = []string{"dm_mod", "dm_crypt", "aes", "xts", "ecb"}

// ReadConfig reads the Config at path (e.g. "/" + ConfigFile).
func ReadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("parse %s: %w", path, err)
	}
	return c, nil
}

// Marshal returns c as the JSON that ConfigFile holds.
func (c Config) Marshal() []byte {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return append(b, '\n')
}
