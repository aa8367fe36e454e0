// Package ctl is the client side of a running distri-fuse: it finds the
// daemon serving a mount point through the mount's .ctl symlink and asks
// it to rescan its store.
//
// The wire protocol is lib/fusectl's: one command line ("rescan"), one
// answer line ("ok" or "error: <message>").
package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Name is the symlink in the root of a distri-fuse mount whose target is
// the daemon's control socket, e.g. /ro/.ctl → /run/distri-fuse.sock.
const Name = ".ctl"

// ErrNotMounted is returned by Socket when no distri-fuse with a control
// socket serves the mount point.
var ErrNotMounted = errors.New("no distri-fuse mounted")

// Socket returns the control socket of the daemon serving mountpoint.
func Socket(mountpoint string) (string, error) {
	target, err := os.Readlink(filepath.Join(mountpoint, Name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: %w", mountpoint, ErrNotMounted)
		}
		return "", fmt.Errorf("find the control socket of %s: %w", mountpoint, err)
	}
	return target, nil
}

// Rescan asks the daemon serving mountpoint (e.g. /ro, or /mnt/ro for
// an install into /mnt) to rescan its store and waits until it has: when
// Rescan returns nil, new packages are visible under mountpoint and
// removed ones are gone. It returns nil at once when nothing is mounted
// there, so installing into a root that has no /ro served just works.
// The wait is bounded only by ctx.
func Rescan(ctx context.Context, mountpoint string) error {
	sock, err := Socket(mountpoint)
	if errors.Is(err, ErrNotMounted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rescan: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("rescan %s: %w", mountpoint, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write([]byte("rescan\n")); err != nil {
		return fmt.Errorf("rescan %s: %w", mountpoint, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("rescan %s: %w", mountpoint, ctx.Err())
		}
		return fmt.Errorf("rescan %s: no answer from %s: %w", mountpoint, sock, err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("rescan %s: %s", mountpoint, strings.TrimPrefix(line, "error: "))
	}
	return nil
}
