// Package cli is the glue every distri-* binary shares: it runs a cobra
// root command with real standard I/O and a context that is cancelled on
// SIGINT/SIGTERM, prints a failure once as "<program>: <error>", and maps
// errors to exit codes. It also gives every binary the same --version
// (see [Version]; -v is never --version but --verbose where a command
// has it) and reads lists from standard input for "-" ([ReadArgs]), so
// that the binaries compose in pipelines.
//
// # Exit codes
//
//	0    success
//	1    an error (the message says what and where)
//	2    a usage error: unknown command or flag, wrong number of arguments
//	130  interrupted (SIGINT or SIGTERM)
//
// lib/cli is the only package under lib/ that imports cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes returned by Main.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// Stdio is the standard input and output a command uses. Tests pass
// buffers; Main passes the process's own.
type Stdio struct {
	In  io.Reader
	Out io.Writer // results only: paths or names, one per line
	Err io.Writer // logs, progress and errors
}

// UsageError marks an error in how a command was called. Main exits 2 for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// version is the suite's version, set when linking: make build passes
// -X distri.dev/distri/lib/cli.version=… (a tag, or 0.<commits>+<hash>).
var version string

// pseudo matches the commit part of a Go pseudo-version
// (v0.0.0-20261207042200-abcdef012345): not a release.
var pseudo = regexp.MustCompile(`-(0\.)?[0-9]{14}-[0-9a-f]{12}`)

// Version is the version string every binary reports with --version:
// the one stamped when linking (make build: the tag, or
// 0.<commits>+<hash> as the distri package is versioned); else the
// module's tag from the build information; else 0.0+<hash> from the
// build's VCS stamp (a go build does not know the commit count), with
// .dirty for a modified tree; else 0.0+unknown. Never "(devel)".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "0.0+unknown"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" && !pseudo.MatchString(v) {
		return strings.TrimSuffix(strings.TrimPrefix(v, "v"), "+dirty")
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ".dirty"
			}
		}
	}
	if rev == "" {
		return "0.0+unknown"
	}
	return "0.0+" + rev[:min(12, len(rev))] + dirty
}

// Main runs the command newRoot returns with the process's stdio and
// arguments and returns the exit code. Use it as
//
//	func main() { os.Exit(cli.Main(newRootCmd)) }
func Main(newRoot func(Stdio) *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdio := Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	root := newRoot(stdio)
	root.SetArgs(os.Args[1:])
	return Run(ctx, root, stdio)
}

// Run executes root (already given its arguments) and returns the exit
// code, printing a failure once to stdio.Err. Tests call it in-process.
func Run(ctx context.Context, root *cobra.Command, stdio Stdio) int {
	Prepare(root, stdio)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stdio.Err, "%s: %v\n", root.Name(), err)
	var ue *UsageError
	switch {
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintf(stdio.Err, "Run '%s --help' for usage.\n", root.Name())
		return ExitUsage
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitError
}

// Prepare applies the settings every distri command tree shares: errors
// and usage are printed by Run rather than by cobra, --version is set,
// argument and flag errors become *UsageError, and stdio is attached.
func Prepare(root *cobra.Command, stdio Stdio) {
	root.Version = Version()
	// --version without a short form: -v is --verbose wherever a
	// command has it, never --version (cobra would take -v if free).
	if root.Flags().Lookup("version") == nil {
		root.Flags().Bool("version", false, "print the version of the distri suite")
	}
	root.AddCommand(newManCmd(root))
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.SilenceErrors = true
		c.SilenceUsage = true
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
			return &UsageError{Err: err}
		})
		if c.HasSubCommands() && !c.Runnable() {
			// A command that only groups others: without arguments it
			// shows its help, with an unknown one it is a usage error.
			c.Args = func(cmd *cobra.Command, a []string) error {
				if len(a) == 0 {
					return nil
				}
				msg := fmt.Sprintf("unknown command %q for %q", a[0], cmd.CommandPath())
				if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %q?)", s[0])
				}
				return &UsageError{Err: errors.New(msg)}
			}
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		} else if !c.DisableFlagParsing {
			args := c.Args
			if args == nil {
				args = cobra.ArbitraryArgs
			}
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return &UsageError{Err: err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	// Help and version go to stdout: they are what was asked for.
	root.SetHelpFunc(helpTo(root.HelpFunc(), stdio.Out))
}

func helpTo(orig func(*cobra.Command, []string), out io.Writer) func(*cobra.Command, []string) {
	return func(c *cobra.Command, args []string) {
		c.SetOut(out)
		orig(c, args)
	}
}

// isCobraUsage reports whether err is one of the usage errors cobra
// returns without a hook to wrap them: missing required flags and
// violated flag groups.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "required flag(s) ") || strings.HasPrefix(msg, "if any flags in the group ")
}

// RunArgs runs the command tree newRoot makes with args, in-process, as
// Main would with those arguments, and returns the exit code and what the
// command wrote to stdout and stderr. Tests of the binaries use it.
func RunArgs(ctx context.Context, newRoot func(Stdio) *cobra.Command, args ...string) (code int, stdout, stderr string) {
	var out, errb strings.Builder
	stdio := Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}
	root := newRoot(stdio)
	root.SetArgs(args)
	code = Run(ctx, root, stdio)
	return code, out.String(), errb.String()
}

// ReadArgs returns args with each "-" replaced by the lines of in, so
// that commands taking lists compose in pipelines (`… | distri install
// -`). Lines are trimmed; empty lines are skipped. "-" may appear once.
func ReadArgs(args []string, in io.Reader) ([]string, error) {
	var out []string
	stdin := false
	for _, a := range args {
		if a != "-" {
			out = append(out, a)
			continue
		}
		if stdin {
			return nil, Usagef(`"-" (standard input) given twice`)
		}
		stdin = true
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// PrintLines writes lines to w, one a line.
func PrintLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// ReadFileLines returns the trimmed, non-empty lines of the file p, as
// [ReadArgs] reads standard input.
func ReadFileLines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := ReadArgs([]string{"-"}, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return out, nil
}
