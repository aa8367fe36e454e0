package pb

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"distri.dev/distri/lib/distritest"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadBuildFileEveryField(t *testing.T) {
	const path = "testdata/every-field.textproto"
	got, err := ReadBuildFileStrict(path)
	if err != nil {
		t.Fatalf("ReadBuildFileStrict(%s): %v", path, err)
	}
	want := &Build{
		Source:  proto.String("https://example.org/hello-2.10.tar.gz"),
		Mirror:  []string{"debian-src:pool/main/h/hello/hello_2.10.orig.tar.gz", "https://mirror.example.org/hello-2.10.tar.gz"},
		Hash:    proto.String("31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"),
		Version: proto.String("2.10-3"),
		Pull: &Pull{
			ReleasesUrl:       proto.String("https://ftp.gnu.org/gnu/hello/"),
			ReleaseRegexp:     proto.String(`hello-([0-9.]+)\.tar\.gz`),
			ReleaseReplaceAll: &RegexpReplaceAll{Expr: proto.String("_"), Repl: proto.String(".")},
			DebianPackages:    proto.String("https://example.org/Packages"),
			ForceSemver:       proto.Bool(true),
		},
		ExtraFile:         []string{"hello.conf"},
		CherryPick:        []string{"fix.patch"},
		WritableSourcedir: proto.Bool(true),
		InTreeBuild:       proto.Bool(true),
		AckMissingDwarf:   proto.String("TODO"),
		Dep:               []string{"gettext"},
		BuildStep:         []*BuildStep{{Argv: []string{"make", "-j${DISTRI_JOBS}"}}},
		Builder: &Build_Cbuilder{Cbuilder: &CBuilder{
			ExtraConfigureFlag: []string{"--disable-nls"},
			ExtraLdflag:        []string{"-lm"},
			ExtraMakeFlag:      []string{"V=1"},
			Autoreconf:         proto.Bool(true),
		}},
		RuntimeDep: []string{"less"},
		Install: &Install{
			SystemdUnit: []string{"${DISTRI_SOURCEDIR}/hello.service"},
			Symlink:     []*Install_Symlink{{Oldname: proto.String("hello"), Newname: proto.String("bin/hi")}},
			EmptyDir:    []string{"share/hello"},
			Chmod:       []*Install_Chmod{{Setuid: proto.Bool(true), Name: proto.String("bin/hello")}},
			Capability:  []*Install_Cap{{Capability: proto.String("cap_net_raw+ep"), Filename: proto.String("out/bin/hello")}},
			File:        []*Install_File{{Srcpath: proto.String("hello.conf"), Destpath: proto.String("etc/hello.conf")}},
			Rename:      []*Install_Rename{{Oldname: proto.String("bin/hello"), Newname: proto.String("bin/hello2")}},
			Delete:      []string{"share/info/dir"},
		},
		SplitPackage: []*SplitPackage{{
			Name: proto.String("hello-libs"),
			Claim: []*Claim{
				{Glob: proto.String("out/lib/*.so*")},
				{Glob: proto.String("out/lib/crt*.o"), Dir: proto.String("out/lib64")},
			},
			RuntimeDep: []string{"glibc"},
		}},
		RuntimeUnion: []*Union{{Dir: proto.String("lib/hello/plugins"), Pkg: proto.String("hello-base")}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ReadBuildFileStrict(%s) mismatch (-want +got):\n%s", path, diff)
	}
}

func TestReadBuildFileUnknownField(t *testing.T) {
	const content = `source: "https://example.org/x-1.tar.gz"
hash: "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"
cbuilder: {
    extra_configure_flga: "--disable-nls"
}
version: "1-1"
`
	path := writeTemp(t, "build.textproto", content)

	t.Run("lenient ignores", func(t *testing.T) {
		b, err := ReadBuildFile(path)
		if err != nil {
			t.Fatalf("ReadBuildFile: %v", err)
		}
		if got, want := b.GetVersion(), "1-1"; got != want {
			t.Errorf("ReadBuildFile: version = %q, want %q", got, want)
		}
		if b.GetCbuilder() == nil {
			t.Errorf("ReadBuildFile: cbuilder = nil, want set")
		}
	})

	t.Run("strict rejects", func(t *testing.T) {
		_, err := ReadBuildFileStrict(path)
		var te *TextError
		if !errors.As(err, &te) {
			t.Fatalf("ReadBuildFileStrict = %v, want *TextError", err)
		}
		want := &TextError{File: path, Line: 4, Col: 5, Msg: "unknown field: extra_configure_flga"}
		if diff := cmp.Diff(want, te); diff != "" {
			t.Errorf("ReadBuildFileStrict error mismatch (-want +got):\n%s", diff)
		}
		if got, want := err.Error(), path+":4:5: unknown field: extra_configure_flga"; got != want {
			t.Errorf("ReadBuildFileStrict error = %q, want %q", got, want)
		}
	})
}

func TestReadErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		want    TextError // File is filled in
	}{
		{
			name:    "syntax error",
			content: "version: \"1-1\"\ncbuilder: {\n}\ndep: }\n",
			want:    TextError{Line: 4, Col: 6, Msg: "syntax error: invalid scalar value: }"},
		},
		{
			name:    "truncated",
			content: "version: \"1-1\"\ncbuilder: {\n  extra_make_flag: \"V=1\"",
			want:    TextError{Line: 3, Col: 25, Msg: "unexpected end of file"},
		},
		{
			name:    "two builders",
			content: "cbuilder: {}\nmesonbuilder: {}\n",
			want:    TextError{Line: 2, Col: 1, Msg: `error parsing "mesonbuilder", oneof distri.Build.builder is already set`},
		},
		{
			name:    "repeated scalar",
			content: "version: \"1-1\"\nversion: \"1-2\"\n",
			want:    TextError{Line: 2, Col: 1, Msg: `non-repeated field "version" is repeated`},
		},
		{
			name:    "wrong type",
			content: "writable_sourcedir: \"yes\"\n",
			want:    TextError{Line: 1, Col: 21, Msg: `invalid value for bool type: "yes"`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "build.textproto", tt.content)
			for _, read := range []func(string) (*Build, error){ReadBuildFile, ReadBuildFileStrict} {
				_, err := read(path)
				var te *TextError
				if !errors.As(err, &te) {
					t.Fatalf("read = %v, want *TextError", err)
				}
				want := tt.want
				want.File = path
				if diff := cmp.Diff(&want, te); diff != "" {
					t.Errorf("read error mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestReadMissingFile(t *testing.T) {
	_, err := ReadMetaFile(filepath.Join(t.TempDir(), "absent.meta.textproto"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMetaFile(absent) = %v, want os.ErrNotExist", err)
	}
}

func TestTextErrorString(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   TextError
		want string
	}{
		{name: "line and column", in: TextError{File: "a", Line: 3, Col: 5, Msg: "m"}, want: "a:3:5: m"},
		{name: "line only", in: TextError{File: "a", Line: 3, Msg: "m"}, want: "a:3: m"},
		{name: "no position", in: TextError{File: "a", Msg: "m"}, want: "a: m"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMetaUpstreamCompatible(t *testing.T) {
	// As the original distri wrote it, plus a field from the future.
	const content = `runtime_dep: "glibc-amd64-2.31-4"
runtime_dep: "ncurses-amd64-6.1-8"
source_pkg: "irssi-robustirc"
version: "0.7-8"
runtime_union: <
  dir: "lib/irssi/modules"
  pkg: "irssi-amd64-1.2.2-6"
>
input_digest: "0123456789abcdef0123456789abcdef"
future_field: "ignored"
`
	path := writeTemp(t, "irssi-robustirc-amd64-0.7-8.meta.textproto", content)
	got, err := ReadMetaFile(path)
	if err != nil {
		t.Fatalf("ReadMetaFile: %v", err)
	}
	want := &Meta{
		RuntimeDep:   []string{"glibc-amd64-2.31-4", "ncurses-amd64-6.1-8"},
		SourcePkg:    proto.String("irssi-robustirc"),
		Version:      proto.String("0.7-8"),
		RuntimeUnion: []*Union{{Dir: proto.String("lib/irssi/modules"), Pkg: proto.String("irssi-amd64-1.2.2-6")}},
		InputDigest:  proto.String("0123456789abcdef0123456789abcdef"),
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ReadMetaFile mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	meta := &Meta{
		RuntimeDep:   []string{"glibc-amd64-2.31-4"},
		SourcePkg:    proto.String("bash"),
		Version:      proto.String("5.2.15-3"),
		RuntimeUnion: []*Union{{Dir: proto.String("lib/x"), Pkg: proto.String("x-amd64-1-1")}},
		InputDigest:  proto.String("00ff"),
	}

	t.Run("meta", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bash-amd64-5.2.15-3.meta.textproto")
		if err := WriteMetaFile(path, meta); err != nil {
			t.Fatalf("WriteMetaFile: %v", err)
		}
		got, err := ReadMetaFile(path)
		if err != nil {
			t.Fatalf("ReadMetaFile: %v", err)
		}
		if diff := cmp.Diff(meta, got, protocmp.Transform()); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
		checkWritten(t, path)
	})

	t.Run("overwrite", func(t *testing.T) {
		path := writeTemp(t, "x.meta.textproto", "garbage that does not parse")
		if err := WriteMetaFile(path, meta); err != nil {
			t.Fatalf("WriteMetaFile: %v", err)
		}
		got, err := ReadMetaFile(path)
		if err != nil {
			t.Fatalf("ReadMetaFile: %v", err)
		}
		if diff := cmp.Diff(meta, got, protocmp.Transform()); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
		checkWritten(t, path)
	})

	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent", "x.meta.textproto")
		if err := WriteMetaFile(path, meta); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("WriteMetaFile(%s) = %v, want os.ErrNotExist", path, err)
		}
	})
}

// checkWritten checks that path is world-readable, ends in a newline and
// that no temporary file was left behind.
func checkWritten(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o644); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("%s does not end in a newline: %q", path, b)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory of %s holds %q, want only the file", path, names)
	}
}

// referencePkgs holds the original distri's recipes, next to the checkout.
const referencePkgs = "../../../shared/reference/distri-pkgs"

func TestReferenceRecipesParseStrictly(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(referencePkgs, "*", "build.textproto"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		distritest.Skip(t, "no reference recipes in %s", referencePkgs)
	}
	for _, path := range paths {
		if _, err := ReadBuildFileStrict(path); err != nil {
			t.Errorf("ReadBuildFileStrict: %v", err)
		}
	}
	t.Logf("%d recipes parsed", len(paths))
}
