package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/sandbox"
)

// TestBuildLimits builds recipes whose build_step attacks a limit of
// build.Options.Limits (a shell fork bomb, dd with a 300 MiB buffer,
// a sleep past the timeout): each build fails with a StepError
// that names the step, the limit and the log, puts nothing into the
// repository and leaves no control group behind.
//
// Cost: importing bash and coreutils with their deps, and three builds
// that stop within seconds.
func TestBuildLimits(t *testing.T) {
	b, repo := newSandboxBuilder(t)
	b.opts.Limits = sandbox.Limits{Pids: 128, Memory: 128 << 20, Timeout: 3 * time.Second}
	pkgs := filepath.Join(t.TempDir(), "pkgs")
	copyRecipes(t, pkgs)
	tb, sum := tarball(t, filepath.Join(t.TempDir(), "attack-1.0.tar.gz"), map[string]string{"README": "attacks a limit\n"})
	for _, tt := range []struct {
		name, script, limit, want string
	}{
		{"forkbomb", "f() { f | f & }; f; wait", "pids", "hit the limit of 128 processes (--pids)"},
		// dd fills a buffer of bs bytes.
		{"memhog", "dd if=/dev/zero of=/dev/null bs=300M count=1", "memory", "ran out of memory: limit 128 MiB (--memory)"},
		{"sleeper", "sleep 60", "timeout", "exceeded the time limit of 3s (--timeout)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(pkgs, tt.name)
			write(t, filepath.Join(dir, "build.textproto"), []byte(`source: "`+tb+`"
hash: "`+sum+`"
version: "1.0-1"
dep: "bash"
dep: "coreutils"
build_step: { argv: ["/bin/sh", "-c", "`+strings.ReplaceAll(tt.script, `"`, `\"`)+`"] }
`))
			start := time.Now()
			_, err := b.Build(t.Context(), dir)
			t.Logf("%s stopped after %v: %v", tt.name, time.Since(start).Round(time.Millisecond), err)
			var se *StepError
			var le *sandbox.LimitError
			if !errors.As(err, &se) || !errors.As(err, &le) || le.Limit != tt.limit {
				t.Fatalf("Build = %v, want a StepError with a LimitError for %s", err, tt.limit)
			}
			logPath := filepath.Join(repo, "log", tt.name+"-amd64-1.0-1.log")
			for _, want := range []string{tt.want, `step "build_step`, logPath} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Build = %q, want it to say %q", err, want)
				}
			}
			if m, _ := filepath.Glob(filepath.Join(repo, "pkg", tt.name+"-*")); len(m) > 0 {
				t.Errorf("failed build left %v in the repository", m)
			}
			prefix := fmt.Sprintf("distri-sandbox-%d-", os.Getpid())
			filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
					t.Errorf("control group %s left behind", p)
					return fs.SkipDir
				}
				return nil
			})
		})
	}
}
