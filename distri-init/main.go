package main

import (
	"os"
	"path/filepath"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/modprobe"
)

func main() {
	if filepath.Base(os.Args[0]) == "entrypoint" {
		// A container's entry point (/entrypoint -> /init) is PID 1 of
		// the container, but not a system's init: serve /ro and run the
		// command.
		os.Args = append([]string{os.Args[0], "entrypoint", "--"}, os.Args[1:]...)
		os.Exit(cli.Main(newRootCmd))
	}
	if os.Getpid() == 1 {
		// The kernel's arguments to init are not ours to parse.
		runPID1()
	}
	if filepath.Base(os.Args[0]) == "modprobe" {
		// The kernel runs modprobe -q -- NAME to autoload a module: in the
		// initramfs /sbin/modprobe, in the booted system
		// /run/distri/modprobe, symlinks to distri-init.
		os.Exit(modprobe.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(cli.Main(newRootCmd))
}
