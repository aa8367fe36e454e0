package source

import (
	"bytes"
	"io"
	"os/exec"
)

// runPatch applies a patch with the host's patch(1). The build sandbox
// will run it from the bootstrap set instead.
func runPatch(dir string, patch []byte, out io.Writer) error {
	if _, err := exec.LookPath("patch"); err != nil {
		return errNoPatch
	}
	cmd := exec.Command("patch", "-p1", "--batch", "--forward")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(patch)
	cmd.Stdout = out
	cmd.Stderr = out
	return cmd.Run()
}
