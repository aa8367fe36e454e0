package earlyinit

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/internal/pid1"
)

// runOnConsole runs path on the console and waits for it. The kernel
// starts init without PATH; the shell gets one, so that the commands of
// a busybox-style rescue shell (bin/ls -> bb, …) are found.
func runOnConsole(path string) error {
	env := append(os.Environ(), "PS1=(initramfs) # ")
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/bin:/sbin:/usr/bin:/usr/sbin")
	}
	attr, con, err := pid1.ConsoleProcAttr(env)
	if err != nil {
		return err
	}
	p, err := os.StartProcess(path, []string{path}, attr)
	con.Close()
	if err != nil {
		return err
	}
	_, err = p.Wait()
	return err
}

// rootInit returns the init to exec in the new root, as a path inside
// it.
func (b *booter) rootInit(newRoot string) (string, error) {
	cands := []string{"/init", "/sbin/init"}
	if b.cmdline.Init != "" {
		cands = []string{b.cmdline.Init}
	}
	for _, c := range cands {
		// The root's init may be an absolute symlink, e.g. /sbin/init ->
		// /lib/systemd/systemd: resolve it inside the new root.
		if isExecutableIn(newRoot, c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("no init in the root file system (tried %v)", cands)
}

func isExecutableIn(root, p string) bool {
	for range 40 {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			return false
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
		}
		t, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return false
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = t
	}
	return false
}

// switchRoot makes /sysroot the root and execs its init, as
// util-linux's switch_root does: move the API mounts, delete the
// initramfs's files (they would otherwise hold their memory forever),
// move the new root onto /, chroot into it.
func (b *booter) switchRoot() error {
	newRoot := "/" + initconfig.SysrootDir
	init, err := b.rootInit(newRoot)
	if err != nil {
		return err
	}
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		target := newRoot + m
		if fi, err := os.Stat(target); err == nil && fi.IsDir() {
			if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
				return fmt.Errorf("move %s to %s: %w", m, target, err)
			}
		} else {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if err := freeInitramfs(newRoot); err != nil {
		b.log.Printf("freeing the initramfs: %v", err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	b.log.Printf("switching root after %s, exec %s", pid1.Since(b.start), init)
	err = unix.Exec(init, []string{init}, os.Environ())
	return fmt.Errorf("exec %s: %w", init, err)
}

// freeInitramfs deletes the initramfs's files, staying on its file
// system (so not in keep, which is a mount point, nor in /dev etc.).
// It refuses unless / is the kernel's rootfs (ramfs or tmpfs).
func freeInitramfs(keep string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs("/", &fs); err != nil {
		return err
	}
	if fs.Type != unix.RAMFS_MAGIC && fs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("/ is not an initramfs (file system type %#x)", fs.Type)
	}
	var st unix.Stat_t
	if err := unix.Lstat("/", &st); err != nil {
		return err
	}
	return removeOnDev("/", st.Dev, keep)
}

func removeOnDev(dir string, dev uint64, keep string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if p == keep {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Dev != dev {
			continue
		}
		if e.IsDir() {
			removeOnDev(p, dev, keep)
			unix.Rmdir(p)
		} else {
			unix.Unlink(p)
		}
	}
	return nil
}
