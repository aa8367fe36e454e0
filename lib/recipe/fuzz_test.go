package recipe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"distri.dev/distri/lib/pb"
)

// FuzzCheck checks arbitrary recipes (a recipe from a pull request is
// untrusted until reviewed, and distri-build reads it). Every problem
// must be an *Error or *pb.TextError that names the file and a line in
// it, and the semantic checks must not depend on how the recipe is
// written: the same recipe written back by pb.MarshalText gets the same
// messages.
func FuzzCheck(f *testing.F) {
	for _, p := range []string{"testdata/pkgs/hello/build.textproto", "../../pkgs/bash/build.textproto", "../../pkgs/base/build.textproto"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`source: "https://example.org/x.tar.gz" hash: "abc" version: "1"
cherry_pick: ["../x", "fix.patch"] dep: ["a b"] split_package < name: "" claim < glob: "[" > >
[ext.field]: 1 # comment "with quotes
`))
	dir := f.TempDir()
	for _, name := range []string{"fix.patch", "hello.conf"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	path := filepath.Join(dir, FileName)
	check := func(t *testing.T, text []byte) []string {
		if err := os.WriteFile(path, text, 0o644); err != nil {
			t.Fatal(err)
		}
		lines := 1 + bytes.Count(text, []byte("\n"))
		var msgs []string
		for _, err := range Check([]string{path}, Options{}) {
			var e *Error
			var te *pb.TextError
			switch {
			case errors.As(err, &e):
				if e.File != path || e.Line < 0 || e.Line > lines {
					t.Errorf("error %q: want a line of %s's %d", err, path, lines)
				}
				msgs = append(msgs, e.Msg)
			case errors.As(err, &te):
				if te.File != path || te.Line < 0 || te.Line > lines {
					t.Errorf("error %q: want a line of %s's %d", err, path, lines)
				}
				return nil
			default:
				t.Errorf("error %q (%T) is neither *Error nor *pb.TextError", err, err)
			}
		}
		return msgs
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		msgs := check(t, text)
		var b pb.Build
		if pb.UnmarshalTextStrict("in", text, &b) != nil {
			return
		}
		out, err := pb.MarshalText(&b)
		if err != nil {
			t.Fatal(err)
		}
		again := check(t, out)
		slices.Sort(msgs)
		slices.Sort(again)
		if !slices.Equal(msgs, again) {
			t.Errorf("recipe %q gets %q; written as %q it gets %q", text, msgs, out, again)
		}
	})
}
