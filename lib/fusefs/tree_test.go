package fusefs

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/pkgname"
)

// input makes a pkgInput for full with the given provides.
func input(t *testing.T, full string, provides ...string) pkgInput {
	t.Helper()
	n, err := pkgname.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	return pkgInput{name: n, img: &image{full: full, gen: uint64(len(full))}, provides: provides}
}

// links returns the symlink targets and directories of t below dir,
// recursively: path → target, or "dir" for directories.
func links(t *tree, dir string) map[string]string {
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		d := t.dirs[p]
		for _, name := range d.names {
			e := d.entries[name]
			if e.dir {
				out[p+"/"+name] = "dir"
				walk(p + "/" + name)
			} else {
				out[p+"/"+name] = e.target
			}
		}
	}
	walk(dir)
	return out
}

func TestBuildTree(t *testing.T) {
	for _, tt := range []struct {
		name string
		pkgs []pkgInput
		dir  string
		want map[string]string
	}{
		{
			name: "highest revision wins",
			pkgs: []pkgInput{
				input(t, "less-amd64-530-10", "bin/less"),
				input(t, "less-amd64-530-2", "bin/less", "bin/lessold"),
				input(t, "less-amd64-9-9", "bin/less"),
			},
			dir:  "bin",
			want: map[string]string{"bin/less": "../less-amd64-530-10/bin/less"},
		},
		{
			name: "smallest package name wins a conflict",
			pkgs: []pkgInput{
				input(t, "gamma-amd64-1-1", "bin/foo", "bin/gamma"),
				input(t, "alpha-amd64-1-1", "bin/foo"),
				input(t, "beta-amd64-1-9", "bin/foo"),
			},
			dir: "bin",
			want: map[string]string{
				"bin/foo":   "../alpha-amd64-1-1/bin/foo",
				"bin/gamma": "../gamma-amd64-1-1/bin/gamma",
			},
		},
		{
			name: "directory beats file",
			pkgs: []pkgInput{
				input(t, "a-amd64-1-1", "lib/foo", "lib/libz.so"),
				input(t, "b-amd64-1-1", "lib/foo/bar.so"),
			},
			dir: "lib",
			want: map[string]string{
				"lib/foo":        "dir",
				"lib/foo/bar.so": "../../b-amd64-1-1/out/lib/foo/bar.so",
				"lib/libz.so":    "../a-amd64-1-1/out/lib/libz.so",
			},
		},
		{
			name: "empty directory is provided",
			pkgs: []pkgInput{
				input(t, "automake-amd64-1.16-1", "bin/aclocal", "share/aclocal/", "share/x/y/z/"),
			},
			dir: "share",
			want: map[string]string{
				"share/aclocal": "dir",
				"share/x":       "dir",
				"share/x/y":     "dir",
				"share/x/y/z":   "dir",
			},
		},
		{
			name: "provided directory merges with others' entries and beats a file",
			pkgs: []pkgInput{
				input(t, "automake-amd64-1.16-1", "share/aclocal/"),
				input(t, "pkgconf-amd64-1-1", "share/aclocal/pkg.m4"),
				input(t, "aaa-amd64-1-1", "share/aclocal"), // a file: loses to the directory
			},
			dir: "share",
			want: map[string]string{
				"share/aclocal":        "dir",
				"share/aclocal/pkg.m4": "../../pkgconf-amd64-1-1/out/share/aclocal/pkg.m4",
			},
		},
		{
			name: "paths outside exchange dirs are ignored",
			pkgs: []pkgInput{
				input(t, "a-amd64-1-1", "etc/passwd", "bin/a"),
			},
			dir:  "bin",
			want: map[string]string{"bin/a": "../a-amd64-1-1/bin/a"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := buildTree(tt.pkgs, nil, &inoAlloc{next: counter(), now: map[string]uint64{}}, time.Unix(1, 0))
			if diff := cmp.Diff(tt.want, links(tr, tt.dir)); diff != "" {
				t.Errorf("buildTree: %s mismatch (-want +got):\n%s", tt.dir, diff)
			}
			// The same packages in any order give the same tree.
			for i := range 10 {
				shuffled := append([]pkgInput(nil), tt.pkgs...)
				rand.New(rand.NewPCG(uint64(i), 0)).Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
				tr2 := buildTree(shuffled, nil, &inoAlloc{next: counter(), now: map[string]uint64{}}, time.Unix(1, 0))
				if diff := cmp.Diff(links(tr, tt.dir), links(tr2, tt.dir)); diff != "" {
					t.Fatalf("buildTree of shuffled input differs (-first +shuffled):\n%s", diff)
				}
			}
		})
	}
}

