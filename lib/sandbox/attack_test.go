package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/sandbox"
)

// openPTY opens a pseudo-terminal pair on the host.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestAttacks runs the probe's attack list as a build step: what a hostile
// recipe would do to own the host (issue 12). Every attempt must fail, and
// the step must still be able to do what builds do. The step's stdin is a
// terminal of the host, as when distri-build runs in one.
func TestAttacks(t *testing.T) {
	opts := testOptions(t)
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	disk := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	master, slave := openPTY(t)
	opts.Stdin = slave
	var stdout, stderr bytes.Buffer
	opts.Stdout = &stdout
	opts.Stderr = &stderr
	opts.Argv = []string{"probe", "attack", disk}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sandbox.Run(ctx, opts); err != nil {
		t.Fatalf("probe attack: %v\nstderr: %s", err, stderr.String())
	}
	got := map[string]string{}
	for line := range strings.Lines(stdout.String()) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		got[k] = v
	}
	const zero = "0000000000000000"
	// A kernel without CONFIG_MAGIC_SYSRQ has no /proc/sysrq-trigger;
	// otherwise it is read-only (and host root's, so EACCES comes first).
	sysrq := "EACCES"
	if _, err := os.Stat("/proc/sysrq-trigger"); err != nil {
		sysrq = "ENOENT"
	}
	want := map[string]string{
		"mknod-block":   "EPERM",
		"mknod-char":    "EPERM",
		"mknodat-block": "EPERM",
		"mount-disk":    "EPERM", // the mknod failed: nothing to mount
		"mount-tmpfs":   "EPERM",
		"fsopen":        "EPERM",
		"open-tree":     "EPERM",
		// core_pattern belongs to the host's root, whom the user
		// namespace does not map: the step is "others". Files of the
		// sandbox's own network namespace belong to its root, but
		// /proc/sys is read-only. No /sys at all.
		"open-write:/proc/sys/kernel/core_pattern": "EACCES",
		"open-write:own-sysctl":                    "EROFS",
		"open-write:/proc/sysrq-trigger":           sysrq,
		"open-write:/sys/kernel/uevent_helper":     "ENOENT",
		"remount-ro-rw":                            "EPERM",
		"mount-setattr-ro-rw":                      "EPERM",
		"umount-ro":                                "EPERM",
		"pivot-root":                               "EPERM",
		"settimeofday":                             "EPERM",
		"clock-settime":                            "EPERM",
		"adjtimex":                                 "EPERM",
		// No /dev/tty; stdin is a pipe, not the host's terminal, and the
		// ioctls are refused on any descriptor anyway.
		"open:/dev/tty":    "ENOENT",
		"tiocsti:stdin":    "EPERM",
		"tiocsti:stdout":   "EPERM",
		"tiocsti:stderr":   "EPERM",
		"tioclinux:stdin":  "EPERM",
		"tioclinux:stdout": "EPERM",
		"tioclinux:stderr": "EPERM",
		"finit-module":     "EPERM",
		"init-module":      "EPERM",
		"delete-module":    "EPERM",
		"kexec-load":       "EPERM",
		"kexec-file-load":  "EPERM",
		"reboot-cad-off":   "EPERM",
		"swapon":           "EPERM",
		"bpf":              "EPERM",
		"perf-event-open":  "EPERM",
		"keyctl":           "EPERM",
		"add-key":          "EPERM",
		"ptrace-pid1":      "EPERM",
		"unshare-user":     "EPERM",
		"unshare-mount":    "EPERM", // no CAP_SYS_ADMIN left
		// No capability at all, the bounding set empty.
		"status:CapInh":     zero,
		"status:CapPrm":     zero,
		"status:CapEff":     zero,
		"status:CapBnd":     zero,
		"status:CapAmb":     zero,
		"status:NoNewPrivs": "1",
		"status:Seccomp":    "2",
		"session-leader":    "true",
		// What builds do.
		"normal:write-build":     "ok",
		"normal:mkfifo":          "ok",
		"normal:mknod-fifo":      "ok",
		"normal:mknod-regular":   "ok",
		"normal:pty":             "ok",
		"normal:unix-socket":     "ok",
		"normal:syscall-minus-1": "ENOSYS",
		"normal:chown-build":     "EPERM",
		"normal:setuid-nobody":   "EPERM",
		"normal:write-readonly":  "EACCES",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probe attack mismatch (-want +got):\n%s\nstderr: %s", diff, stderr.String())
	}
	// Nothing was pushed into the host's terminal.
	mfd := int(master.Fd()) // once: Fd makes the file blocking
	if err := syscall.SetNonblock(mfd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := syscall.Read(mfd, buf); n > 0 {
		t.Errorf("the host's terminal received %q from the step (err %v)", buf[:n], err)
	}
	if b, err := os.ReadFile(opts.BuildDir + "/normal"); err != nil || string(b) != "x" {
		t.Errorf("ReadFile(build/normal) = %q, %v; want the step's write", b, err)
	}
}

// TestForeignABI makes a system call through the x32 numbering, whose
// numbers a filter written for the amd64 table would not recognise: the
// filter kills the process (SIGSYS) instead.
func TestForeignABI(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		distritest.Skip(t, "no second ABI reachable from Go on %s", runtime.GOARCH)
	}
	opts := testOptions(t)
	out, err := probe(t, opts, "foreign-abi")
	var ee *sandbox.ExitError
	if !errors.As(err, &ee) || ee.Code != 128+int(syscall.SIGSYS) {
		t.Errorf("probe foreign-abi = %q, %v; want killed by SIGSYS (exit status %d)", out, err, 128+int(syscall.SIGSYS))
	}
}

// TestOwnership checks the user namespace's mapping as the step sees it,
// and that what the step's root writes to the build directory and /dest
// belongs to the host's root (the binds are idmapped), as packages expect.
func TestOwnership(t *testing.T) {
	opts := testOptions(t)
	got, err := probe(t, opts, "read", "/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(fmt.Sprintf("%10d %10d %10d", 0, sandbox.HostIDBase, sandbox.IDCount)); got != want {
		t.Errorf("/proc/self/uid_map inside = %q, want %q", got, want)
	}
	for _, dir := range []string{"/build", "/dest"} {
		if _, err := probe(t, opts, "write", dir+"/owned"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{opts.BuildDir + "/owned", opts.Dest + "/owned"} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s is owned by %d:%d on the host, want 0:0", p, st.Uid, st.Gid)
		}
	}
}
