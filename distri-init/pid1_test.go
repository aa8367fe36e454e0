package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
)

// TestStageRefusesNotPID1 runs "distri-init initramfs" and "distri-init
// system" by hand, as root but not as PID 1, the way that once mounted
// over /dev and powered the host off after the failed boot. Each must
// exit 1 at once, saying why, with the mount table untouched.
//
// For safety even against a distri-init that does not refuse, the binary
// runs as PID 2 of a new PID namespace (reboot(2) there only signals the
// namespace's init, the shell) in a private mount namespace, and is
// killed with the namespace after a deadline.
func TestStageRefusesNotPID1(t *testing.T) {
	distritest.NeedRoot(t)
	unshare := distritest.NeedTool(t, "unshare")
	sh := distritest.NeedTool(t, "sh")
	bin := distritest.Binary(t, "distri.dev/distri/distri-init")
	const script = `before=$(cat /proc/self/mountinfo)
"$0" "$1" 2>&1
rc=$?
after=$(cat /proc/self/mountinfo)
[ "$before" = "$after" ] && echo MOUNTS-UNCHANGED
echo "RC=$rc"`
	for _, stage := range []string{"initramfs", "system"} {
		t.Run(stage, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			out, err := exec.CommandContext(ctx, unshare, "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
				sh, "-c", script, bin, stage).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", stage, err, out)
			}
			for _, want := range []string{
				"distri-init: " + stage + " stage (pid ",
				"not PID 1",
				"MOUNTS-UNCHANGED",
				"RC=1\n",
			} {
				if !strings.Contains(string(out), want) {
					t.Errorf("distri-init %s as PID 2 printed:\n%s\nwant %q", stage, out, want)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("distri-init %s took %v to refuse", stage, d)
			}
		})
	}
}
