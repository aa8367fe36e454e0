package main

// VM tests: boot Debian's cloud kernel in QEMU (TCG) with an initramfs
// from distri-mkimage and distri-init, and assert on distri-init's
// console lines. Disk layouts:
//
//   - plain: /dev/vda is an ext4 file system (no partition table);
//   - gpt: /dev/vda has a GPT, partition 2 is ext4;
//   - luks: /dev/vda is a LUKS2 container (16 MiB header) holding ext4.
//
// Every root's /init is testdata/rootinit, which prints
// "ROOT INIT REACHED …" and powers off. Set DISTRI_TEST_VM_LOG=1 to see
// each console log.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/kmod"
	"distri.dev/distri/lib/luks"
)

const (
	rootUUID  = "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77"
	rootLabel = "distri-root"
	partUUID  = "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58"
	luksUUID  = "ba0504ec-11b1-4015-b9fe-80939af15a81"
	// bootTimeout bounds one boot from QEMU start to the root's init.
	bootTimeout = 90 * time.Second
	// kernelArgs keep the kernel's own messages to warnings.
	kernelArgs = "loglevel=4"
)

type bootEnv struct {
	kernel  *distritest.Kernel
	mkimage string
	init    string
	initrd  string // the default initramfs
}

var (
	envOnce sync.Once
	env     *bootEnv
	envErr  string
)

// setup builds the binaries and the default initramfs once.
func setup(t *testing.T) *bootEnv {
	t.Helper()
	distritest.NeedQEMU(t)
	distritest.NeedTool(t, "mkfs.ext4")
	distritest.NeedTool(t, "depmod")
	envOnce.Do(func() {
		e := &bootEnv{
			kernel:  distritest.DebianKernel(t),
			mkimage: distritest.Binary(t, "distri.dev/distri/distri-mkimage"),
			init:    distritest.StaticBinary(t, "distri.dev/distri/distri-init"),
		}
		dir, err := os.MkdirTemp("", "distri-boot-test-")
		if err != nil {
			envErr = err.Error()
			return
		}
		e.initrd = filepath.Join(dir, "initramfs.img")
		if out, err := e.mkInitramfs(e.initrd); err != nil {
			envErr = fmt.Sprintf("%v\n%s", err, out)
			return
		}
		env = e
	})
	if env == nil {
		t.Fatalf("setup: %s", envErr)
	}
	return env
}

func (e *bootEnv) mkInitramfs(out string, extra ...string) ([]byte, error) {
	args := append([]string{"initramfs", "--kernel-release", e.kernel.Release, "--modules", e.kernel.Modules,
		"--init", e.init, "-o", out}, extra...)
	return exec.Command(e.mkimage, args...).CombinedOutput()
}

// rootTree returns a directory for a root file system whose /init is
// the program at init (testdata/rootinit by default).
func rootTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "etc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if files == nil {
		files = map[string]string{}
	}
	if _, ok := files["init"]; !ok {
		files["init"] = distritest.StaticBinary(t, "distri.dev/distri/distri-init/testdata/rootinit")
	}
	for dst, src := range files {
		p := filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "init.marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mkext4 writes an ext4 file system of sizeMB holding dir into image at
// offset (bytes), without mounting.
func mkext4(t *testing.T, image, dir string, offset int64, sizeMB int) {
	t.Helper()
	args := []string{"-q", "-F", "-t", "ext4", "-d", dir, "-U", rootUUID, "-L", rootLabel, "-b", "4096"}
	if offset > 0 {
		args = append(args, "-E", fmt.Sprintf("offset=%d", offset))
	}
	args = append(args, image, fmt.Sprintf("%dM", sizeMB))
	if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %v: %v\n%s", args, err, out)
	}
}

func plainDisk(t *testing.T, files map[string]string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "root.img")
	mkext4(t, img, rootTree(t, files), 0, 32)
	return img
}

func boot(t *testing.T, e *bootEnv, initrd, cmdline string, disks ...string) *distritest.Console {
	t.Helper()
	if initrd == "" {
		initrd = e.initrd
	}
	return distritest.StartVM(t, distritest.VMOptions{
		Kernel: e.kernel.Vmlinuz, Initrd: initrd, Append: kernelArgs + " " + cmdline, Disks: disks,
	})
}

