package main

// VM tests of distri-mkimage disk: the image boots in QEMU with OVMF
// (UEFI) through systemd-boot, distri-init finds (and unlocks) the root,
// and the root's /init (distri-init/testdata/rootinit) prints
// "ROOT INIT REACHED …" and powers off. Set DISTRI_TEST_VM_LOG=1 to see
// each console log.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
)

// bootTimeout bounds each step of a boot; a whole boot takes about 10 s.
const bootTimeout = 60 * time.Second

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	req := []string{"disk", "-o", filepath.Join(dir, "x.img"), "--root", dir, "--kernel", "k", "--initramfs", "i"}
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"no output", []string{"disk", "--root", dir, "--kernel", "k", "--initramfs", "i"}, 2},
		{"packages and --root", append(req, "base"), 2},
		{"packages without --repo", []string{"disk", "-o", filepath.Join(dir, "x.img"), "base"}, 2},
		{"--root without --kernel", []string{"disk", "-o", filepath.Join(dir, "x.img"), "--root", dir}, 2},
		{"bad size", append(req, "--size", "8X"), 2},
		{"encrypt without passphrase", append(req, "--encrypt"), 2},
		{"passphrase without encrypt", append(req, "--passphrase-file", "p"), 2},
		{"missing kernel", req, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, tt.args...)
			if code != tt.want {
				t.Errorf("distri-mkimage %v = exit %d, want %d; stderr:\n%s", tt.args, code, tt.want, errOut)
			}
			if tt.name == "packages and --root" && !strings.Contains(errOut, "either packages") {
				t.Errorf("usage error for packages and --root does not say to pick one:\n%s", errOut)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"8G", 8 << 30}, {"512M", 512 << 20}, {"1t", 1 << 40}, {"4096", 4096}, {"64K", 64 << 10},
	} {
		t.Run(tt.in, func(t *testing.T) {
			if got, err := parseSize(tt.in); err != nil || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// diskInputs are the kernel, initramfs, systemd-boot and a root tree for
// a bootable image.
type diskInputs struct {
	kernel, initramfs, sdboot, root string
}

func setupDisk(t *testing.T) diskInputs {
	t.Helper()
	distritest.NeedOVMF(t)
	distritest.NeedTool(t, "mkfs.ext4")
	distritest.NeedTool(t, "debugfs")
	distritest.NeedTool(t, "depmod")
	k := distritest.DebianKernel(t)
	in := diskInputs{kernel: k.Vmlinuz, sdboot: distritest.SystemdBoot(t)}
	dir := t.TempDir()
	in.initramfs = filepath.Join(dir, "initramfs.img")
	init := distritest.StaticBinary(t, "distri.dev/distri/distri-init")
	if code, _, errOut := runCmd(t, "initramfs", "--kernel-release", k.Release, "--modules", k.Modules,
		"--init", init, "-o", in.initramfs); code != 0 {
		t.Fatalf("initramfs: exit %d: %s", code, errOut)
	}
	in.root = filepath.Join(dir, "root")
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(in.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(distritest.StaticBinary(t, "distri.dev/distri/distri-init/testdata/rootinit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in.root, "init"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in.root, "init.marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in diskInputs) args(out string, extra ...string) []string {
	return append([]string{"disk", "-v", "-o", out, "--size", "400M", "--serial", "--seed", "1",
		"--root", in.root, "--kernel", in.kernel, "--initramfs", in.initramfs, "--systemd-boot", in.sdboot}, extra...)
}

func mkdisk(t *testing.T, args []string) {
	t.Helper()
	start := time.Now()
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("distri-mkimage %v: exit %d\n%s", args, code, stderr)
	}
	if got, want := stdout, args[3]+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	t.Logf("image built in %v", time.Since(start).Round(time.Millisecond))
}

// expectUEFI waits for the firmware to start the disk's boot loader and
// systemd-boot to start the entry's kernel with its initramfs, and
// returns the submatches of options (a regexp) on the kernel command line.
func expectUEFI(t *testing.T, c *distritest.Console, options string) []string {
	t.Helper()
	c.Expect(`BdsDxe: starting Boot\d+ "UEFI Misc Device"`, bootTimeout)
	c.Expect(`^EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path`, bootTimeout)
	m := c.Expect(`Command line: initrd=\\distri\\initramfs.img `+options+`$`, bootTimeout)
	c.Expect(`^distri-init: initramfs stage, mounted /dev /proc /sys /run`, bootTimeout)
	return m
}

const plainOptions = `root=PARTUUID=[0-9a-f-]{36} rw console=ttyS0,115200`

func expectRoot(t *testing.T, c *distritest.Console, dev string) {
	t.Helper()
	m := c.Expect(`ROOT INIT REACHED pid=(\d+) root=(.*) marker=(\w+)`, bootTimeout)
	if got, want := m[1]+" "+m[2]+" "+m[3], "1 "+dev+" ext4 rw true"; got != want {
		t.Errorf("root init: %q, want %q", got, want)
	}
	t.Logf("root's /init reached after %v", c.Elapsed().Round(time.Millisecond))
	c.Wait(30 * time.Second)
}

func TestDiskBoot(t *testing.T) {
	in := setupDisk(t)
	img := filepath.Join(t.TempDir(), "distri.img")
	mkdisk(t, in.args(img))
	fstab, err := os.ReadFile(filepath.Join(in.root, "etc", "fstab"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^UUID=(\S+) / ext4 `).FindStringSubmatch(string(fstab))
	if m == nil {
		t.Fatalf("fstab names no root by UUID:\n%s", fstab)
	}
	c := distritest.StartUEFIVM(t, distritest.UEFIVMOptions{Disk: img})
	expectUEFI(t, c, plainOptions)
	c.Expect(`^distri-init: waiting for root PARTUUID=`, bootTimeout)
	c.Expect(`^distri-init: found /dev/vda2 \(ext4 UUID=`+m[1]+` LABEL=distri-root\)`, bootTimeout)
	c.Expect(`^distri-init: mounted /dev/vda2 on /sysroot \(ext4, rw\)`, bootTimeout)
	expectRoot(t, c, "/dev/vda2")
}

func TestDiskBootEncrypted(t *testing.T) {
	in := setupDisk(t)
	dir := t.TempDir()
	const pass = "correct horse battery staple"
	pf := filepath.Join(dir, "pass")
	if err := os.WriteFile(pf, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "distri.img")
	mkdisk(t, in.args(img, "--encrypt", "--passphrase-file", pf))
	c := distritest.StartUEFIVM(t, distritest.UEFIVMOptions{Disk: img})
	m := expectUEFI(t, c, `rd.luks.uuid=(\S+) rd.luks.name=(\S+)=root root=/dev/mapper/root rw console=ttyS0,115200`)
	if m[1] != m[2] {
		t.Errorf("rd.luks.uuid=%s but rd.luks.name=%s=root", m[1], m[2])
	}
	c.Expect(`^distri-init: waiting for LUKS volume UUID=`+m[1], bootTimeout)
	c.Expect(`^distri-init: found /dev/vda2 \(crypto_LUKS UUID=`+m[1], bootTimeout)
	c.Expect(`^distri-init: enter passphrase for root \(/dev/vda2\): `, bootTimeout)
	c.Send(pass)
	c.Expect(`^distri-init: unlocked /dev/vda2 with keyslot 0`, bootTimeout)
	c.Expect(`^distri-init: mapped /dev/vda2 as /dev/mapper/root \(/dev/dm-0, aes-xts-plain64, 4096-byte sectors\)`, bootTimeout)
	c.Expect(`^distri-init: mounted /dev/dm-0 on /sysroot \(ext4, rw\)`, bootTimeout)
	expectRoot(t, c, "/dev/dm-0")
	if strings.Contains(c.Log(), pass) {
		t.Errorf("the passphrase was echoed on the console")
	}
}

// TestDiskUnprivileged runs distri-mkimage disk as an unprivileged user
// (nobody), with only mkfs.ext4 and debugfs in $PATH: no sudo, mount or
// losetup can be involved.
func TestDiskUnprivileged(t *testing.T) {
	distritest.NeedRoot(t)
	in := setupDisk(t)
	bin := distritest.Binary(t, "distri.dev/distri/distri-mkimage")
	dir, err := os.MkdirTemp("", "distri-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tools := filepath.Join(dir, "bin")
	os.Mkdir(tools, 0o755)
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if err := os.Symlink(distritest.NeedTool(t, tool), filepath.Join(tools, tool)); err != nil {
			t.Fatal(err)
		}
	}
	// nobody needs to read the inputs and write the output and fstab.
	for _, p := range []string{dir, filepath.Dir(filepath.Dir(in.root)), filepath.Dir(in.root), in.root, filepath.Join(in.root, "etc")} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "distri.img")
	args := in.args(img)
	// The test binaries' directory is private to root: copy it.
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(tools, "distri-mkimage")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + tools}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v as nobody: %v\n%s", cmd.Args, err, out)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 {
		t.Errorf("%s owned by uid %d, want 65534 (nobody)", img, st.Uid)
	}
	c := distritest.StartUEFIVM(t, distritest.UEFIVMOptions{Disk: img})
	expectUEFI(t, c, plainOptions)
	expectRoot(t, c, "/dev/vda2")
}

func TestImageRepoURLs(t *testing.T) {
	for _, tt := range []struct {
		repos []string
		want  string
	}{
		{[]string{"http://mirror.example/distri", "repo/"}, "http://mirror.example/distri"},
		{[]string{"https://a.example", "http://b.example"}, "https://a.example\nhttp://b.example"},
		{[]string{"/srv/repo"}, "# no repository: the image was made from folders (/srv/repo); add a URL, e.g. http://10.0.2.2:7080"},
	} {
		if got := strings.Join(imageRepoURLs(tt.repos), "\n"); got != tt.want {
			t.Errorf("imageRepoURLs(%q) = %q, want %q", tt.repos, got, tt.want)
		}
	}
}
