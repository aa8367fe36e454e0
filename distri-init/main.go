package main

import (
	"os"
	"path/filepath"

	"distri.dev/distri/lib/cli"
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
		// The kernel runs /sbin/modprobe -q -- NAME to autoload a module;
		// in the initramfs that is a symlink to /init.
		os.Args = append([]string{os.Args[0], "modprobe"}, os.Args[1:]...)
	}
	os.Exit(cli.Main(newRootCmd))
}
