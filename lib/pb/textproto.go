// Package pb holds distri's protobuf messages and reads and writes the
// text-format ones:
//
//   - [Build], a recipe (pkgs/<name>/build.textproto), compatible with the
//     original distri's build.proto plus source mirrors;
//   - [Meta], a package's meta file (<full>.meta.textproto), compatible
//     with the original's meta.proto;
//   - [Index], a repository index (<repo>/pkg/index); lib/mirror stores
//     it as binary protobuf, signed, so this package only defines it.
//
// The *.pb.go files are generated from the *.proto files next to them;
// see generate.go.
//
// # Decisions
//
//   - Readers are lenient by default: unknown fields are ignored, so an
//     older binary reads files written by a newer one. [ReadBuildFileStrict]
//     rejects them, for checking recipes.
//   - Parse errors are [*TextError] values that name the file, line and
//     column (FILE:LINE:COL: msg) instead of protobuf's "proto: (line L:C)".
//   - Writers use prototext with two-space indentation and replace the
//     file atomically (temporary file plus rename in the same directory).
//     prototext does not promise byte-stable output across protobuf
//     versions (it even varies whitespace on purpose); readers must not
//     compare files byte for byte.
package pb

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/renameio/v2"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// TextError is a text-format parse error located in a file.
type TextError struct {
	File string // e.g. pkgs/bash/build.textproto
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Msg  string // e.g. unknown field: sourc
}

// Error formats e as FILE:LINE:COL: MSG, leaving out what is unknown.
func (e *TextError) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// protoErrRe matches prototext errors such as
// "proto: (line 3:5): unknown field: foo" and
// "proto: syntax error (line 1:7): unexpected token: }". The space after
// "proto:" is a non-breaking one in some binaries, on purpose.
var protoErrRe = regexp.MustCompile(`(?s)^proto:[\s\x{a0}]+(syntax error )?\(line (\d+):(\d+)\): (.*)$`)

// textError converts a prototext error about input b into a *TextError
// for file.
func textError(file string, b []byte, err error) *TextError {
	s := err.Error()
	m := protoErrRe.FindStringSubmatch(s)
	if m == nil {
		s = strings.TrimSpace(strings.TrimLeft(strings.TrimPrefix(s, "proto:"), " \u00a0"))
		if s == io.ErrUnexpectedEOF.Error() {
			// prototext gives no position for truncated input: point at
			// its end, where the missing text belongs.
			line := 1 + bytes.Count(b, []byte("\n"))
			col := 1 + len(b) - (bytes.LastIndexByte(b, '\n') + 1)
			return &TextError{File: file, Line: line, Col: col, Msg: "unexpected end of file"}
		}
		return &TextError{File: file, Msg: s}
	}
	line, _ := strconv.Atoi(m[2])
	col, _ := strconv.Atoi(m[3])
	// Messages quote raw tokens, which may end in a newline.
	msg := strings.TrimSpace(m[4])
	if m[1] != "" {
		msg = "syntax error: " + msg
	}
	return &TextError{File: file, Line: line, Col: col, Msg: msg}
}

// UnmarshalText parses b into m, ignoring unknown fields, e.g. a meta
// file or index fetched over HTTP. name only names the input in errors,
// which are *TextError.
func UnmarshalText(name string, b []byte, m proto.Message) error {
	return unmarshalText(name, b, m, false)
}

// UnmarshalTextStrict is [UnmarshalText] with unknown fields being errors.
func UnmarshalTextStrict(name string, b []byte, m proto.Message) error {
	return unmarshalText(name, b, m, true)
}

func unmarshalText(name string, b []byte, m proto.Message, strict bool) error {
	opts := prototext.UnmarshalOptions{DiscardUnknown: !strict}
	if err := opts.Unmarshal(b, m); err != nil {
		return textError(name, b, err)
	}
	return nil
}

func readFile(path string, m proto.Message, strict bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return unmarshalText(path, b, m, strict)
}

// ReadBuildFile reads a recipe, ignoring unknown fields.
func ReadBuildFile(path string) (*Build, error) {
	var b Build
	if err := readFile(path, &b, false); err != nil {
		return nil, err
	}
	return &b, nil
}

// ReadBuildFileStrict reads a recipe and rejects unknown fields, e.g. a
// misspelt field name.
func ReadBuildFileStrict(path string) (*Build, error) {
	var b Build
	if err := readFile(path, &b, true); err != nil {
		return nil, err
	}
	return &b, nil
}

// ReadMetaFile reads a meta file, ignoring unknown fields.
func ReadMetaFile(path string) (*Meta, error) {
	var m Meta
	if err := readFile(path, &m, false); err != nil {
		return nil, err
	}
	return &m, nil
}

// MarshalText formats m the way the Write* functions do: multi-line, two
// spaces of indentation, ending in a newline.
func MarshalText(m proto.Message) ([]byte, error) {
	b, err := prototext.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	return b, nil
}

// WriteMetaFile writes m to path atomically.
func WriteMetaFile(path string, m *Meta) error {
	return writeFile(path, m)
}

// writeFile writes m to a temporary file in the directory of path and
// renames it over path, so readers see the old or the new file, never a
// part of one.
func writeFile(path string, m proto.Message) error {
	b, err := MarshalText(m)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Meta files are public, whatever the umask.
	err = renameio.WriteFile(path, b, 0o644, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
