// Package kmod finds and loads Linux kernel modules, in place of kmod's
// modprobe and libkmod, for the two places distri needs them:
//
//   - at build time, [Scan] reads every module of a /lib/modules/<release>
//     tree (its .modinfo section: name, depends, aliases, softdeps), so the
//     initramfs generator can pick a set of modules and its dependency
//     closure even from a tree that has no modules.dep yet (a kernel
//     package's files, before its postinst ran depmod);
//   - at boot, [ReadIndex] reads the modules.dep, modules.alias,
//     modules.softdep and modules.builtin files that depmod wrote, and a
//     [Loader] loads modules by name, alias or modalias with finit_module,
//     dependencies first, safely from many goroutines at once;
//   - in the booted system, [OpenIndex] gives modprobe the index of a tree
//     without modules.dep (Debian's kernel package): read from a cache
//     directory ([SystemCacheDirs]) under [CacheKey] (the kernel
//     package's full name when the tree links into one), else scanned
//     and cached. Installing a kernel package writes it beforehand
//     (lib/install, [WriteCache] under [PackageKey]).
//
// # Not supported
//
// Module parameters (modprobe.d options), blacklists and install/remove
// commands.
//
// # Compressed modules
//
// Module files may be .ko.xz, .ko.zst or .ko.gz (Debian's newer kernels
// compress with xz). The initramfs generator stores them decompressed
// (the archive is compressed as a whole). The [Loader] offers a
// compressed file to the kernel first (MODULE_INIT_COMPRESSED_FILE) and
// decompresses it itself when the kernel cannot (see insertFile); a
// module that decompresses to more than [MaxModuleSize] is refused.
package kmod

import "strings"

// Normalize returns a module name as the kernel knows it: the file name
// without directory and .ko suffix, with '-' replaced by '_'. E.g.
// "kernel/drivers/md/dm-crypt.ko" becomes "dm_crypt".
func Normalize(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.Index(name, ".ko"); i >= 0 {
		name = name[:i]
	}
	return strings.ReplaceAll(name, "-", "_")
}
