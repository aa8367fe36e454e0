package main

import (
	"os"

	"distri.dev/distri/lib/cli"
)

func main() { os.Exit(cli.Main(newRootCmd)) }