// expectRoot waits for the root's init and the power-off.
func expectRoot(t *testing.T, c *distritest.Console, rootRE string) {
	t.Helper()
	m := c.Expect(`ROOT INIT REACHED pid=(\d+) root=(.*) marker=(\w+)`, bootTimeout)
	if m[1] != "1" || m[3] != "true" {
		t.Errorf("root init: pid=%s marker=%s, want pid 1 on our root", m[1], m[3])
	}
	if !regexp.MustCompile(rootRE).MatchString(m[2]) {
		t.Errorf("root mounted as %q, want %q", m[2], rootRE)
	}
	t.Logf("root's /init reached after %v", c.Elapsed().Round(time.Millisecond))
	c.Wait(30 * time.Second)
}

func TestBootPlainRoot(t *testing.T) {
	e := setup(t)
	img := plainDisk(t, nil)
	gptImg := gptDisk(t)
	for _, tt := range []struct {
		name, cmdline string
		disk          string
		dev           string
	}{
		{"uuid", "root=UUID=" + rootUUID + " ro", img, "/dev/vda"},
		{"label", "root=LABEL=" + rootLabel, img, "/dev/vda"},
		{"path", "root=/dev/vda rootfstype=ext4", img, "/dev/vda"},
		{"partuuid", "root=PARTUUID=" + partUUID + " ro", gptImg, "/dev/vda2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Each guest gets its own copy: ext4 is mounted read-write.
			disk := filepath.Join(t.TempDir(), "disk.img")
			copyFile(t, disk, tt.disk)
			c := boot(t, e, "", tt.cmdline, disk)
			c.Expect(`^distri-init: initramfs stage, mounted /dev /proc /sys /run`, bootTimeout)
			c.Expect(`^distri-init: loading drivers for \d+ devices`, bootTimeout)
			c.Expect(`^distri-init: waiting for root `+regexp.QuoteMeta(strings.Fields(tt.cmdline)[0][len("root="):]), bootTimeout)
			c.Expect(`^distri-init: found `+tt.dev+` \(ext4 UUID=`+rootUUID+` LABEL=`+rootLabel+`\)`, bootTimeout)
			mode := "rw"
			if slices.Contains(strings.Fields(tt.cmdline), "ro") {
				mode = "ro"
			}
			c.Expect(`^distri-init: mounted `+tt.dev+` on /sysroot \(ext4, `+mode+`\)`, bootTimeout)
			c.Expect(`^distri-init: switching root after .*, exec /init`, bootTimeout)
			expectRoot(t, c, "^"+tt.dev+" ext4 "+mode+"$")
		})
	}
}

