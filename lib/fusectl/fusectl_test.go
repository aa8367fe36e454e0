package fusectl

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRescanNobodyListening(t *testing.T) {
	root := t.TempDir()
	if err := Rescan(t.Context(), root); err != nil {
		t.Errorf("Rescan without a socket = %v, want nil", err)
	}
	// A stale socket file, nobody listening.
	os.MkdirAll(filepath.Join(root, "run"), 0o755)
	ln, err := net.Listen("unix", SocketPath(root))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := Rescan(t.Context(), root); err != nil {
		t.Errorf("Rescan with a stale socket = %v, want nil", err)
	}
}

func TestRescan(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler error
		wantErr string
	}{
		{name: "ok"},
		{name: "daemon fails", handler: errors.New("store unreadable"), wantErr: "store unreadable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "run"), 0o755)
			ln, err := net.Listen("unix", SocketPath(root))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var calls atomic.Int32
			go Serve(ctx, ln, func(context.Context) error { calls.Add(1); return tt.handler })
			err = Rescan(t.Context(), root)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Rescan = %v, want error containing %q", err, tt.wantErr)
			}
			if got := calls.Load(); got != 1 {
				t.Errorf("daemon rescanned %d times, want 1", got)
			}
		})
	}
}
