// Command distri is the front end of the distri suite: "distri VERB
// ARGS..." runs distri-VERB ARGS..., the way git runs its subcommands, so
// that "distri install i3status" works as the distri README writes it.
//
// distri-VERB is looked up first next to the distri binary itself, then
// in $PATH.
package main

import (
	"os"

	"distri.dev/distri/lib/cli"
)

func main() { os.Exit(cli.Main(newRootCmd)) }
