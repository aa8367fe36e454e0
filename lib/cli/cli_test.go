package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestReadArgs(t *testing.T) {
	got, err := ReadArgs([]string{"a", "-", "z"}, strings.NewReader(" b \n\nc\r\n"))
	if err != nil || !slices.Equal(got, []string{"a", "b", "c", "z"}) {
		t.Errorf("ReadArgs = %q, %v; want [a b c z]", got, err)
	}
	if _, err := ReadArgs([]string{"-", "-"}, strings.NewReader("x\n")); err == nil {
		t.Error(`ReadArgs accepted "-" twice (the second would read nothing)`)
	}
}

func testTree(stdio Stdio) *cobra.Command {
	root := &cobra.Command{Use: "distri-test", Short: "a test tree"}
	var verbose bool
	sub := &cobra.Command{Use: "sub", Short: "a subcommand", RunE: func(*cobra.Command, []string) error { return nil }}
	sub.Flags().BoolVarP(&verbose, "verbose", "v", false, "say more")
	root.AddCommand(sub)
	return root
}

// TestVersionFlag checks that --version never says "(devel)" and that -v
// is not --version (cobra gives -v to --version when it is free).
func TestVersionFlag(t *testing.T) {
	code, out, _ := RunArgs(t.Context(), testTree, "--version")
	if code != 0 || !strings.HasPrefix(out, "distri-test version ") || strings.Contains(out, "devel") {
		t.Errorf("--version = %d, %q", code, out)
	}
	if code, out, _ := RunArgs(t.Context(), testTree, "-v"); code != ExitUsage || strings.Contains(out, "version") {
		t.Errorf("-v = %d, %q; want a usage error, not the version", code, out)
	}
	if code, _, errs := RunArgs(t.Context(), testTree, "sub", "-v"); code != 0 {
		t.Errorf("sub -v = %d, %q; want --verbose", code, errs)
	}
}

// TestMan checks that __man writes a page for the root and every
// subcommand, leaves no temporary folder, and is not in the help.
func TestMan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	if code, _, errs := RunArgs(t.Context(), testTree, "__man", dir); code != 0 {
		t.Fatalf("__man: %s", errs)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	for _, want := range []string{"distri-test.1", "distri-test-sub.1"} {
		if !slices.Contains(names, want) {
			t.Errorf("pages %q lack %s", names, want)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") {
			t.Errorf("__man left %s in %s", n, dir)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "distri-test-sub.1"))
	if !strings.Contains(string(b), "say more") {
		t.Errorf("distri-test-sub.1 lacks the flag's help:\n%s", b)
	}
	if _, out, _ := RunArgs(t.Context(), testTree, "--help"); strings.Contains(out, "__man") {
		t.Errorf("--help shows the hidden __man:\n%s", out)
	}
}
