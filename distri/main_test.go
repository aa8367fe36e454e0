package main

import (
	"os/exec"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
)

// TestRunsVerb checks that "distri VERB" runs the distri-VERB next to it,
// passing arguments and exit codes through.
func TestRunsVerb(t *testing.T) {
	distri := distritest.Binary(t, "distri.dev/distri/distri")
	distritest.Binary(t, "distri.dev/distri/distri-build") // built beside distri
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "version of the verb", args: []string{"build", "--version"}, wantOut: "distri-build version"},
		{name: "flags pass through", args: []string{"build", "check", "--frob"}, wantCode: 2, wantOut: "unknown flag: --frob"},
		{name: "own help lists verbs", args: []string{"--help"}, wantOut: "install"},
		{name: "unknown verb", args: []string{"frob"}, wantCode: 2, wantOut: `unknown command "frob"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(distri, tt.args...)
			cmd.Env = []string{"PATH=/nonexistent"} // only what is beside distri counts
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("distri %q = exit %d, %q; want exit %d, output containing %q", tt.args, code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}
