package sandbox

import (
	"fmt"
	"io"
	"log"
	"strings"
)

// Options describes one sandboxed step. Paths called "host" are paths in
// the caller's mount namespace; paths called "inside" are paths in the
// sandbox root.
type Options struct {
	// RO is a directory (host) bound read-only at /ro, e.g. a distri-fuse
	// mount or a plain directory tree of packages. Required. It is not
	// idmapped: the step sees host root's files as nobody's and reads
	// them as others may (a FUSE mount needs allow_other).
	RO string

	// Source is a directory (host) bound read-only at SourceAt, e.g.
	// /tmp/distri-build-123/hello-amd64-2.12-1. Empty means no source.
	Source string
	// SourceAt is where Source appears inside, e.g.
	// /usr/src/hello-amd64-2.12-1. Empty means /usr/src/source. It is
	// resolved through Links, so with /usr → / it lands at /src/….
	SourceAt string

	// BuildDir is a directory (host) bound writable at BuildDirAt. Empty
	// means none.
	BuildDir string
	// BuildDirAt is where BuildDir appears inside. Empty means /build.
	BuildDirAt string

	// Dest is a directory (host) bound writable at DestAt. Empty means none.
	Dest string
	// DestAt is where Dest appears inside. Empty means /dest.
	DestAt string

	// Links are symlinks created in the root, path inside → target, e.g.
	// "/bin": "/ro/bin", "/usr": "/",
	// "/lib64/ld-linux-x86-64.so.2": "/ro/glibc-amd64-2.36-1/out/lib/ld-linux-x86-64.so.2".
	// Missing parent directories are created.
	Links map[string]string

	// Env is the step's complete environment, e.g. ["PATH=/ro/bin:/bin"].
	// Nothing else is added. Nil means an empty environment.
	Env []string
	// Dir is the step's working directory inside. Empty means /.
	Dir string
	// Argv is the step's command line. Argv[0] without a slash is looked
	// up in the PATH of Env, inside the sandbox. Required.
	Argv []string

	// Stdin, Stdout and Stderr are the step's standard streams. Nil means
	// /dev/null. A terminal is never passed on: as Stdin it reads as
	// /dev/null, as Stdout or Stderr it is written through a pipe.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Hostname is the host name inside. Empty means "distri".
	Hostname string

	// Limits bounds the step's processes, memory, CPU share, time and
	// tmpfs sizes (limits.go). The zero value means the defaults.
	Limits Limits

	// Helper is the binary re-executed as the sandbox's init; it must call
	// Init early in main (see the package doc). Empty means /proc/self/exe.
	Helper string

	// Log receives debug output (set-up timing). Nil means discard.
	Log *log.Logger
}

// ExitError reports a step that ran but did not exit 0.
type ExitError struct {
	Argv []string // e.g. ["make", "-j2"]
	// Code is the exit status, or 128+signal if a signal killed the step.
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit status %d", strings.Join(e.Argv, " "), e.Code)
}
