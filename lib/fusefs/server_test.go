package fusefs

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/internal/mountinfo"
)

// TestFailedStartLeavesNoMount: a start that fails after the mount (here:
// another daemon holds the control socket) takes the mount down again.
func TestFailedStartLeavesNoMount(t *testing.T) {
	distritest.NeedFUSE(t)
	store := t.TempDir()
	mkpkg(t, store, "hello-amd64-1-1", map[string]string{"bin/hello": "hi"}, nil)
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	mnt := t.TempDir()
	_, err = Mount(t.Context(), Options{Store: store, Mountpoint: mnt, CtlSocket: sock})
	if err == nil || !strings.Contains(err.Error(), "another daemon is listening") {
		t.Errorf("Mount with a taken control socket = %v, want an error", err)
	}
	ms, rerr := mountinfo.Read()
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, m := range ms {
		if m.Point == mnt {
			unix.Unmount(mnt, unix.MNT_DETACH)
			t.Fatalf("%s is still mounted (%s) after the failed start", mnt, m.FSType)
		}
	}
}
