package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
)

// verb is one built-in verb: distri VERB ARGS... runs bin [sub] ARGS....
type verb struct {
	name, bin, sub, short string
	group                 string
}

// verbs are the built-in verbs. The everyday package verbs are
// distri-install's subcommands (and distri-install itself for install);
// the others are the suite's binaries.
var verbs = []verb{
	{"install", "distri-install", "", "install packages with their dependencies (--dry-run: only print them)", "pkg"},
	{"remove", "distri-install", "remove", "remove packages from the installed set and the store", "pkg"},
	{"update", "distri-install", "update", "install the newest revision of every installed package", "pkg"},
	{"gc", "distri-install", "gc", "delete packages the installed set does not need", "pkg"},
	{"list", "distri-install", "list", "list installed or available packages", "pkg"},
	{"search", "distri-install", "search", "find packages by a part of their name or of a path they provide", "pkg"},
	{"info", "distri-install", "info", "describe a package: version, size, dependencies, repository", "pkg"},
	{"files", "distri-install", "files", "print the files of an installed package", "pkg"},
	{"owner", "distri-install", "owner", "print the package that provides a path", "pkg"},
	{"reset", "distri-install", "reset", "delete every package a saved list (distri list > FILE) does not name", "pkg"},
	{"env", "distri-install", "env", "print the places and settings distri uses", "pkg"},
	{"build", "distri-build", "", "build packages from recipes (distri-build)", "suite"},
	{"fuse", "distri-fuse", "", "serve a package store as /ro (distri-fuse)", "suite"},
	{"mirror", "distri-mirror", "", "make and serve signed repositories (distri-mirror)", "suite"},
	{"mkimage", "distri-mkimage", "", "make root trees, disk and container images (distri-mkimage)", "suite"},
	{"init", "distri-init", "", "PID 1 of a distri system (distri-init)", "suite"},
}

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "distri VERB [ARGS...]",
		Short: "front end of the distri suite",
		Long: `distri runs the everyday package verbs (install, remove, update, gc,
list, search, info, files, owner, reset, env: distri-install's) and the suite's
binaries (distri build runs distri-build, and so on), looking for them
next to the distri binary first and in $PATH second. Any other VERB runs
distri-VERB from next to distri or $PATH, as git runs its plugins; the
built-in verbs always win.

Commands that take package names or paths read them from standard input,
one a line, for "-", and print their results one a line, so that they
compose in pipelines.

Examples:
  % distri install i3status
  % distri install --dry-run i3status
  % distri search i3
  % distri info i3status
  % distri owner /bin/bash
  % distri files zlib | grep '\.so'
  % distri list --available lua | distri install -
  % distri remove i3status && distri gc`,
	}
	root.AddGroup(
		&cobra.Group{ID: "pkg", Title: "Package commands:"},
		&cobra.Group{ID: "suite", Title: "Suite commands:"},
	)
	for _, v := range verbs {
		page := v.bin
		if v.sub != "" {
			page += "-" + v.sub
		}
		root.AddCommand(&cobra.Command{
			Use:   v.name + " [ARGS...]",
			Short: v.short,
			Long: fmt.Sprintf("distri %s runs %s with the arguments; its --help and %s(1) say more.",
				v.name, strings.TrimSpace(v.bin+" "+v.sub), page),
			GroupID:            v.group,
			DisableFlagParsing: true, // every argument belongs to the binary
			RunE: func(cmd *cobra.Command, args []string) error {
				return run(v.bin, v.argv(args))
			},
			ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return complete(v.bin, v.argv(args), toComplete)
			},
		})
	}
	return root
}

func (v verb) argv(args []string) []string {
	if v.sub == "" {
		return args
	}
	return append([]string{v.sub}, args...)
}

// pluginName is what a plugin verb may be called: no path, no option.
var pluginName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// plugin returns the distri-VERB binary that args (distri's arguments)
// name, if args[0] is no built-in verb, flag or cobra's own command
// (help, completion, __complete) and such a binary exists.
func plugin(root *cobra.Command, args []string) (bin string, ok bool) {
	if len(args) == 0 || !pluginName.MatchString(args[0]) {
		return "", false
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == args[0] || c.HasAlias(args[0]) {
			return "", false
		}
	}
	bin = "distri-" + args[0]
	if _, err := lookup(bin); err != nil {
		return "", false
	}
	return bin, true
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

// complete asks bin's own completion (cobra's hidden __complete command)
// for the completions of args and toComplete, so that "distri install
// <TAB>" completes what "distri-install <TAB>" does: package names.
func complete(bin string, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	path, err := lookup(bin)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	argv := append(append([]string{"__complete"}, args...), toComplete)
	out, err := exec.Command(path, argv...).Output()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var comps []cobra.Completion
	directive := cobra.ShellCompDirectiveDefault
	for l := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if d, ok := strings.CutPrefix(l, ":"); ok {
			if n, err := strconv.Atoi(d); err == nil {
				directive = cobra.ShellCompDirective(n)
			}
			break
		}
		if l != "" {
			comps = append(comps, l)
		}
	}
	return comps, directive
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
