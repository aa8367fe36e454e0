// Package fusectl is the control protocol between the programs that
// change a package store and the distri-fuse daemon serving it.
//
// The daemon listens on the unix socket <root>/run/distri-fuse.sock
// ([SocketPath]). A client connects and writes one command line; the
// daemon answers one line, "ok" or "error: <message>", and closes the
// connection. The only command is "rescan": re-read the store, answering
// once /ro shows what the store holds.
//
// [Rescan] is a no-op when no daemon listens (no socket, or a stale one),
// so installing into a root without a running distri-fuse just works.
// [Serve] is the daemon's side.
package fusectl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SocketPath returns the control socket of the distri-fuse serving the
// store of root, e.g. /mnt/run/distri-fuse.sock.
func SocketPath(root string) string {
	return filepath.Join(root, "run", "distri-fuse.sock")
}

// MountLink is the symlink in the root of a distri-fuse mount whose
// target is the daemon's control socket, e.g. /ro/.ctl →
// /run/distri-fuse.sock.
const MountLink = ".ctl"

// Rescan asks the daemon for root to rescan its store and waits for its
// answer (at most 30 s). It returns nil when no daemon is listening.
func Rescan(ctx context.Context, root string) error {
	return rescan(ctx, SocketPath(root), "rescan")
}

// RescanMount is Rescan for the daemon serving mountpoint (e.g. /ro, or
// /mnt/ro for an install into /mnt), found through the mount's
// [MountLink]. When it returns nil, new packages are visible under
// mountpoint and removed ones are gone. It returns nil at once when no
// distri-fuse serves mountpoint.
func RescanMount(ctx context.Context, mountpoint string) error {
	sock, err := os.Readlink(filepath.Join(mountpoint, MountLink))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rescan %s: find the control socket: %w", mountpoint, err)
	}
	return rescan(ctx, sock, "rescan "+mountpoint)
}

// rescan sends "rescan" to the daemon listening on sock; what names the
// operation in errors.
func rescan(ctx context.Context, sock, what string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("rescan\n")); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: no answer from %s: %w", what, sock, err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("%s: %s", what, strings.TrimPrefix(line, "error: "))
	}
	return nil
}

// Serve answers commands on ln until ctx is done, calling rescan for
// each "rescan". Unknown commands get an error answer.
func Serve(ctx context.Context, ln net.Listener, rescan func(context.Context) error) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fusectl: %w", err)
		}
		go func() {
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return
			}
			conn.SetReadDeadline(time.Time{})
			var reply string
			switch cmd := strings.TrimSpace(line); cmd {
			case "rescan":
				if err := rescan(ctx); err != nil {
					reply = "error: " + strings.ReplaceAll(err.Error(), "\n", " ")
				} else {
					reply = "ok"
				}
			default:
				reply = fmt.Sprintf("error: unknown command %q", cmd)
			}
			conn.Write([]byte(reply + "\n"))
		}()
	}
}