func counter() func() uint64 {
	n := uint64(firstVirtualIno)
	return func() uint64 { n++; return n }
}

func TestBuildTreeKeepsUnchangedNodes(t *testing.T) {
	alloc := &inoAlloc{next: counter(), now: map[string]uint64{}}
	a := input(t, "a-amd64-1-1", "bin/a", "lib/pkgconfig/a.pc")
	b := input(t, "b-amd64-1-1", "bin/b")
	t1 := buildTree([]pkgInput{a}, nil, alloc, time.Unix(1, 0))
	alloc2 := &inoAlloc{next: alloc.next, old: alloc.now, now: map[string]uint64{}}
	t2 := buildTree([]pkgInput{a, b}, t1, alloc2, time.Unix(2, 0))

	if got, want := t2.dirs["bin"].entries["a"].ino, t1.dirs["bin"].entries["a"].ino; got != want {
		t.Errorf("inode of unchanged bin/a = %d, want %d (kept)", got, want)
	}
	if got, want := t2.dirs["bin"].mtime, time.Unix(2, 0); !got.Equal(want) {
		t.Errorf("mtime of changed bin = %v, want %v", got, want)
	}
	if got, want := t2.dirs["lib/pkgconfig"].mtime, time.Unix(1, 0); !got.Equal(want) {
		t.Errorf("mtime of unchanged lib/pkgconfig = %v, want %v", got, want)
	}
	if diff := cmp.Diff([]string{"a-amd64-1-1", "b-amd64-1-1"}, t2.dirs["bin"].owners); diff != "" {
		t.Errorf("owners of bin mismatch (-want +got):\n%s", diff)
	}
}

// TestBuildTreeEmptyDirOwners: a package that provides only an empty
// directory owns it (and the exchange directories above), as
// lib/query.Owner says without a mount; a package whose every entry is
// shadowed still owns none.
func TestBuildTreeEmptyDirOwners(t *testing.T) {
	tr := buildTree([]pkgInput{
		input(t, "automake-amd64-1.16-1", "share/aclocal/"),
		input(t, "pkgconf-amd64-1-1", "share/aclocal/pkg.m4"),
		input(t, "zz-amd64-1-1", "share/aclocal/pkg.m4"),
	}, nil, &inoAlloc{next: counter(), now: map[string]uint64{}}, time.Unix(1, 0))
	for _, d := range []string{"share", "share/aclocal"} {
		if diff := cmp.Diff([]string{"automake-amd64-1.16-1", "pkgconf-amd64-1-1"}, tr.dirs[d].owners); diff != "" {
			t.Errorf("owners of %s mismatch (-want +got):\n%s", d, diff)
		}
	}
}

func TestBuildTreeUnions(t *testing.T) {
	host := input(t, "irssi-amd64-1.2-3")
	plugOld := input(t, "irssi-robustirc-amd64-1-1")
	plugOld.unions = []unionTarget{{dir: "out/lib/irssi/modules", host: "irssi-amd64-1.2-3"}}
	plug := input(t, "irssi-robustirc-amd64-1-2")
	plug.unions = plugOld.unions
	orphan := input(t, "orphan-amd64-1-1")
	orphan.unions = []unionTarget{{dir: "out/lib/x", host: "gone-amd64-1-1"}}

	tr := buildTree([]pkgInput{plug, host, plugOld, orphan}, nil, &inoAlloc{next: counter(), now: map[string]uint64{}}, time.Unix(1, 0))
	got := tr.unionPlugins("irssi-amd64-1.2-3", "out/lib/irssi/modules")
	if len(got) != 1 || got[0] != plug.img {
		t.Errorf("unionPlugins = %v, want [%v] (only the newest plugin revision)", got, plug.img)
	}
	if len(tr.unions["gone-amd64-1-1"]) != 0 {
		t.Errorf("union with a host not in the store: %v", tr.unions)
	}
}

func TestDefaultCtlSocket(t *testing.T) {
	for _, tt := range []struct {
		name, store, mnt, want string
	}{
		{name: "system", store: "/roimg", mnt: "/ro", want: "/run/distri-fuse.sock"},
		{name: "install root", store: "/mnt/roimg", mnt: "/mnt/ro", want: "/mnt/run/distri-fuse.sock"},
		{name: "other store", store: "/srv/pkgs", mnt: "/srv/ro", want: "/run/distri-fuse/srv-ro.sock"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultCtlSocket(tt.store, tt.mnt); got != tt.want {
				t.Errorf("DefaultCtlSocket(%q, %q) = %q, want %q", tt.store, tt.mnt, got, tt.want)
			}
		})
	}
}
