package fstab

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/internal/pid1"
)

// loopExt4 makes an ext4 file system holding files, with the given
// UUID and label, on a loop device, and returns the device.
func loopExt4(t *testing.T, uuid, label string, files map[string]string) string {
	t.Helper()
	distritest.NeedRoot(t)
	distritest.NeedTool(t, "mkfs.ext4")
	distritest.NeedTool(t, "losetup")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for name, content := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "fs.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, "-U", uuid, "-L", label, img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v\n%s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

func randomUUID(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TestMountAll mounts an fstab under a temporary root: an ext4 file
// system on a loop device by UUID (type auto, a space in the mount
// point), the same by path and by a bind mount, a tmpfs, a noauto entry,
// a nofail entry for a device that never appears, and two entries that
// fail; then unmounts them.
func TestMountAll(t *testing.T) {
	uuid, label := randomUUID(t), fmt.Sprintf("fstab-%d", os.Getpid())
	dev := loopExt4(t, uuid, label, map[string]string{"marker": "hello from ext4\n"})
	root := t.TempDir()
	t.Cleanup(func() { // if the test failed half-way; runs before TempDir's removal
		mps, _ := pid1.Mountpoints()
		for i := len(mps) - 1; i >= 0; i-- {
			if strings.HasPrefix(mps[i], root+"/") {
				unix.Unmount(mps[i], unix.MNT_DETACH)
			}
		}
	})
	const missing = "00000000-1111-2222-3333-444444444444"
	fstab := filepath.Join(t.TempDir(), "fstab")
	content := fmt.Sprintf(`# test fstab
UUID=%[4]s / ext4 defaults 0 1
UUID=%[1]s  /data\040disk  auto  ro,noexec,x-systemd.device-timeout=1s,comment=test  0 2
tmpfs  /scratch  tmpfs  size=1m,mode=0700  0 0
LABEL=%[2]s  /noauto  ext4  noauto  0 0
UUID=%[4]s  /missing  ext4  nofail  0 0
tmpfs  /bad  tmpfs  nonsense=1  0 0
/dev/vdb broken
%[3]s  /bypath  ext4  ro,nosuid
/data\040disk  /bound  none  bind,ro
LABEL=%[2]s  /bylabel  ext4  ro
`, uuid, label, dev, missing)
	if err := os.WriteFile(fstab, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger := log.New(&buf, "", 0)
	start := time.Now()
	m, err := MountAll(context.Background(), Options{Root: root, Path: fstab, Log: logger, DeviceTimeout: 300 * time.Millisecond})
	t.Logf("MountAll took %v; log:\n%s", time.Since(start).Round(time.Millisecond), buf.String())

	// The failures of entries that are not nofail, naming file and line.
	if err == nil {
		t.Fatal("MountAll: no error for the bad entries")
	}
	for _, want := range []string{
		fstab + `:8: want 3 to 6 fields`,
		fstab + `:7: mount tmpfs on ` + root + `/bad (tmpfs, nonsense=1): invalid argument`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), missing) {
		t.Errorf("error names the nofail entry:\n%v", err)
	}
	logText := buf.String()
	for _, want := range []string{
		fmt.Sprintf("mounted %s (UUID=%s) on %s/data disk (ext4, ro)", dev, uuid, root),
		fmt.Sprintf("mounted tmpfs on %s/scratch (tmpfs, rw)", root),
		fmt.Sprintf("%s:6: not mounted (nofail): gave up waiting for UUID=%s after 300ms: block devices seen: ", fstab, missing),
		fmt.Sprintf("FAILED: %s:7: mount tmpfs on %s/bad (tmpfs, nonsense=1): invalid argument; booting on", fstab, root),
		fmt.Sprintf("FAILED: %s:8: want 3 to 6 fields", fstab),
		fmt.Sprintf("mounted %s on %s/bypath (ext4, ro)", dev, root),
		fmt.Sprintf("mounted %s/data disk on %s/bound (none, ro)", root, root),
		fmt.Sprintf("mounted %s (LABEL=%s) on %s/bylabel (ext4, ro)", dev, label, root),
	} {
		if !strings.Contains(logText, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	wantTargets := []string{root + "/data disk", root + "/scratch", root + "/bypath", root + "/bound", root + "/bylabel"}
	if got := m.Targets(); !reflect.DeepEqual(got, wantTargets) {
		t.Errorf("Targets() = %q, want %q", got, wantTargets)
	}

	// What the mounts show.
	for _, dir := range []string{"data disk", "bypath", "bound", "bylabel"} {
		b, err := os.ReadFile(filepath.Join(root, dir, "marker"))
		if err != nil || string(b) != "hello from ext4\n" {
			t.Errorf("%s/marker: %q, %v", dir, b, err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(root, dir), &st); err != nil {
			t.Fatal(err)
		}
		if st.Flags&unix.ST_RDONLY == 0 {
			t.Errorf("%s is not read-only (flags %#x)", dir, st.Flags)
		}
		if dir == "data disk" && st.Flags&unix.ST_NOEXEC == 0 {
			t.Errorf("%s is not noexec (flags %#x)", dir, st.Flags)
		}
		if dir == "bypath" && st.Flags&unix.ST_NOSUID == 0 {
			t.Errorf("%s is not nosuid (flags %#x)", dir, st.Flags)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(root, "scratch"), &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("scratch: statfs type %#x, %v; want tmpfs", st.Type, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "scratch")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("scratch: %v, %v; want mode 0700 from mode=0700", fi.Mode(), err)
	}
	for _, dir := range []string{"noauto", "missing"} {
		if _, err := os.Stat(filepath.Join(root, dir)); !os.IsNotExist(err) {
			t.Errorf("%s: %v; want no mount point made", dir, err)
		}
	}

	// A second run leaves mounted entries alone.
	buf.Reset()
	m2, _ := MountAll(context.Background(), Options{Root: root, Path: fstab, Log: logger, DeviceTimeout: time.Millisecond})
	if len(m2.Targets()) != 0 || !strings.Contains(buf.String(), root+"/scratch is already mounted; skipped tmpfs") {
		t.Errorf("second MountAll: targets %q, log:\n%s", m2.Targets(), buf.String())
	}

	buf.Reset()
	if err := m.UnmountAll(); err != nil {
		t.Errorf("UnmountAll: %v", err)
	}
	t.Logf("UnmountAll log:\n%s", buf.String())
	if want := fmt.Sprintf("unmounted %[1]s/bylabel\nunmounted %[1]s/bound\nunmounted %[1]s/bypath\nunmounted %[1]s/scratch\nunmounted %[1]s/data disk\n", root); buf.String() != want {
		t.Errorf("UnmountAll log:\n%s\nwant (reverse order):\n%s", buf.String(), want)
	}
	mps, err := pid1.Mountpoints()
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range mps {
		if strings.HasPrefix(mp, root+"/") {
			t.Errorf("%s still mounted", mp)
		}
	}
}

// TestMountAllNoFstab: a system without /etc/fstab mounts nothing and
// says nothing.
func TestMountAllNoFstab(t *testing.T) {
	var buf bytes.Buffer
	m, err := MountAll(context.Background(), Options{Root: t.TempDir(), Path: filepath.Join(t.TempDir(), "fstab"), Log: log.New(&buf, "", 0)})
	if err != nil || len(m.Targets()) != 0 || buf.Len() != 0 {
		t.Errorf("MountAll without fstab: %v, %q, log %q", err, m.Targets(), buf.String())
	}
	if err := m.UnmountAll(); err != nil {
		t.Error(err)
	}
}
