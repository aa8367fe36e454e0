package pkgname

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Name
	}{
		{
			name: "simple",
			in:   "bash-amd64-5.2.15-3",
			want: Name{Pkg: "bash", Arch: "amd64", Upstream: "5.2.15", Rev: 3},
		},
		{
			name: "name contains arch word",
			in:   "glibc-i686-host-amd64-2.27-3",
			want: Name{Pkg: "glibc-i686-host", Arch: "amd64", Upstream: "2.27", Rev: 3},
		},
		{
			name: "name ends in arch word",
			in:   "gcc-libs-i686-amd64-8.2.0-3",
			want: Name{Pkg: "gcc-libs-i686", Arch: "amd64", Upstream: "8.2.0", Rev: 3},
		},
		{
			name: "i686 package",
			in:   "glibc-i686-2.31-4",
			want: Name{Pkg: "glibc", Arch: "i686", Upstream: "2.31", Rev: 4},
		},
		{
			name: "arm64 package",
			in:   "zlib-arm64-1.2.11-4",
			want: Name{Pkg: "zlib", Arch: "arm64", Upstream: "1.2.11", Rev: 4},
		},
		{
			name: "upstream with dashes",
			in:   "fzf-amd64-v0.0.0-20200424135655-e6d33f77da8c-9",
			want: Name{Pkg: "fzf", Arch: "amd64", Upstream: "v0.0.0-20200424135655-e6d33f77da8c", Rev: 9},
		},
		{
			name: "upstream with numeric dash part",
			in:   "google-chrome-amd64-86.0.4240.111-1-18",
			want: Name{Pkg: "google-chrome", Arch: "amd64", Upstream: "86.0.4240.111-1", Rev: 18},
		},
		{
			name: "native version",
			in:   "distri1-amd64-native-49",
			want: Name{Pkg: "distri1", Arch: "amd64", Upstream: "native", Rev: 49},
		},
		{
			name: "missing revision",
			in:   "less-amd64-530",
			want: Name{Pkg: "less", Arch: "amd64", Upstream: "530", Rev: 0},
		},
		{
			name: "unparseable revision",
			in:   "foo-amd64-1.0-rc1",
			want: Name{Pkg: "foo", Arch: "amd64", Upstream: "1.0-rc1", Rev: 0},
		},
		{
			name: "revision overflows int64",
			in:   "foo-amd64-1.0-99999999999999999999",
			want: Name{Pkg: "foo", Arch: "amd64", Upstream: "1.0-99999999999999999999", Rev: 0},
		},
		{
			name: "signed revision is not a revision",
			in:   "foo-amd64-1.0-+3",
			want: Name{Pkg: "foo", Arch: "amd64", Upstream: "1.0-+3", Rev: 0},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if !IsFull(tt.in) {
				t.Errorf("IsFull(%q) = false, want true", tt.in)
			}
			// Formatting and parsing again yields the same Name, even
			// where the input had no revision.
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(%q): %v", got.String(), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("Parse(%q) after String mismatch (-want +got):\n%s", got.String(), diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "unqualified", in: "bash"},
		{name: "unqualified with arch", in: "bash-amd64"},
		{name: "trailing dash", in: "bash-amd64-"},
		{name: "no name", in: "-amd64-5.2.15-3"},
		{name: "unknown arch", in: "bash-x86_64-5.2.15-3"},
		{name: "path", in: "/roimg/bash-amd64-5.2.15-3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, ErrNotFull) {
				t.Errorf("Parse(%q) = %v, want ErrNotFull", tt.in, err)
			}
			if IsFull(tt.in) {
				t.Errorf("IsFull(%q) = true, want false", tt.in)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		name        string
		in          Name
		want        string
		wantVersion string
	}{
		{
			name:        "simple",
			in:          Name{Pkg: "bash", Arch: "amd64", Upstream: "5.2.15", Rev: 3},
			want:        "bash-amd64-5.2.15-3",
			wantVersion: "5.2.15-3",
		},
		{
			name:        "upstream with dashes",
			in:          Name{Pkg: "fzf", Arch: "amd64", Upstream: "v0.0.0-20200424135655-e6d33f77da8c", Rev: 9},
			want:        "fzf-amd64-v0.0.0-20200424135655-e6d33f77da8c-9",
			wantVersion: "v0.0.0-20200424135655-e6d33f77da8c-9",
		},
		{
			name:        "missing revision gets an explicit 0",
			in:          Name{Pkg: "less", Arch: "amd64", Upstream: "530"},
			want:        "less-amd64-530-0",
			wantVersion: "530-0",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("%#v.String() = %q, want %q", tt.in, got, tt.want)
			}
			if got := tt.in.Version(); got != tt.wantVersion {
				t.Errorf("%#v.Version() = %q, want %q", tt.in, got, tt.wantVersion)
			}
		})
	}
}

