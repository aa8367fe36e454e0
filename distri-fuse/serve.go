package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/fusefs"
)

type serveOptions struct {
	store       string
	readinessFd int
	passthrough bool
	allowOther  bool
	ctlSocket   string
	verbose     bool
	debugFUSE   bool
}

func (o *serveOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.store, "store", "/roimg", "package store to serve")
	fs.IntVar(&o.readinessFd, "readiness-fd", -1, "file descriptor to write the mount point to and close once the mount is ready")
	fs.BoolVar(&o.passthrough, "passthrough", false, "open every file through the daemon and let the kernel read large ones directly (FUSE passthrough) where it can; default: the kernel opens files itself and keeps what the daemon read in the page cache")
	fs.BoolVar(&o.allowOther, "allow-other", true, "let every user, not only the daemon's, use the mount")
	fs.StringVar(&o.ctlSocket, "ctl-socket", "", "control socket (default: ROOT/run/distri-fuse.sock for a store ROOT/roimg, else under /run/distri-fuse/)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log images opened and closed and rescans to stderr")
	fs.BoolVar(&o.debugFUSE, "debug-fuse", false, "log every FUSE request to stderr")
}

func runServe(ctx context.Context, opts serveOptions, mountpoint string, stdio cli.Stdio) error {
	ctlSocket := opts.ctlSocket
	if ctlSocket == "" {
		ctlSocket = fusefs.DefaultCtlSocket(opts.store, mountpoint)
	}
	srv, err := fusefs.Mount(ctx, fusefs.Options{
		Store:       opts.store,
		Mountpoint:  mountpoint,
		Passthrough: opts.passthrough,
		AllowOther:  opts.allowOther,
		CtlSocket:   ctlSocket,
		Log:         log.New(stdio.Err, "distri-fuse: ", 0),
		Verbose:     opts.verbose,
		DebugFUSE:   opts.debugFUSE,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, srv.Mountpoint())
	if opts.readinessFd >= 0 {
		// A parent that cannot be told would wait forever, and a
		// daemon that then exits leaves a dead /ro: fail the start and
		// take the mount down.
		if err := signalReady(opts.readinessFd, srv.Mountpoint()); err != nil {
			return errors.Join(err, srv.Abandon())
		}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()
	for {
		select {
		case <-hup:
			if err := srv.Rescan(ctx); err != nil {
				fmt.Fprintf(stdio.Err, "distri-fuse: rescan: %v\n", err)
			}
		case <-done:
			return nil // unmounted from outside
		case <-ctx.Done():
			// SIGINT or SIGTERM: unmount and report a clean exit. If
			// /ro is busy, detach it, so that no dead mount stays
			// behind when we exit, and say so.
			if err := srv.Unmount(); err != nil {
				if derr := srv.Detach(); derr != nil {
					return errors.Join(err, derr)
				}
				return fmt.Errorf("%w: detached it instead; files still open in it fail once distri-fuse exits", err)
			}
			// Unmounted, or detached from outside (init does that at
			// shutdown), in which case the kernel ends the connection
			// once no file in the mount is open: serve those a little
			// longer, but SIGTERM means exit.
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			return nil
		}
	}
}

// signalReady writes the mount point to the readiness descriptor fd and
// closes it.
func signalReady(fd int, mountpoint string) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("--readiness-fd %d: %w", fd, err)
	}
	f := os.NewFile(uintptr(fd), "readiness")
	_, err := fmt.Fprintln(f, mountpoint)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--readiness-fd %d: %w", fd, err)
	}
	return nil
}
