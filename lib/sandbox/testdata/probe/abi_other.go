//go:build !amd64

package main

import "fmt"

// foreignABI: only amd64 has a second ABI the probe can reach from Go.
func foreignABI() { fmt.Println("no foreign ABI on this architecture") }