func TestFromPath(t *testing.T) {
	bash := Name{Pkg: "bash", Arch: "amd64", Upstream: "5.2.15", Rev: 3}
	for _, tt := range []struct {
		name string
		in   string
		want Name
	}{
		{name: "plain name", in: "bash-amd64-5.2.15-3", want: bash},
		{name: "image", in: "/roimg/bash-amd64-5.2.15-3.squashfs", want: bash},
		{name: "meta file", in: "bash-amd64-5.2.15-3.meta.textproto", want: bash},
		{name: "build log", in: "build/distri/bash-amd64-5.2.15-3.log", want: bash},
		{name: "compressed image", in: "repo/pkg/bash-amd64-5.2.15-3.squashfs.zst", want: bash},
		{name: "gzipped meta", in: "repo/pkg/bash-amd64-5.2.15-3.meta.textproto.gz", want: bash},
		{name: "file inside /ro", in: "/ro/bash-amd64-5.2.15-3/out/bin/bash", want: bash},
		{name: "package directory", in: "/ro/bash-amd64-5.2.15-3/", want: bash},
		{
			name: "missing revision image",
			in:   "/roimg/less-amd64-530.squashfs",
			want: Name{Pkg: "less", Arch: "amd64", Upstream: "530"},
		},
		{
			name: "last full component wins",
			in:   "/ro/glibc-amd64-2.31-4/out/lib/bash-amd64-5.2.15-3.log",
			want: bash,
		},
		{
			name: "link target of an exchange directory entry",
			in:   "../glibc-i686-host-amd64-2.27-3/out/lib/libc.so.6",
			want: Name{Pkg: "glibc-i686-host", Arch: "amd64", Upstream: "2.27", Rev: 3},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromPath(tt.in)
			if err != nil {
				t.Fatalf("FromPath(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FromPath(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestFromPathErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
	}{
		{name: "unversioned meta link", in: "repo/pkg/bash-amd64.meta.textproto"},
		{name: "exchange directory", in: "/ro/bin/bash"},
		{name: "empty", in: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FromPath(tt.in); !errors.Is(err, ErrNotFull) {
				t.Errorf("FromPath(%q) = %v, want ErrNotFull", tt.in, err)
			}
		})
	}
}

func TestSplitVersion(t *testing.T) {
	for _, tt := range []struct {
		name         string
		in           string
		wantUpstream string
		wantRev      int64
	}{
		{name: "simple", in: "5.2.15-3", wantUpstream: "5.2.15", wantRev: 3},
		{name: "native", in: "native-49", wantUpstream: "native", wantRev: 49},
		{name: "pseudo version", in: "v0.0.0-20190101-abcdef-7", wantUpstream: "v0.0.0-20190101-abcdef", wantRev: 7},
		{name: "no revision", in: "530", wantUpstream: "530"},
		{name: "leading dash only", in: "-3", wantUpstream: "-3"},
		{name: "empty revision", in: "1.0-", wantUpstream: "1.0-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			upstream, rev := SplitVersion(tt.in)
			if upstream != tt.wantUpstream || rev != tt.wantRev {
				t.Errorf("SplitVersion(%q) = (%q, %d), want (%q, %d)", tt.in, upstream, rev, tt.wantUpstream, tt.wantRev)
			}
		})
	}
}

func TestSplitArch(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       string
		wantPkg  string
		wantArch string
	}{
		{name: "bare", in: "bash", wantPkg: "bash"},
		{name: "with arch", in: "bash-amd64", wantPkg: "bash", wantArch: "amd64"},
		{name: "arch word inside", in: "glibc-i686-host", wantPkg: "glibc-i686-host"},
		{name: "arch word inside and arch", in: "glibc-i686-host-amd64", wantPkg: "glibc-i686-host", wantArch: "amd64"},
		{name: "ambiguous trailing arch", in: "gcc-i686", wantPkg: "gcc", wantArch: "i686"},
		{name: "only arch", in: "amd64", wantPkg: "amd64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pkg, arch := SplitArch(tt.in)
			if pkg != tt.wantPkg || arch != tt.wantArch {
				t.Errorf("SplitArch(%q) = (%q, %q), want (%q, %q)", tt.in, pkg, arch, tt.wantPkg, tt.wantArch)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	mustParse := func(s string) Name {
		t.Helper()
		n, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tt := range []struct {
		name string
		a, b string
		want int
	}{
		{name: "revision 10 after 9", a: "bash-amd64-5.2.15-10", b: "bash-amd64-5.2.15-9", want: 1},
		{name: "revision 9 before 10", a: "bash-amd64-5.2.15-9", b: "bash-amd64-5.2.15-10", want: -1},
		{name: "equal", a: "bash-amd64-5.2.15-3", b: "bash-amd64-5.2.15-3", want: 0},
		{name: "upstream never compared", a: "gcc-amd64-8.3.0-4", b: "gcc-amd64-10.1.0-3", want: 1},
		{name: "missing revision is 0", a: "less-amd64-530", b: "less-amd64-551-1", want: -1},
		{name: "native revisions", a: "distri1-amd64-native-49", b: "distri1-amd64-native-6", want: 1},
		{name: "tie broken by upstream", a: "foo-amd64-1.0-3", b: "foo-amd64-2.0-3", want: -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustParse(tt.a), mustParse(tt.b)
			if got := Compare(a, b); got != tt.want {
				t.Errorf("Compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got, want := a.Less(b), tt.want < 0; got != want {
				t.Errorf("%s.Less(%s) = %v, want %v", tt.a, tt.b, got, want)
			}
		})
	}

	t.Run("sort", func(t *testing.T) {
		var names []Name
		for _, s := range []string{"bash-amd64-5.2-10", "bash-amd64-4.4-2", "bash-amd64-5.1-9", "bash-amd64-5.0"} {
			names = append(names, mustParse(s))
		}
		slices.SortFunc(names, Compare)
		var got []string
		for _, n := range names {
			got = append(got, n.String())
		}
		want := []string{"bash-amd64-5.0-0", "bash-amd64-4.4-2", "bash-amd64-5.1-9", "bash-amd64-5.2-10"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("sorted mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestArchs(t *testing.T) {
	if diff := cmp.Diff([]string{"amd64", "i686", "arm64"}, Archs()); diff != "" {
		t.Errorf("Archs() mismatch (-want +got):\n%s", diff)
	}
	Archs()[0] = "changed"
	if !IsArch("amd64") {
		t.Errorf("IsArch(amd64) = false after modifying the result of Archs")
	}
	for _, tt := range []struct {
		name   string
		goarch string
		want   string
		wantOK bool
	}{
		{name: "amd64", goarch: "amd64", want: "amd64", wantOK: true},
		{name: "386", goarch: "386", want: "i686", wantOK: true},
		{name: "arm64", goarch: "arm64", want: "arm64", wantOK: true},
		{name: "unsupported", goarch: "riscv64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ArchForGOARCH(tt.goarch)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ArchForGOARCH(%q) = (%q, %v), want (%q, %v)", tt.goarch, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
