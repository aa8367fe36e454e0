package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

// verbs are the distri-<verb> binaries of the suite.
var verbs = []struct{ name, short string }{
	{"build", "build packages from recipes (distri-build)"},
	{"install", "install packages into a store (distri-install)"},
	{"fuse", "serve a package store as /ro (distri-fuse)"},
	{"mirror", "make and serve signed repositories (distri-mirror)"},
	{"mkimage", "make root trees, disk and container images (distri-mkimage)"},
	{"init", "PID 1 of a distri system (distri-init)"},
}

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "distri VERB [ARGS...]",
		Short: "front end of the distri suite",
		Long: `distri runs distri-VERB with the remaining arguments, looking for it next
to the distri binary first and in $PATH second.

Examples:
  % distri install i3status
  % distri build check pkgs/
  % distri mirror index --key distri.key repo/`,
	}
	for _, v := range verbs {
		root.AddCommand(&cobra.Command{
			Use:                v.name + " [ARGS...]",
			Short:              v.short,
			DisableFlagParsing: true, // every argument belongs to distri-<verb>
			RunE: func(cmd *cobra.Command, args []string) error {
				return run("distri-"+v.name, args)
			},
		})
	}
	return root
}

// run replaces this process with the binary named bin, so that its exit
// code, signals and terminal are the user's directly.
func run(bin string, args []string) error {
	path, err := lookup(bin)
	if err != nil {
		return err
	}
	argv := append([]string{bin}, args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

func lookup(bin string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), bin)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s is not installed next to distri or in $PATH", bin)
	}
	return p, nil
}
