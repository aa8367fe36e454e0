package pb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzIndex decodes arbitrary bytes as a repository index, as the
// installer does with what a mirror sends (after the signature checks
// out, but the signer may be a third party), and checks the two views of
// it agree: what decodes as an Index re-encodes to itself, and decodes
// as an IndexSummary with the same packages.
func FuzzIndex(f *testing.F) {
	idx := &Index{Package: []*Package{
		{Name: proto.String("hello-amd64-2.12-9"), ImageSize: proto.Uint64(81920),
			ImageSha256: proto.String("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
			MetaSize:    proto.Uint64(120), MetaSha256: proto.String("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
			RuntimeDep: []string{"glibc-amd64-2.36-9"}, Provides: []string{"bin/hello", "share/man/man1/hello.1"}},
		{Name: proto.String("glibc-amd64-2.36-9"), ImageSize: proto.Uint64(1 << 40)},
	}}
	b, err := proto.Marshal(idx)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(append(b, 0x42, 0x03, 'x', 'y', 'z')) // an unknown field 8
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Index
		if err := proto.Unmarshal(b, &x); err != nil {
			return
		}
		enc, err := proto.Marshal(&x)
		if err != nil {
			t.Fatalf("decoded index does not encode: %v", err)
		}
		var x2 Index
		if err := proto.Unmarshal(enc, &x2); err != nil || !proto.Equal(&x, &x2) {
			t.Fatalf("re-encoded index decodes as %v, %v; want %v", &x2, err, &x)
		}
		var s IndexSummary
		if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &s); err != nil {
			t.Fatalf("index decodes, its summary does not: %v", err)
		}
		if len(s.Package) != len(x.Package) {
			t.Fatalf("summary has %d packages, index %d", len(s.Package), len(x.Package))
		}
		for i, p := range x.Package {
			q := s.Package[i]
			if p.GetName() != q.GetName() || p.GetImageSize() != q.GetImageSize() || p.GetImageSha256() != q.GetImageSha256() ||
				p.GetMetaSize() != q.GetMetaSize() || p.GetMetaSha256() != q.GetMetaSha256() || len(p.RuntimeDep) != len(q.RuntimeDep) {
				t.Errorf("package %d: index %v, summary %v", i, p, q)
			}
		}
	})
}

// FuzzUnmarshalText parses arbitrary text as a meta file (fetched from a
// mirror) and as a recipe, and checks that errors point into the input
// and that what parses is written back to the same message.
func FuzzUnmarshalText(f *testing.F) {
	meta, err := MarshalText(&Meta{
		RuntimeDep: []string{"glibc-amd64-2.36-9"}, SourcePkg: proto.String("hello"), Version: proto.String("2.12-9"),
		RuntimeUnion: []*Union{{Dir: proto.String("lib/modules"), Pkg: proto.String("linux")}},
		InputDigest:  proto.String("sha256:00ff"), Provides: []string{"bin/hello"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(meta)
	seeds, _ := filepath.Glob("testdata/*.textproto")
	for _, p := range []string{"hello", "bash", "base"} {
		seeds = append(seeds, filepath.Join("..", "..", "pkgs", p, "build.textproto"))
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("version: \"1\\x00\" # comment\nbuild_step: < argv: [\"a\", 'b'] >\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines := 1 + bytes.Count(b, []byte("\n"))
		for _, m := range []proto.Message{&Meta{}, &Build{}} {
			for _, strict := range []bool{false, true} {
				m := proto.Clone(m)
				proto.Reset(m)
				err := unmarshalText("in", b, m, strict)
				if err != nil {
					var te *TextError
					if !errors.As(err, &te) || te.File != "in" || te.Line < 0 || te.Line > lines || te.Col < 0 {
						t.Errorf("error %#v for %d lines", err, lines)
					}
					continue
				}
				out, err := MarshalText(m)
				if err != nil {
					t.Fatalf("parsed %T does not marshal: %v", m, err)
				}
				m2 := proto.Clone(m)
				proto.Reset(m2)
				if err := unmarshalText("out", out, m2, true); err != nil || !proto.Equal(m, m2) {
					t.Errorf("%T %v written as %q parses as %v, %v", m, m, out, m2, err)
				}
			}
		}
	})
}