// gptDisk returns a disk with a GPT whose second partition (PARTUUID
// partUUID) holds the root.
func gptDisk(t *testing.T) string {
	t.Helper()
	distritest.NeedTool(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "gpt.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 48<<20); err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\n" +
		"start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n" +
		"start=10240, size=65536, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=" + partUUID + ", name=root\n"
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	mkext4(t, img, rootTree(t, nil), 10240*512, 32)
	return img
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// luksDisk encrypts a plain root image with lib/luks. The KDF is cheap
// enough for a TCG guest.
func luksDisk(t *testing.T, passphrase string) string {
	t.Helper()
	plain := plainDisk(t, nil)
	src, err := os.Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	img := filepath.Join(t.TempDir(), "luks.img")
	dst, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := luks.Encrypt(dst, src, []byte(passphrase), luks.FormatOptions{
		UUID: luksUUID, SectorSize: 4096,
		KDF: luks.KDF{Type: "argon2id", Memory: 32 << 10, Time: 2, Threads: 1},
	}); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBootLUKS(t *testing.T) {
	e := setup(t)
	const pass = "correct horse battery staple"
	img := luksDisk(t, pass)
	for _, tt := range []struct {
		name  string
		typed []string // passphrases typed, the last one right
	}{
		{"passphrase", []string{pass}},
		{"wrong-then-right", []string{"Tr0ub4dor&3", pass}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			disk := filepath.Join(t.TempDir(), "disk.img")
			copyFile(t, disk, img)
			c := boot(t, e, "", "rd.luks.name="+luksUUID+"=cryptroot root=UUID="+rootUUID, disk)
			c.Expect(`^distri-init: waiting for LUKS volume UUID=`+luksUUID+` \(rd.luks\)`, bootTimeout)
			c.Expect(`^distri-init: found /dev/vda \(crypto_LUKS UUID=`+luksUUID+`\)`, bootTimeout)
			for i, p := range tt.typed {
				c.Expect(`^distri-init: enter passphrase for cryptroot \(/dev/vda\): `, bootTimeout)
				c.Send(p)
				if i < len(tt.typed)-1 {
					c.Expect(`^distri-init: wrong passphrase for cryptroot, 2 tries left`, bootTimeout)
				}
			}
			c.Expect(`^distri-init: unlocked /dev/vda with keyslot 0`, bootTimeout)
			c.Expect(`^distri-init: mapped /dev/vda as /dev/mapper/cryptroot \(/dev/dm-0, aes-xts-plain64, 4096-byte sectors\)`, bootTimeout)
			c.Expect(`^distri-init: found /dev/dm-0 \(ext4 UUID=`+rootUUID, bootTimeout)
			c.Expect(`^distri-init: mounted /dev/dm-0 on /sysroot \(ext4, rw\)`, bootTimeout)
			expectRoot(t, c, `^/dev/dm-0 ext4 rw$`)
			if strings.Contains(c.Log(), pass) {
				t.Errorf("the passphrase was echoed on the console")
			}
		})
	}
}

// TestBootCryptsetupLUKS boots a root that cryptsetup encrypted (offline
// reencrypt --encrypt of the ext4 image), unlocked with a key file in
// the initramfs, and found through root=UUID= of the LUKS volume alone.
func TestBootCryptsetupLUKS(t *testing.T) {
	e := setup(t)
	distritest.NeedTool(t, "cryptsetup")
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	mkext4(t, img, rootTree(t, nil), 0, 32)
	if err := os.Truncate(img, (32+32)<<20); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("unattended\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--batch-mode",
		"--reduce-device-size", "32M", "--uuid", luksUUID,
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "20000", "--key-file", key, img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	initrd := filepath.Join(dir, "initramfs.img")
	if out, err := e.mkInitramfs(initrd, "--file", "etc/luks.key="+key); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	c := boot(t, e, initrd, "root=UUID="+luksUUID+" rd.luks.key=/etc/luks.key", img)
	c.Expect(`^distri-init: found /dev/vda \(crypto_LUKS UUID=`+luksUUID+`\)`, bootTimeout)
	c.Expect(`^distri-init: unlocking /dev/vda with key file /etc/luks.key`, bootTimeout)
	c.Expect(`^distri-init: mapped /dev/vda as /dev/mapper/luks-`+luksUUID+` \(/dev/dm-0, aes-xts-plain64, (512|4096)-byte sectors\)`, bootTimeout)
	c.Expect(`^distri-init: mounted /dev/dm-0 on /sysroot \(ext4, rw\)`, bootTimeout)
	expectRoot(t, c, `^/dev/dm-0 ext4 rw$`)
}

// TestBootNoRoot asks for a root that never appears: distri-init must
// say what it waited for and what it saw, then power off.
func TestBootNoRoot(t *testing.T) {
	e := setup(t)
	img := plainDisk(t, nil)
	const missing = "00000000-1111-2222-3333-444444444444"
	c := boot(t, e, "", "root=UUID="+missing+" rd.timeout=3", img)
	c.Expect(`^distri-init: waiting for root UUID=`+missing+`, up to 3s`, bootTimeout)
	c.Expect(`^distri-init: boot failed: gave up waiting for root UUID=`+missing+` after 3s: block devices seen: /dev/vda \(ext4 UUID=`+rootUUID, bootTimeout)
	c.Expect(`^distri-init: no rescue shell in the initramfs; powering off in 10s`, bootTimeout)
	c.Expect(`^distri-init: powering off$`, 20*time.Second)
	c.Wait(20 * time.Second)
}

// TestBootSystem boots into distri-init as the root's PID 1 (the
// booted-system stage): distri-fuse serves an empty store on /ro, the
// hostname is set, /etc/fstab mounts a second disk (ext4 with a marker
// file) by UUID, swaps on a third and mounts a FAT partition of a fourth
// on /boot by PARTUUID as the image's fstab does, testdata/login stands
// in for /bin/login, and when it exits the system unmounts and shuts
// down. vfat is a module: the kernel asks distri-init's modprobe for
// fs-vfat, nls_cp437 and nls_ascii, found in the index made beforehand
// in /var/cache/distri/kmod for the kernel package that the root's
// /lib/modules links into (the fat and nls modules of Debian's kernel,
// no modules.dep). The guest has a virtio network card on QEMU's user
// network: distri-init loads its driver by modalias and gets a lease by
// DHCP, and the login fetches a file the test serves over HTTP.
func TestBootSystem(t *testing.T) {
	e := setup(t)
	distritest.NeedTool(t, "mkswap")
	dir := t.TempDir()
	const (
		dataUUID = "d47a0c55-7e1b-4a0f-9c3e-2b6f1a8d9e01"
		swapUUID = "5ea0f00d-1c2b-4d3e-8f40-516273849aab"
		bootUUID = "c9e1f0a2-6b3d-4e5f-8a79-0b1c2d3e4f50"
		marker   = "fstab marker 42\n"
		fatMark  = "vfat marker 43\n"
	)
	// A file served by the test: the guest fetches it from 10.0.2.2
	// (QEMU's user network forwards that to the host's 127.0.0.1) once
	// distri-init configured eth0 by DHCP.
	httpBody := fmt.Sprintf("served over http %d", time.Now().UnixNano())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hello" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, httpBody)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host := filepath.Join(dir, "hostname")
	fstabFile := filepath.Join(dir, "fstab")
	urlFile := filepath.Join(dir, "http-url")
	for p, content := range map[string]string{
		urlFile: fmt.Sprintf("http://10.0.2.2:%d/hello\n", ln.Addr().(*net.TCPAddr).Port),
		host:    "distri-vm\n",
		fstabFile: "UUID=" + rootUUID + " / ext4 defaults 0 1\n" +
			"UUID=" + dataUUID + " /mnt/data auto ro,nodev 0 2\n" +
			"UUID=" + swapUUID + " none swap sw 0 0\n" +
			"PARTUUID=" + bootUUID + " /boot vfat umask=0077 0 2\n",
	} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dataTree := filepath.Join(dir, "data")
	if err := os.Mkdir(dataTree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataTree, "marker"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	dataImg, swapImg := filepath.Join(dir, "data.img"), filepath.Join(dir, "swap.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-t", "ext4", "-d", dataTree, "-U", dataUUID, dataImg, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", dataImg, err, out)
	}
	if err := os.WriteFile(swapImg, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkswap", "-U", swapUUID, swapImg).CombinedOutput(); err != nil {
		t.Fatalf("mkswap %s: %v\n%s", swapImg, err, out)
	}
	bootImg := fatDisk(t, filepath.Join(dir, "boot.img"), bootUUID, "marker", fatMark)
	tree := rootTree(t, map[string]string{
		"init":         e.init,
		"distri-fuse":  distritest.StaticBinary(t, "distri.dev/distri/distri-fuse"),
		"bin/login":    distritest.StaticBinary(t, "distri.dev/distri/distri-init/testdata/login"),
		"etc/hostname": host,
		"etc/fstab":    fstabFile,
		"etc/http-url": urlFile,
	})
	if err := os.Mkdir(filepath.Join(tree, "roimg"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The modules the vfat mount asks for, as Debian's package ships
	// them (no modules.dep), and what Scan reads besides, laid out as a
	// booted system sees them: /lib/modules/<release> is a farm of
	// symlinks into the kernel package (/pkgs/<full> stands in for
	// /ro/<full>), whose index is in /var/cache/distri/kmod as lib/install
	// writes it at image time, with a marker alias: the guest scans
	// nothing.
	const kernelPkg = "linux-image-amd64-6.1-1"
	rel := filepath.Join("lib/modules", e.kernel.Release)
	pkgMods := filepath.Join(tree, "pkgs", kernelPkg, "out", rel)
	// And the network card's driver, which the initramfs does not load:
	// distri-init loads it by the device's modalias (virtio:d00000001v*),
	// with its dependencies (virtio and virtio_ring, which the initramfs
	// loaded for the disks, and net_failover, failover).
	for _, p := range []string{"kernel/fs/fat", "kernel/fs/nls", "modules.order", "modules.builtin", "modules.builtin.modinfo",
		"kernel/drivers/virtio", "kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/net_failover.ko", "kernel/net/core/failover.ko"} {
		copyFS(t, filepath.Join(pkgMods, p), filepath.Join(e.kernel.Modules, e.kernel.Release, p))
	}
	symlinkFarm(t, filepath.Join(tree, rel), pkgMods)
	modTree, err := kmod.Scan(pkgMods)
	if err != nil {
		t.Fatal(err)
	}
	cacheKey := kmod.PackageKey(e.kernel.Release, kernelPkg)
	premade := filepath.Join(tree, kmod.SystemCacheDirs[0])
	if err := kmod.WriteCache(modTree.Index(), premade, cacheKey); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(premade, cacheKey, "modules.alias"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "alias distri-premade-marker fat")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "root.img")
	mkext4(t, img, tree, 0, 64)
	c := distritest.StartVM(t, distritest.VMOptions{
		Kernel: e.kernel.Vmlinuz, Initrd: e.initrd, Append: kernelArgs + " root=UUID=" + rootUUID,
		Disks: []string{img, dataImg, swapImg, bootImg},
		Extra: []string{"-nic", "user,model=virtio-net-pci"},
	})
	c.Expect(`^distri-init: switching root after .*, exec /init`, bootTimeout)
	c.Expect(`^distri-init: system stage, mounted /dev/pts /dev/shm /tmp$`, bootTimeout)
	c.Expect(`^distri-init: serving /ro from /roimg \(distri-fuse pid \d+\)`, bootTimeout)
	c.Expect(`^distri-init: hostname distri-vm$`, bootTimeout)
	c.Expect(`^distri-init: kernel module helper /run/distri/modprobe -> /init$`, bootTimeout)
	// Which disk is which depends on the order the kernel probes them in
	// (the root is not always vda): the UUIDs say.
	dataDev := c.Expect(`^distri-init: mounted (/dev/vd[a-d]) \(UUID=`+dataUUID+`\) on /mnt/data \(ext4, ro\)$`, bootTimeout)[1]
	swapDev := c.Expect(`^distri-init: swap on (/dev/vd[a-d]) \(UUID=`+swapUUID+`\)$`, bootTimeout)[1]
	bootDev := c.Expect(`^distri-init: mounted (/dev/vd[a-d])1 \(PARTUUID=`+bootUUID+`\) on /boot \(vfat, rw\)$`, bootTimeout)[1]
	if dataDev == swapDev || dataDev == bootDev || swapDev == bootDev {
		t.Errorf("data on %s, swap on %s, /boot on %s1: not three disks", dataDev, swapDev, bootDev)
	}
	c.Expect(`^distri-init: started /bin/login on the console`, bootTimeout)
	m := c.Expect(`^LOGIN hostname=(\S+) session-leader=(\w+) ro=\[(.*)\] ro-err=(.*)`, bootTimeout)
	if m[1] != "distri-vm" || m[2] != "true" || m[4] != "<nil>" {
		t.Errorf("login saw hostname=%s session-leader=%s ro-err=%s, want distri-vm, true, <nil>", m[1], m[2], m[4])
	}
	m = c.Expect(`^LOGIN mounts=(.*)`, bootTimeout)
	for _, want := range []string{"/proc:proc", "/sys:sysfs", "/dev:devtmpfs", "/run:tmpfs", "/tmp:tmpfs", "/ro:fuse", "/mnt/data:ext4", "/boot:vfat"} {
		if !strings.Contains(m[1], want) {
			t.Errorf("mounts %s lack %s", m[1], want)
		}
	}
	m = c.Expect(`^LOGIN fstab-marker=(.*) err=(.*)`, bootTimeout)
	if want := fmt.Sprintf("%q", marker); m[1] != want || m[2] != "<nil>" {
		t.Errorf("the guest read /mnt/data/marker as %s (err %s), want %s", m[1], m[2], want)
	}
	if m = c.Expect(`^LOGIN swaps=(.*)`, bootTimeout); m[1] != swapDev {
		t.Errorf("the guest's swap areas: %q, want %s", m[1], swapDev)
	}
	m = c.Expect(`^LOGIN boot-marker=(.*) err=(.*)`, bootTimeout)
	if want := fmt.Sprintf("%q", fatMark); m[1] != want || m[2] != "<nil>" {
		t.Errorf("the guest read /boot/marker as %s (err %s), want %s", m[1], m[2], want)
	}
	// The kernel loaded them through /run/distri/modprobe: vfat for the
	// mount type, fat as its dependency, the nls modules for vfat's
	// default codepage and iocharset.
	m = c.Expect(`^LOGIN modprobe=(\S*) modules=(.*)`, bootTimeout)
	if m[1] != "/run/distri/modprobe" {
		t.Errorf("/proc/sys/kernel/modprobe is %q, want /run/distri/modprobe", m[1])
	}
	for _, want := range []string{"vfat", "fat", "nls_cp437", "nls_ascii"} {
		if !slices.Contains(strings.Fields(m[2]), want) {
			t.Errorf("module %s not loaded; /proc/modules: %s", want, m[2])
		}
	}
	// By hand: vfat is loaded already. The index was the pre-made one
	// (it has the marker), and nothing was scanned into /run.
	m = c.Expect(`^LOGIN modprobe-by-hand=(.*) took=(\S+) kmod-cache=(.*) kmod-run=(.*) premade-marker=(.*)`, bootTimeout)
	if m[1] != "<nil>" || m[3] != cacheKey || m[4] != "" || m[5] != "fat" {
		t.Errorf("modprobe -q -- fs-vfat in the guest: %s; /var/cache/distri/kmod %q, want %s; /run/distri/kmod %q, want nothing; modprobe -R distri-premade-marker: %q, want fat",
			m[1], m[3], cacheKey, m[4], m[5])
	}
	t.Logf("modprobe -q -- fs-vfat by hand in the guest took %s (index made beforehand)", m[2])
	// The network comes up in the background: the login fetches the
	// file once it can (it retries), and reads what DHCP configured.
	m = c.Expect(`^LOGIN http=(.*) err=(.*) after=(\S+) resolv=(.*)`, bootTimeout)
	if want := fmt.Sprintf("%q", httpBody); m[1] != want || m[2] != "<nil>" {
		t.Errorf("the guest fetched %s (err %s), want %s", m[1], m[2], want)
	}
	if m[4] != "nameserver 10.0.2.3" {
		t.Errorf("the guest's /etc/resolv.conf has %q, want nameserver 10.0.2.3", m[4])
	}
	t.Logf("the guest fetched the file %s after its login started", m[3])
	// The login kills distri-fuse with SIGKILL: distri-init restarts it
	// (at oom_score_adj -1000, as the first) and /ro is served again.
	c.Expect(`^distri-init: /distri-fuse \(pid \d+\) exited \(killed by SIGKILL\): /ro is gone; restarting it in 0s$`, bootTimeout)
	m = c.Expect(`^LOGIN fuse-oom=(\S*) fuse-restarted=(\w+) new-oom=(\S*) after=(\S+) err=(.*)`, bootTimeout)
	if m[1] != "-1000" || m[2] != "true" || m[3] != "-1000" || m[5] != "<nil>" {
		t.Errorf("distri-fuse oom_score_adj %s, restarted %s (oom_score_adj %s), err %s; want -1000, true, -1000, <nil>", m[1], m[2], m[3], m[5])
	}
	t.Logf("/ro was served again %s after SIGKILL to distri-fuse", m[4])
	c.Expect(`^distri-init: console session ended \(exit status 0\)`, bootTimeout)
	c.Expect(`^distri-init: shutting down: powering off`, bootTimeout)
	c.Expect(`^distri-init: unmounted /boot$`, bootTimeout)
	c.Expect(`^distri-init: swap off `+swapDev+`$`, bootTimeout)
	c.Expect(`^distri-init: unmounted /mnt/data$`, bootTimeout)
	c.Wait(30 * time.Second)
	// The line comes whenever DHCP is done: between other lines.
	if m := regexp.MustCompile(`(?m)^distri-init: network eth0: 10\.0\.2\.15/24 via 10\.0\.2\.2, dns 10\.0\.2\.3 \(dhcp, ([0-9.]+)s\)\r?$`).FindStringSubmatch(c.Log()); m == nil {
		t.Errorf("no console line for eth0's lease")
	} else {
		t.Logf("DHCP on eth0 took %ss in the guest", m[1])
	}
	// Whenever the new daemon is ready: maybe after the login saw /ro.
	if !regexp.MustCompile(`(?m)^distri-init: serving /ro again \(distri-fuse pid \d+\)\r?$`).MatchString(c.Log()) {
		t.Errorf("no console line for distri-fuse's restart")
	}
	if !regexp.MustCompile(`(?m)^distri-init: loaded module virtio_net\r?$`).MatchString(c.Log()) {
		t.Errorf("no console line for loading virtio_net")
	}
	if !bytes.Contains([]byte(c.Log()), []byte("distri-init: powering off")) {
		t.Errorf("no final power-off line")
	}
}

// symlinkFarm makes dir a tree of directories and relative symlinks to
// the files of src, as distri-fuse serves an exchange directory.
func symlinkFarm(t *testing.T, dir, src string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, r)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		target, err := filepath.Rel(filepath.Dir(dst), p)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fatDisk writes a disk image with a GPT whose one partition (PARTUUID
// partUUID, 4 MiB) is a FAT32 file system holding the file name, with
// go-diskfs, as lib/image writes the ESP: the host needs no mkfs.vfat
// and no vfat support.
func fatDisk(t *testing.T, img, partUUID, name, content string) string {
	t.Helper()
	d, err := diskfs.Create(img, 6<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	table := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 2048 + 8192 - 1,
			Type: gpt.EFISystemPartition, Name: "boot", GUID: partUUID}}}
	if err := d.Partition(table); err != nil {
		t.Fatal(err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "BOOT"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

// copyFS copies the file or tree src to dst.
func copyFS(t *testing.T, dst, src string) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		err = os.CopyFS(dst, os.DirFS(src))
	} else {
		copyFile(t, dst, src)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestBootRescueShell fails like TestBootNoRoot, but with /bin/sh in the
// initramfs (testdata/rescue stands in for it), which distri-init runs
// on the console; when it exits, the boot is tried again (and fails
// again: the stand-in powers off the second time it runs).
func TestBootRescueShell(t *testing.T) {
	e := setup(t)
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initramfs.img")
	sh := distritest.StaticBinary(t, "distri.dev/distri/distri-init/testdata/rescue")
	if out, err := e.mkInitramfs(initrd, "--file", "bin/sh="+sh); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	c := boot(t, e, initrd, "root=LABEL=nonesuch rd.timeout=1")
	c.Expect(`^distri-init: boot failed: gave up waiting for root LABEL=nonesuch after 1s: no block devices at all`, bootTimeout)
	c.Expect(`^distri-init: starting rescue shell /bin/sh; exit it to try booting again`, bootTimeout)
	m := c.Expect(`^RESCUE SHELL session-leader=(\w+) tty=(\w+) cmdline="(.*)"`, bootTimeout)
	if m[1] != "true" || m[2] != "true" {
		t.Errorf("rescue shell: session-leader=%s tty=%s, want both true", m[1], m[2])
	}
	if !strings.Contains(m[3], "root=LABEL=nonesuch") {
		t.Errorf("rescue shell: /proc/cmdline %q lacks root=LABEL=nonesuch", m[3])
	}
	// exit: the boot is tried again, waits for the root again, fails
	// again and starts the shell again.
	c.Expect(`^distri-init: rescue shell exited; trying to boot again$`, bootTimeout)
	c.Expect(`^distri-init: waiting for root LABEL=nonesuch, up to 1s`, bootTimeout)
	c.Expect(`^distri-init: boot failed: gave up waiting for root LABEL=nonesuch after 1s`, bootTimeout)
	c.Expect(`^distri-init: starting rescue shell /bin/sh; exit it to try booting again`, bootTimeout)
	c.Expect(`^RESCUE SHELL again$`, bootTimeout)
	c.Wait(30 * time.Second)
}
