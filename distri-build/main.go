package main

import (
	"os"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/sandbox"
)

func main() {
	if sandbox.IsInit(os.Args[0]) {
		sandbox.Init() // does not return
	}
	os.Exit(cli.Main(newRootCmd))
}
