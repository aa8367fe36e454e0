package distritest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Kernel is a Linux kernel for VM tests: Debian's cloud kernel, fetched
// with apt-get download and unpacked into the cache.
type Kernel struct {
	Release string // e.g. "6.1.0-56-cloud-amd64"
	Vmlinuz string // the kernel image
	Modules string // the lib/modules tree holding Release/ (without modules.dep: depmod never ran)
}

// CacheDir is where tests keep what they fetch or build once (see
// DefaultCacheDir).
func CacheDir(t testing.TB) string {
	t.Helper()
	d, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// DefaultCacheDir returns (and creates) $DISTRI_CACHE, else
// /var/cache/distri-test as root, else distri-test in the user's cache
// directory.
func DefaultCacheDir() (string, error) {
	d := os.Getenv("DISTRI_CACHE")
	if d == "" {
		d = "/var/cache/distri-test"
		if os.Geteuid() != 0 {
			uc, err := os.UserCacheDir()
			if err != nil {
				return "", err
			}
			d = filepath.Join(uc, "distri-test")
		}
	}
	return d, os.MkdirAll(d, 0o755)
}

var kernelOnce struct {
	sync.Mutex
	k *Kernel
}

// DebianKernel returns Debian's linux-image-cloud-amd64 kernel (the
// version apt knows as current), downloading and unpacking it into
// CacheDir on first use (FetchDebianKernel). It skips without apt-get
// and dpkg-deb.
func DebianKernel(t testing.TB) *Kernel {
	t.Helper()
	kernelOnce.Lock()
	defer kernelOnce.Unlock()
	if kernelOnce.k != nil {
		return kernelOnce.k
	}
	NeedTool(t, "apt-get")
	NeedTool(t, "dpkg-deb")
	k, err := FetchDebianKernel(CacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	kernelOnce.k = k
	return k
}

// FetchDebianKernel downloads Debian's current cloud kernel package
// with apt-get download into cache/debs and unpacks it into
// cache/kernel/<release>, once; later calls reuse what is there. Other
// processes may fetch at the same time: a lock file orders them.
func FetchDebianKernel(cache string) (*Kernel, error) {
	lock, err := os.OpenFile(filepath.Join(cache, ".kernel.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, err
	}
	pkg, err := cloudKernelPackage()
	if err != nil {
		// Offline: use a kernel fetched earlier, if any.
		if dirs, _ := filepath.Glob(filepath.Join(cache, "kernel", "*", ".complete")); len(dirs) > 0 {
			pkg = "linux-image-" + filepath.Base(filepath.Dir(dirs[len(dirs)-1]))
		} else {
			return nil, err
		}
	}
	release := strings.TrimPrefix(pkg, "linux-image-")
	dir := filepath.Join(cache, "kernel", release)
	k := &Kernel{
		Release: release,
		Vmlinuz: filepath.Join(dir, "boot", "vmlinuz-"+release),
		Modules: filepath.Join(dir, "lib", "modules"),
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return k, nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	matches, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(matches) == 0 {
		cmd := exec.Command("apt-get", "download", pkg)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%v: %w\n%s", cmd.Args, err, out)
		}
		matches, _ = filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
		if len(matches) == 0 {
			return nil, fmt.Errorf("apt-get download %s wrote no .deb into %s", pkg, debs)
		}
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command("dpkg-deb", "-x", matches[0], tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", matches[0], err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return k, nil
}

// cloudKernelPackage returns the kernel package the metapackage
// linux-image-cloud-amd64 depends on, e.g.
// linux-image-6.1.0-56-cloud-amd64.
func cloudKernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-cloud-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-cloud-amd64: %w (run apt-get update?)", err)
	}
	for l := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("linux-image-cloud-amd64 depends on no linux-image package (apt-get update?)")
}
