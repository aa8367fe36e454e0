package sandbox_test

import (
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"distri.dev/distri/lib/distritest"
)

// TestFUSERO binds a FUSE mount as /ro, as distri-build does with
// distri-fuse, and checks it is visible and read-only inside.
func TestFUSERO(t *testing.T) {
	distritest.NeedFUSE(t)
	opts := testOptions(t)
	loop, err := fs.NewLoopbackRoot(opts.RO)
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	// allow_other: the step is not the mount's owner (host root) but an
	// id of the sandbox's user namespace.
	srv, err := fs.Mount(mnt, loop, &fs.Options{MountOptions: fuse.MountOptions{AllowOther: true}})
	if err != nil {
		t.Fatalf("mount loopback of %s at %s: %v", opts.RO, mnt, err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	opts.RO = mnt
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "visible", args: []string{"ls", "/ro/bin"}, want: "probe"},
		{name: "read-only", args: []string{"write", "/ro/bin/new"}, want: "EROFS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := probe(t, opts, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("probe %v = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
