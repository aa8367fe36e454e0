// Command distri is the front end of the distri suite, apt-style:
// "distri install i3status", "distri remove", "distri update", "distri
// gc", "distri list", "distri search", "distri info", "distri files" and
// "distri owner" run distri-install's verbs; "distri build" and the
// other suite verbs run distri-build and so on, the way git runs its
// subcommands. Any other "distri VERB" runs distri-VERB (a plugin).
//
// The binaries are looked up first next to the distri binary itself,
// then in $PATH. distri does no work of its own: it replaces itself with
// the binary (exec), so exit codes, signals and the terminal are the
// binary's. Plugin names are plain words ([a-z0-9_-]), never paths, and
// built-in verbs always win over a distri-VERB in $PATH.
package main

import (
	"os"

	"distri.dev/distri/lib/cli"
)

func main() {
	if bin, ok := plugin(newRootCmd(cli.Stdio{}), os.Args[1:]); ok {
		if err := run(bin, os.Args[2:]); err != nil {
			os.Stderr.WriteString("distri: " + err.Error() + "\n")
			os.Exit(cli.ExitError)
		}
	}
	os.Exit(cli.Main(newRootCmd))
}
