package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd is the hidden "__man DIR" command of every binary: it writes
// a man page (section 1) for the binary and each of its subcommands into
// DIR, as make man does for the distri package. The pages come from the
// commands' help texts (cobra's doc generator), so they cannot drift from
// --help. They are generated into a temporary folder beside DIR and
// renamed into it one by one, so DIR never holds a half-written page.
// SOURCE_DATE_EPOCH, if set, dates them (reproducible packages).
func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "write man pages for every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			tmp, err := os.MkdirTemp(dir, ".man-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			hdr := &doc.GenManHeader{Section: "1", Source: "distri " + Version(), Manual: "distri manual"}
			if err := doc.GenManTree(root, hdr, tmp); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			pages, err := os.ReadDir(tmp)
			if err != nil {
				return err
			}
			for _, p := range pages {
				if err := os.Rename(filepath.Join(tmp, p.Name()), filepath.Join(dir, p.Name())); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(dir, p.Name()))
			}
			return nil
		},
	}
}
