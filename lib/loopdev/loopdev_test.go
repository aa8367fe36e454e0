package loopdev

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/squashfs"
)

// TestAttachConcurrent mounts and unmounts one image from several
// goroutines at once, as parallel builds and distri-fuse do: autoclearing
// devices that are still being torn down must not make an attach fail
// with EBUSY.
func TestAttachConcurrent(t *testing.T) {
	distritest.NeedRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(dir, "img.squashfs")
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := squashfs.WriteDir(f, tree, squashfs.WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 16, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		mnt := filepath.Join(dir, "mnt", string(rune('a'+w)))
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := Attach(image, mnt, "loopdev-test"); err != nil {
					errs <- err
					return
				}
				b, err := os.ReadFile(filepath.Join(mnt, "hello"))
				if uerr := unix.Unmount(mnt, 0); uerr != nil && err == nil {
					err = uerr
				}
				if err != nil {
					errs <- err
					return
				}
				if string(b) != "hello\n" {
					t.Errorf("%s/hello = %q", mnt, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
