package earlyinit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/blockdev"
	"distri.dev/distri/lib/devmapper"
	"distri.dev/distri/lib/luks"
)

// maxTries is how often a passphrase typed on the console may be wrong
// before distri-init gives up (as systemd-cryptsetup's tries=3).
const maxTries = 3

// unlock opens the LUKS volume on dev and maps it as /dev/mapper/<name>
// with dm-crypt, asking for the passphrase on the console unless a key
// file is given. It returns the mapped device.
func (b *booter) unlock(ctx context.Context, dev *blockdev.Device, name string) (*blockdev.Device, error) {
	f, err := os.Open(dev.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr, err := luks.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dev.Path, err)
	}
	// A keyslot whose argon2 memory exceeds what is free would get PID 1
	// killed by the OOM killer; Unlock skips it with a message instead.
	if avail, err := memAvailable("/proc/meminfo"); err == nil {
		hdr.MaxMemory = avail
	} else {
		b.log.Printf("no limit on LUKS KDF memory: %v", err)
	}
	var vol *luks.Volume
	if kf := b.cmdline.KeyFile; kf != "" {
		key, err := os.ReadFile(kf)
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		b.log.Printf("unlocking %s with key file %s", dev.Path, kf)
		vol, err = hdr.Unlock(f, key)
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("unlock %s with key file %s: %w", dev.Path, kf, err)
		}
	} else {
		for try := 1; ; try++ {
			pass, err := b.askPassphrase(fmt.Sprintf("enter passphrase for %s (%s): ", name, dev.Path))
			if err != nil {
				return nil, fmt.Errorf("read passphrase: %w", err)
			}
			vol, err = hdr.Unlock(f, pass)
			clear(pass)
			if err == nil {
				break
			}
			if !errors.Is(err, luks.ErrWrongPassphrase) {
				return nil, fmt.Errorf("unlock %s: %w", dev.Path, err)
			}
			if try == maxTries {
				return nil, fmt.Errorf("unlock %s: wrong passphrase %d times", dev.Path, maxTries)
			}
			b.log.Printf("wrong passphrase for %s, %d tries left", name, maxTries-try)
		}
	}
	defer clear(vol.Key)
	b.log.Printf("unlocked %s with keyslot %d", dev.Path, vol.Keyslot)

	// dm-crypt needs its module and the cipher templates.
	b.crypt.Start(b.mods, b.cryptModules())
	b.crypt.Wait()
	dm, err := vol.DMCrypt(dev.Size)
	if err != nil {
		return nil, err
	}
	params := dm.Params(dev.Dev)
	uuid := "CRYPT-LUKS2-" + strings.ReplaceAll(hdr.UUID, "-", "") + "-" + name
	md, err := devmapper.Create(name, uuid, []devmapper.Target{{Length: dm.Length, Type: "crypt", Params: params}}, b.cmdline.ReadOnly)
	dm.Key = nil
	if err != nil {
		return nil, err
	}
	node := fmt.Sprintf("/dev/dm-%d", md.Minor)
	if err := os.MkdirAll("/dev/mapper", 0o755); err == nil {
		os.Symlink("../"+filepath.Base(node), "/dev/mapper/"+name)
	}
	b.log.Printf("mapped %s as /dev/mapper/%s (%s, %s, %d-byte sectors)", dev.Path, name, node, dm.Cipher, dm.SectorSize)
	return b.devs.Wait(ctx, "/dev/mapper/"+name, b.cmdline.WaitTimeout(), func(d *blockdev.Device) bool {
		return d.DMName == name
	})
}

// askPassphrase prompts on the console and reads one line with echo
// off. The line's newline is not part of the passphrase.
func (b *booter) askPassphrase(prompt string) ([]byte, error) {
	con, err := os.OpenFile(b.consolePath, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer con.Close()
	fd := int(con.Fd())
	if old, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		t := *old
		t.Lflag &^= unix.ECHO
		t.Lflag |= unix.ICANON | unix.ECHONL
		t.Iflag |= unix.ICRNL
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
			return nil, fmt.Errorf("turn echo off: %w", err)
		}
		defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
		unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) // drop typed-ahead input
	}
	fmt.Fprint(con, "distri-init: "+prompt)
	var line []byte
	buf := make([]byte, 256)
	for {
		n, err := con.Read(buf)
		line = append(line, buf[:n]...)
		clear(buf)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			p := bytes.TrimRight(line[:i], "\r")
			out := append([]byte(nil), p...)
			clear(line)
			return out, nil
		}
		if err != nil {
			clear(line)
			if errors.Is(err, io.EOF) {
				return nil, errors.New("console closed")
			}
			return nil, err
		}
		if n == 0 {
			clear(line)
			return nil, errors.New("console closed")
		}
	}
}

// memAvailable returns MemAvailable of a /proc/meminfo file, in KiB.
func memAvailable(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n == 0 {
			break
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no MemAvailable line", path)
}
