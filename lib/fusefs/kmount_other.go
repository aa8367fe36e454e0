//go:build !linux

package fusefs

import (
	"errors"
	"os"
)

// kernelMount exists on Linux only; elsewhere reads go through the daemon.
type kernelMount struct{}

func mountKernel(*os.File, string) (*kernelMount, error) {
	return nil, errors.New("kernel mounts need Linux")
}

func (*kernelMount) open(string) (int, error) { return -1, errors.New("kernel mounts need Linux") }
func (*kernelMount) close()                   {}
