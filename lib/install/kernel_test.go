package install_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/kmod"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/pack"
)

// addKernel packs Debian's cloud kernel (cached by distritest) as a
// kernel package, as the Debian importer lays one out (modules under
// out/lib/modules/<release>, the image in out/boot), and adds it to r.
func addKernel(t *testing.T, r *mirrortest.Repo) *distritest.Kernel {
	t.Helper()
	k := distritest.DebianKernel(t)
	tree := t.TempDir()
	mods := filepath.Join(tree, "out", "lib", "modules")
	boot := filepath.Join(tree, "out", "boot")
	for _, d := range []string{mods, boot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"cp", "-a", filepath.Join(k.Modules, k.Release), mods},
		{"cp", k.Vmlinuz, filepath.Join(boot, "vmlinuz-"+k.Release)},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	if _, err := pack.Pack(pack.Options{Name: "linux-image-amd64-6.1-1", Dir: tree, OutDir: filepath.Join(r.Dir, "pkg")}); err != nil {
		t.Fatal(err)
	}
	r.Add(t) // re-index
	return k
}

// checkModuleIndex checks that the kernel package's module index is in
// root's persistent kmod cache, under the key the booted system's
// modprobe computes for /lib/modules/<release> (kmod.CacheKey).
func checkModuleIndex(t *testing.T, root, release string) {
	t.Helper()
	entry := filepath.Join(root, kmod.SystemCacheDirs[0], kmod.PackageKey(release, "linux-image-amd64-6.1-1"))
	dep, err := os.ReadFile(filepath.Join(entry, "modules.dep"))
	if err != nil {
		t.Fatalf("no module index in the root: %v", err)
	}
	if want := "kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\n"; !strings.Contains(string(dep), want) {
		t.Errorf("%s/modules.dep lacks %q", entry, want)
	}
	if alias, err := os.ReadFile(filepath.Join(entry, "modules.alias")); err != nil || !strings.Contains(string(alias), "alias fs-vfat vfat\n") {
		t.Errorf("%s/modules.alias lacks fs-vfat: %v", entry, err)
	}
}

// TestInstallKernel checks that installing a kernel package puts its
// image and a fresh initramfs (started by the root's /init) into /boot,
// and its module index into /var/cache/distri/kmod.
func TestInstallKernel(t *testing.T) {
	r := mirrortest.NewRepo(t, libc1)
	k := addKernel(t, r)
	url := serve(t, r)
	initBin := distritest.StaticBinary(t, "distri.dev/distri/distri-init")

	t.Run("with distri-init", func(t *testing.T) {
		root := t.TempDir()
		b, err := os.ReadFile(initBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "init"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		var logw bytes.Buffer
		in := newInstaller(t, root, &logw, []string{r.PubFile(t)}, url)
		if _, err := in.Install(t.Context(), []string{"linux-image"}); err != nil {
			t.Fatalf("Install(linux-image) = %v\n%s", err, logw.String())
		}
		want, err := os.ReadFile(k.Vmlinuz)
		if err != nil {
			t.Fatal(err)
		}
		vmlinuz, err := os.ReadFile(filepath.Join(root, "boot", "vmlinuz-"+k.Release))
		if err != nil || !bytes.Equal(vmlinuz, want) {
			t.Errorf("/boot/vmlinuz-%s: %v, or not the package's kernel image", k.Release, err)
		}
		initrd, err := os.ReadFile(filepath.Join(root, "boot", "initramfs-"+k.Release+".img"))
		if err != nil {
			t.Fatalf("no initramfs: %v\n%s", err, logw.String())
		}
		if !bytes.HasPrefix(initrd, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Errorf("/boot/initramfs-%s.img does not start with the zstd magic", k.Release)
		}
		if !strings.Contains(logw.String(), "installed kernel "+k.Release) {
			t.Errorf("log does not mention the kernel:\n%s", logw.String())
		}
		checkModuleIndex(t, root, k.Release)
	})

	t.Run("without distri-init", func(t *testing.T) {
		root := t.TempDir()
		var logw bytes.Buffer
		in := newInstaller(t, root, &logw, []string{r.PubFile(t)}, url)
		if _, err := in.Install(t.Context(), []string{"linux-image"}); err != nil {
			t.Fatalf("Install(linux-image) = %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "boot", "initramfs-"+k.Release+".img")); err == nil {
			t.Errorf("an initramfs was made without a distri-init to start")
		}
		if !strings.Contains(logw.String(), "made no initramfs") {
			t.Errorf("log does not say why there is no initramfs:\n%s", logw.String())
		}
		checkModuleIndex(t, root, k.Release)
	})

	t.Run("not a kernel", func(t *testing.T) {
		root := t.TempDir()
		in := newInstaller(t, root, nil, []string{r.PubFile(t)}, url)
		if _, err := in.Install(t.Context(), []string{"libc"}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "boot")); err == nil {
			t.Errorf("installing a package without a kernel made /boot")
		}
	})
}
