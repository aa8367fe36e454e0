package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/initramfs"
)

var rescueBB struct {
	once sync.Once
	path string
	err  string
}

// urootBusybox builds u-root's shell and initramfs.RescueCommands into
// one binary with gobusybox's makebb, from the versions go.mod pins
// (its tool directives), once per test process. gosh is built with its
// line editor from peterh/liner (tag goshliner): the default one
// draws a full-screen editor, which a serial console does not need.
func urootBusybox(t *testing.T) string {
	t.Helper()
	rescueBB.once.Do(func() {
		dir, err := os.MkdirTemp("", "distri-rescue-")
		if err != nil {
			rescueBB.err = err.Error()
			return
		}
		out := filepath.Join(dir, "bb")
		args := []string{"tool", "makebb", "-go-build-tags", "goshliner", "-o", out}
		for _, c := range initramfs.RescueCommands {
			args = append(args, "github.com/u-root/u-root/cmds/core/"+c)
		}
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			rescueBB.err = err.Error() + "\n" + string(b)
			return
		}
		rescueBB.path = out
	})
	if rescueBB.err != "" {
		t.Fatalf("build u-root busybox: %s", rescueBB.err)
	}
	return rescueBB.path
}

// TestBootRescueShellUroot boots with a root that never appears and
// u-root's shell and core commands as the rescue shell
// (initramfs.Rescue): on the serial console it runs ls, cat
// /proc/cmdline and dmesg | tail; exit tries the boot again, which fails
// again and starts the shell again.
func TestBootRescueShellUroot(t *testing.T) {
	e := setup(t)
	bb := urootBusybox(t)
	initrd := filepath.Join(t.TempDir(), "initramfs.img")
	st, err := initramfs.WriteFile(initrd, initramfs.Options{Init: e.init, KernelRelease: e.kernel.Release, ModulesDir: e.kernel.Modules,
		Rescue: &initramfs.Rescue{Busybox: bb, Commands: initramfs.RescueCommands}})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(initrd)
	bfi, _ := os.Stat(bb)
	t.Logf("initramfs with the u-root rescue shell: %d bytes (cpio %d bytes; the busybox %d bytes before compression)", fi.Size(), st.Uncompressed, bfi.Size())

	c := boot(t, e, initrd, "root=LABEL=nonesuch rd.timeout=1")
	c.Expect(`^distri-init: boot failed: gave up waiting for root LABEL=nonesuch after 1s`, bootTimeout)
	c.Expect(`^distri-init: starting rescue shell /bin/sh; exit it to try booting again$`, bootTimeout)
	time.Sleep(2 * time.Second) // the shell's first prompt
	c.Send("echo READY-$((40+2))")
	c.Expect(`^READY-42$`, 30*time.Second)
	c.Send("ls /")
	c.Expect(`^sysroot$`, 30*time.Second)
	c.Send("cat /proc/cmdline")
	c.Expect(`root=LABEL=nonesuch rd\.timeout=1`, 30*time.Second)
	c.Send("dmesg | tail -n 3; echo DMESG-DONE")
	c.Expect(`DMESG-DONE$`, 30*time.Second)
	c.Send("exit")
	c.Expect(`^distri-init: rescue shell exited; trying to boot again$`, 30*time.Second)
	c.Expect(`^distri-init: waiting for root LABEL=nonesuch, up to 1s`, bootTimeout)
	c.Expect(`^distri-init: starting rescue shell /bin/sh; exit it to try booting again$`, bootTimeout)
}

// TestBootLUKSRescue types a wrong passphrase three times: the boot
// fails and the rescue shell (testdata/rescue, which exits at once)
// starts; its exit retries the boot, which asks again, and the right
// passphrase then boots the root.
func TestBootLUKSRescue(t *testing.T) {
	e := setup(t)
	const pass = "correct horse battery staple"
	disk := filepath.Join(t.TempDir(), "disk.img")
	copyFile(t, disk, luksDisk(t, pass))
	initrd := filepath.Join(t.TempDir(), "initramfs.img")
	sh := distritest.StaticBinary(t, "distri.dev/distri/distri-init/testdata/rescue")
	if out, err := e.mkInitramfs(initrd, "--file", "bin/sh="+sh); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	c := boot(t, e, initrd, "rd.luks.name="+luksUUID+"=cryptroot root=UUID="+rootUUID, disk)
	for i := range 3 {
		c.Expect(`^distri-init: enter passphrase for cryptroot \(/dev/vda\): `, bootTimeout)
		c.Send(fmt.Sprintf("wrong %d", i))
	}
	c.Expect(`^distri-init: boot failed: unlock /dev/vda: wrong passphrase 3 times`, bootTimeout)
	c.Expect(`^distri-init: starting rescue shell /bin/sh; exit it to try booting again$`, bootTimeout)
	c.Expect(`^RESCUE SHELL session-leader=true tty=true`, bootTimeout)
	c.Expect(`^distri-init: rescue shell exited; trying to boot again$`, bootTimeout)
	c.Expect(`^distri-init: enter passphrase for cryptroot \(/dev/vda\): `, bootTimeout)
	c.Send(pass)
	c.Expect(`^distri-init: unlocked /dev/vda with keyslot 0`, bootTimeout)
	expectRoot(t, c, `^/dev/dm-0 ext4 rw$`)
}
