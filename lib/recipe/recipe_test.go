package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/pb"
)

// errStrings returns the messages of errs with dir replaced by DIR.
func errStrings(errs []error, dir string) []string {
	var s []string
	for _, err := range errs {
		s = append(s, strings.ReplaceAll(err.Error(), dir, "DIR"))
	}
	return s
}

const (
	okSource = `source: "https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"` + "\n"
	okHash   = `hash: "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"` + "\n"
)

func TestCheckRecipes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		recipe string
		files  []string // created next to the recipe
		opts   Options
		want   []string // DIR is the recipe's directory
	}{
		{
			name:   "minimal",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n",
		},
		{
			name:   "native version",
			recipe: `source: "empty://"` + "\n" + `version: "native-49"` + "\n",
		},
		{
			name:   "go pseudo version",
			recipe: `source: "distri+gomod://example.org/x@v0.0.0-20200424135655-e6d33f77da8c"` + "\n" + `version: "v0.0.0-20200424135655-e6d33f77da8c-9"` + "\n",
		},
		{
			name:   "debian binary package",
			recipe: `source: "debian:pool/main/b/bash/bash_5.2.15-2+b7_amd64.deb"` + "\n" + okHash + `version: "5.2.15-1"` + "\n",
		},
		{
			name:   "distriroot with empty hash",
			recipe: `source: "distriroot://distri1-1.tar.gz"` + "\n" + `hash: ""` + "\n" + `version: "native-49"` + "\n",
		},
		{
			name:   "unknown top-level field",
			recipe: okSource + okHash + `versoin: "2.10-1"` + "\n",
			want:   []string{"DIR/build.textproto:3:1: unknown field: versoin"},
		},
		{
			name:   "unknown nested field",
			recipe: okSource + okHash + `version: "2.10-1"` + "\ncbuilder: {\n  extra_configure_flga: \"--x\"\n}\n",
			want:   []string{"DIR/build.textproto:5:3: unknown field: extra_configure_flga"},
		},
		{
			name:   "two builders",
			recipe: okSource + okHash + `version: "2.10-1"` + "\ncbuilder: {}\nmesonbuilder: {}\n",
			want:   []string{`DIR/build.textproto:5:1: error parsing "mesonbuilder", oneof distri.Build.builder is already set`},
		},
		{
			name:   "version without revision",
			recipe: okSource + okHash + `version: "2.10"` + "\n",
			want:   []string{`DIR/build.textproto:3: version "2.10": want <upstream>-<revision> with an integer revision, e.g. 2.10-1`},
		},
		{
			name:   "version with non-integer revision",
			recipe: okSource + okHash + `version: "2.10-rc1"` + "\n",
			want:   []string{`DIR/build.textproto:3: version "2.10-rc1": want <upstream>-<revision> with an integer revision, e.g. 2.10-1`},
		},
		{
			name:   "version without upstream",
			recipe: okSource + okHash + `version: "-3"` + "\n",
			want:   []string{`DIR/build.textproto:3: version "-3": want <upstream>-<revision> with an integer revision, e.g. 2.10-1`},
		},
		{
			name:   "version with slash",
			recipe: okSource + okHash + `version: "2.10/x-3"` + "\n",
			want:   []string{`DIR/build.textproto:3: version "2.10/x-3": must not contain / or white space`},
		},
		{
			name:   "version missing",
			recipe: okSource + okHash,
			want:   []string{`DIR/build.textproto: version missing: want <upstream>-<revision>, e.g. 2.10-1`},
		},
		{
			name:   "hash upper case",
			recipe: okSource + `hash: "31E066137A962676E89F69D1B65382DE95A7EF7D914B8CB956F41EA72E0F516B"` + "\n" + `version: "2.10-1"` + "\n",
			want:   []string{`DIR/build.textproto:2: hash "31E066137A962676E89F69D1B65382DE95A7EF7D914B8CB956F41EA72E0F516B": want 64 lowercase hex digits (sha256)`},
		},
		{
			name:   "hash too short",
			recipe: okSource + `version: "2.10-1"` + "\n" + `hash: "31e0"` + "\n",
			want:   []string{`DIR/build.textproto:3: hash "31e0": want 64 lowercase hex digits (sha256)`},
		},
		{
			name:   "hash missing for download",
			recipe: okSource + `version: "2.10-1"` + "\n",
			want:   []string{`DIR/build.textproto:1: hash missing: source https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz is downloaded and needs its sha256`},
		},
		{
			name:   "hash missing for debian source",
			recipe: `version: "2.10-1"` + "\n" + `source: "debian-src:pool/main/h/hello/hello_2.10.orig.tar.gz"` + "\n",
			want:   []string{`DIR/build.textproto:2: hash missing: source debian-src:pool/main/h/hello/hello_2.10.orig.tar.gz is downloaded and needs its sha256`},
		},
		{
			name:   "bad hash for generated source",
			recipe: `source: "distri+source://gcc"` + "\n" + `hash: "xyz"` + "\n" + `version: "9.3.0-1"` + "\n",
			want:   []string{`DIR/build.textproto:2: hash "xyz": want 64 lowercase hex digits (sha256)`},
		},
		{
			name:   "source missing",
			recipe: okHash + `version: "2.10-1"` + "\n",
			want:   []string{`DIR/build.textproto: source missing`},
		},
		{
			name:   "unknown scheme",
			recipe: `source: "ftp://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"` + "\n" + okHash + `version: "2.10-1"` + "\n",
			want:   []string{`DIR/build.textproto:1: source "ftp://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz": unknown scheme, want one of https:// http:// debian: debian-src: distri+gomod:// distri+source:// distriroot:// empty://`},
		},
		{
			name:   "distri+source without package",
			recipe: `source: "distri+source://"` + "\n" + `version: "2.10-1"` + "\n",
			want:   []string{`DIR/build.textproto:1: source "distri+source://": want distri+source://<package>`},
		},
		{
			name:   "mirrors",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `mirror: "debian-src:pool/main/h/hello/hello_2.10.orig.tar.gz"` + "\n" + `mirror: "https://mirror.example.org/hello-2.10.tar.gz"` + "\n",
		},
		{
			name:   "mirror with unknown scheme",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `mirror: "https://mirror.example.org/hello-2.10.tar.gz"` + "\n" + `mirror: "rsync://mirror.example.org/hello-2.10.tar.gz"` + "\n",
			want:   []string{`DIR/build.textproto:5: mirror "rsync://mirror.example.org/hello-2.10.tar.gz": want an https://, http://, debian: or debian-src: location`},
		},
		{
			name:   "mirror of empty source",
			recipe: `source: "empty://"` + "\n" + `version: "1-1"` + "\n" + `mirror: "https://example.org/x.tar.gz"` + "\n",
			want:   []string{`DIR/build.textproto:3: mirror "https://example.org/x.tar.gz": source "empty://" is not downloaded, so it has no mirrors`},
		},
		{
			name:   "patch and extra file present",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `cherry_pick: "fix.patch"` + "\n" + `extra_file: "conf/hello.conf"` + "\n",
			files:  []string{"fix.patch", "conf/hello.conf"},
		},
		{
			name:   "patch missing",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `cherry_pick: "fix.patch"` + "\n" + `cherry_pick: "other.patch"` + "\n",
			files:  []string{"fix.patch"},
			want:   []string{`DIR/build.textproto:5: cherry_pick "other.patch": DIR/other.patch: no such file or directory`},
		},
		{
			name:   "patch missing but files skipped",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `cherry_pick: "fix.patch"` + "\n",
			opts:   Options{SkipFiles: true},
		},
		{
			name:   "extra file is a directory",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `extra_file: "conf"` + "\n",
			files:  []string{"conf/hello.conf"},
			want:   []string{`DIR/build.textproto:4: extra_file "conf": DIR/conf is not a regular file`},
		},
		{
			name:   "extra file outside the recipe directory",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `extra_file: "../other/hello.conf"` + "\n",
			opts:   Options{SkipFiles: true},
			want:   []string{`DIR/build.textproto:4: extra_file "../other/hello.conf": want a file name relative to the recipe's directory`},
		},
		{
			name:   "bad dep",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + `dep: "glibc"` + "\n" + `dep: "gcc libs"` + "\n" + `runtime_dep: ""` + "\n",
			want: []string{
				`DIR/build.textproto:5: dep "gcc libs": not a package name`,
				`DIR/build.textproto:6: runtime_dep "": not a package name`,
			},
		},
		{
			name:   "empty build step",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + "build_step: { argv: \"make\" }\nbuild_step: {}\n",
			want:   []string{`DIR/build.textproto:5: build_step: empty argv`},
		},
		{
			name: "split packages",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" +
				"split_package: {\n" + // 4
				"  claim: { glob: \"out/lib/*.so*\" }\n" + // 5
				"}\n" +
				"split_package: {\n" + // 7
				"  name: \"hello libs\"\n" + // 8
				"}\n" +
				"split_package: {\n" + // 10
				"  name: \"hello-doc\"\n" +
				"  claim: { glob: \"out/share/doc/*\" }\n" + // 12
				"  claim: {\n" + // 13
				"    glob: \"out/share/[a-\"\n" + // 14
				"  }\n" +
				"  claim: { dir: \"x\" }\n" + // 16
				"  runtime_dep: \"ok\"\n" +
				"  runtime_dep: \"not ok\"\n" + // 18
				"}\n",
			want: []string{
				`DIR/build.textproto:4: split_package: name missing`,
				`DIR/build.textproto:7: split_package "hello libs": claim missing`,
				`DIR/build.textproto:8: split_package: name "hello libs": not a package name`,
				`DIR/build.textproto:14: split_package "hello-doc": claim: glob "out/share/[a-": syntax error in pattern`,
				`DIR/build.textproto:16: split_package "hello-doc": claim: glob missing`,
				`DIR/build.textproto:18: runtime_dep "not ok": not a package name`,
			},
		},
		{
			name:   "runtime union incomplete",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + "runtime_union: { dir: \"lib/x\" }\n",
			want:   []string{`DIR/build.textproto:4: runtime_union: pkg missing`},
		},
		{
			name:   "in-tree build needs writable source",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + "in_tree_build: true\n",
			want:   []string{`DIR/build.textproto:4: in_tree_build needs writable_sourcedir: true`},
		},
		{
			name:   "autoreconf needs in-tree build",
			recipe: okSource + okHash + `version: "2.10-1"` + "\n" + "writable_sourcedir: true\ncbuilder: {\n  extra_configure_flag: \"--x\"\n  autoreconf: true\n}\n",
			want:   []string{`DIR/build.textproto:7: cbuilder autoreconf needs in_tree_build: true (and writable_sourcedir: true)`},
		},
		{
			name: "errors in line order",
			recipe: `version: "2.10"` + "\n" +
				okSource +
				`hash: "abc"` + "\n" +
				`cherry_pick: "absent.patch"` + "\n",
			want: []string{
				`DIR/build.textproto:1: version "2.10": want <upstream>-<revision> with an integer revision, e.g. 2.10-1`,
				`DIR/build.textproto:3: hash "abc": want 64 lowercase hex digits (sha256)`,
				`DIR/build.textproto:4: cherry_pick "absent.patch": DIR/absent.patch: no such file or directory`,
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(tt.recipe), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				f = filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := errStrings(Check([]string{path}, tt.opts), dir)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check(%s) mismatch (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestCheckErrorTypes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write(okSource + okHash + "versoin: \"1-1\"\n")
	errs := Check([]string{path}, Options{})
	var te *pb.TextError
	if len(errs) != 1 || !errors.As(errs[0], &te) {
		t.Fatalf("Check(unknown field) = %v, want one *pb.TextError", errs)
	}
	if diff := cmp.Diff(&pb.TextError{File: path, Line: 3, Col: 1, Msg: "unknown field: versoin"}, te); diff != "" {
		t.Errorf("Check(unknown field) mismatch (-want +got):\n%s", diff)
	}

	write(okSource + okHash + "version: \"1\"\n")
	errs = Check([]string{path}, Options{})
	var re *Error
	if len(errs) != 1 || !errors.As(errs[0], &re) {
		t.Fatalf("Check(bad version) = %v, want one *Error", errs)
	}
	if got, want := re.Line, 3; got != want {
		t.Errorf("Check(bad version): line = %d, want %d", got, want)
	}
}

func TestCheckPaths(t *testing.T) {
	t.Run("tree", func(t *testing.T) {
		for _, p := range []string{"testdata/pkgs", "testdata", "testdata/pkgs/hello", "testdata/pkgs/hello/build.textproto"} {
			if errs := Check([]string{p}, Options{}); errs != nil {
				t.Errorf("Check(%s) = %v, want nil", p, errs)
			}
		}
	})

	t.Run("finds every recipe once", func(t *testing.T) {
		root := t.TempDir()
		bad := okSource + okHash + "version: \"1\"\n"
		for _, f := range []string{
			"build.textproto",                  // tree form
			"pkgs/a/build.textproto",           // pkgs/<name>/build.textproto
			"pkgs/b/build.textproto",           //
			"pkgs/.git/build.textproto",        // skipped: hidden
			"pkgs/_build/build.textproto",      // skipped: _ prefix
			"pkgs/c/testdata/build.textproto",  // skipped: testdata
			"pkgs/c/build.textproto.orig",      // not a recipe
			"pkgs/d/deeper/e/build.textproto",  // found at any depth
			"other/build.textproto.d/x.textpb", // not a recipe
		} {
			f = filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		msg := `: version "1": want <upstream>-<revision> with an integer revision, e.g. 2.10-1`
		want := []string{
			"DIR/build.textproto:3" + msg,
			"DIR/pkgs/a/build.textproto:3" + msg,
			"DIR/pkgs/b/build.textproto:3" + msg,
			"DIR/pkgs/d/deeper/e/build.textproto:3" + msg,
		}
		// pkgs/a is given twice, once inside the tree; it is checked once.
		got := errStrings(Check([]string{root, filepath.Join(root, "pkgs/a/build.textproto")}, Options{}), root)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Check mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("missing path", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "absent")
		errs := Check([]string{p}, Options{})
		if len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
			t.Errorf("Check(%s) = %v, want one os.ErrNotExist", p, errs)
		}
	})

	t.Run("directory without recipes", func(t *testing.T) {
		p := t.TempDir()
		got := errStrings(Check([]string{p}, Options{}), p)
		if diff := cmp.Diff([]string{"check DIR: no build.textproto found"}, got); diff != "" {
			t.Errorf("Check mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestLocate(t *testing.T) {
	const text = `# comment: with a colon and "quote
source: "https://x/y.tar.gz"  # trailing: comment
cherry_pick: "a.patch"
cherry_pick: 'b\'.patch'
cbuilder: <
  extra_configure_flag: "--x"
  autoreconf: true
>
split_package: { name: "a" claim: { glob: "g" } }
split_package: {
  claim: {
    glob: "out/*"
  }
  claim: [{ glob: "x" }, { glob: "y" }]
}
dep: ["a", "b"]
version: "1-1"
`
	want := locator{
		"source[0]":                           2,
		"cherry_pick[0]":                      3,
		"cherry_pick[1]":                      4,
		"cbuilder[0]":                         5,
		"cbuilder[0].extra_configure_flag[0]": 6,
		"cbuilder[0].autoreconf[0]":           7,
		"split_package[0]":                    9,
		"split_package[0].name[0]":            9,
		"split_package[0].claim[0]":           9,
		"split_package[0].claim[0].glob[0]":   9,
		"split_package[1]":                    10,
		"split_package[1].claim[0]":           11,
		"split_package[1].claim[0].glob[0]":   12,
		"split_package[1].claim[1]":           14,
		"split_package[1].claim[1].glob[0]":   14,
		"dep[0]":                              16,
		"version[0]":                          17,
	}
	got := locate([]byte(text))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locate mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		name string
		key  string
		want int
	}{
		{name: "present", key: "split_package[1].claim[0].glob[0]", want: 12},
		{name: "falls back to enclosing field", key: "split_package[1].name[0]", want: 10},
		{name: "absent", key: "hash[0]", want: 0},
		{name: "empty", key: "", want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := got.line(tt.key); got != tt.want {
				t.Errorf("line(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

// referencePkgs holds the original distri's recipes, next to the checkout.
const referencePkgs = "../../../shared/reference/distri-pkgs"

func TestReferenceRecipes(t *testing.T) {
	if _, err := os.Stat(referencePkgs); err != nil {
		distritest.Skip(t, "reference recipes not available: %v", err)
	}
	files, err := find(referencePkgs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(files), 541; got < want {
		t.Errorf("find(%s) found %d recipes, want at least %d", referencePkgs, got, want)
	}
	// The reference set holds the recipes only, not their patches.
	for _, err := range Check([]string{referencePkgs}, Options{SkipFiles: true}) {
		t.Error(err)
	}
}
