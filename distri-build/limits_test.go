package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/sandbox"
)

func TestLimitFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want sandbox.Limits
	}{
		{name: "defaults", want: sandbox.Limits{Pids: 4096, CPUWeight: 100, Timeout: 6 * time.Hour, Tmpfs: 4 << 30}},
		{
			name: "all set",
			args: []string{"--memory", "12G", "--pids", "100", "--cpu-weight", "50", "--timeout", "90m", "--tmpfs-size", "512M"},
			want: sandbox.Limits{Memory: 12 << 30, Pids: 100, CPUWeight: 50, Timeout: 90 * time.Minute, Tmpfs: 512 << 20},
		},
		{name: "no timeout", args: []string{"--timeout", "0"}, want: sandbox.Limits{Pids: 4096, CPUWeight: 100, Timeout: -1, Tmpfs: 4 << 30}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var lo limitOptions
			fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
			lo.addFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := lo.limits()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("limits(%v) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestLimitFlagsInvalid checks that build and batch refuse bad limits
// before building anything, naming the flag.
func TestLimitFlagsInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "12X"}, "--memory"},
		{[]string{"--memory", "1M"}, "--memory 1M: want at least 16M"},
		{[]string{"--pids", "0"}, "--pids 0"},
		{[]string{"--cpu-weight", "20000"}, "--cpu-weight 20000"},
		{[]string{"--timeout", "-1s"}, "--timeout -1s"},
		{[]string{"--tmpfs-size", "1K"}, "--tmpfs-size 1K"},
	} {
		for _, verb := range []string{"build", "batch"} {
			args := append(append([]string{verb, "--repo", dir}, tt.args...), dir)
			code, _, stderr := runCmd(t, args...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("distri-build %v = exit %d, stderr %q; want a failure naming %q", args, code, stderr, tt.want)
			}
		}
	}
}
