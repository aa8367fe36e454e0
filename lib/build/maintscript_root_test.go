package build

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/fusefs"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/sandbox"
	"distri.dev/distri/lib/sysusers"
)

// TestImportMaintScripts (root tier; .debs come from the test cache)
// imports gawk, automake, vim and openssh-server with their runtime
// closures from pkgs/ and checks, in a sandbox whose root holds only /ro
// (the images, with the links an image root has into it) and an /etc
// made as distri-mkimage makes it, that awk, aclocal, automake and vi run
// through the links the maintainer scripts' update-alternatives calls
// became, and that sshd, which openssh-server's postinst creates with
// adduser, is in /etc/passwd; autoreconf -fi (autoconf imported too)
// generates an autotools project, calling aclocal and automake by their
// unversioned names. Before the maintainer scripts were read,
// /ro/<gawk>/bin/awk, /ro/<automake>/bin/aclocal and /ro/<vim>/bin/vi did
// not exist and no package declared sshd.
func TestImportMaintScripts(t *testing.T) {
	b, _ := newSandboxBuilder(t)
	b.opts.Log = nil // a line per alternative of ~80 packages
	start := time.Now()
	// The four and their runtime closures, imported two at a time.
	var dirs []string
	full := map[string]string{}
	// autoconf and the shell tools it runs, for autoreconf; dash, which
	// is /bin/sh in base and runs the commands of aclocal's pipes.
	for _, name := range []string{"gawk", "automake", "vim", "openssh-server", "autoconf", "bash", "coreutils", "sed", "grep", "dash"} {
		r, err := ReadRecipe(filepath.Join("..", "..", "pkgs", name))
		if err != nil {
			t.Fatal(err)
		}
		full[name] = r.FullName()
		dirs = append(dirs, r.Dir)
		closure, err := RuntimeClosure(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range closure {
			n, err := pkgname.Parse(c)
			if err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, filepath.Join("..", "..", "pkgs", n.Pkg))
		}
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	images := map[string]string{}
	recipes := make([]*Recipe, len(dirs))
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(2)
	for i, dir := range dirs {
		g.Go(func() error {
			r, err := ReadRecipe(dir)
			if err != nil {
				return err
			}
			img, err := b.Build(t.Context(), dir)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			images[r.FullName()] = img
			recipes[i] = r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %d packages in %v", len(images), time.Since(start).Round(time.Millisecond))

	// The meta records the decisions.
	meta, err := pb.ReadMetaFile(strings.TrimSuffix(images[full["gawk"]], ".squashfs") + ".meta.textproto")
	if err != nil {
		t.Fatal(err)
	}
	var provided []string
	for _, a := range meta.GetAlternative() {
		if a.GetProvided() {
			provided = append(provided, a.GetLink())
		}
	}
	if !slices.Contains(provided, "bin/awk") || !slices.Contains(meta.GetProvides(), "bin/awk") {
		t.Errorf("gawk's meta: alternatives provided %q, provides %q; want bin/awk in both", provided, meta.GetProvides())
	}

	ro := runtimeRO(t, b, nil, recipes, images)
	// /etc as distri-mkimage writes it (lib/rootfs), then the packages'
	// sysusers.d files applied.
	etc := filepath.Join(t.TempDir(), "etc")
	os.MkdirAll(etc, 0o755)
	write(t, filepath.Join(etc, "passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	write(t, filepath.Join(etc, "group"), []byte("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"))
	var entries []sysusers.Entry
	confs, _ := filepath.Glob(filepath.Join(ro.dir, "*", "out/lib/sysusers.d/*.conf"))
	for _, c := range confs {
		bs, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		es, err := sysusers.Parse(c, bs)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, es...)
	}
	if _, err := sysusers.Apply(filepath.Dir(etc), entries); err != nil {
		t.Fatal(err)
	}

	// An autotools project for autoreconf, which runs aclocal and
	// automake by their unversioned names.
	proj := filepath.Join(t.TempDir(), "proj")
	write(t, filepath.Join(proj, "configure.ac"), []byte("AC_INIT([t], [1])\nAM_INIT_AUTOMAKE([foreign])\nAC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n"))
	write(t, filepath.Join(proj, "Makefile.am"), nil)
	roDir := ro.dir
	run := func(argv ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := sandbox.Run(t.Context(), sandbox.Options{
			BuildDir: proj,
			Dir:      "/build",
			RO:       roDir,
			Links: map[string]string{"/bin": "/ro/bin", "/sbin": "/ro/bin", "/lib": "/ro/lib", "/lib64": "/ro/lib64",
				"/share": "/ro/share", "/include": "/ro/include", "/usr": "/", "/etc": "/image/etc"},
			Dest:   filepath.Dir(etc),
			DestAt: "/image", // /etc → /image/etc: the sandbox writes no /etc of its own
			Env:    []string{"PATH=/ro/bin:/bin", "LC_ALL=C"},
			Argv:   argv,
			Stdout: &stdout,
			Stderr: &stderr,
		})
		if err != nil {
			t.Errorf("%q: %v; stderr: %s", argv, err, stderr.String())
		}
		return stdout.String()
	}
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"/ro/" + full["gawk"] + "/bin/awk", "BEGIN{print 6*7}"}, "42\n"},
		{[]string{"/ro/bin/awk", "BEGIN{print 6*7}"}, "42\n"},
		{[]string{"/ro/bin/nawk", "BEGIN{print 6*7}"}, "42\n"},
		{[]string{"/ro/" + full["automake"] + "/bin/aclocal", "--version"}, "aclocal (GNU automake) 1.16"},
		{[]string{"/ro/bin/automake", "--version"}, "automake (GNU automake) 1.16"},
		{[]string{"/ro/" + full["vim"] + "/bin/vi", "--version"}, "VIM - Vi IMproved"},
		{[]string{"/ro/bin/autoreconf", "-fi"}, ""},
		{[]string{"/bin/sh", "-c", "test -x configure && test -f Makefile.in && test -f aclocal.m4 && echo generated"}, "generated\n"},
		{[]string{"/ro/bin/awk", "-F:", `$1=="sshd"{print $1, $4, $6, $7}`, "/etc/passwd"}, "sshd 65534 /run/sshd /usr/sbin/nologin\n"},
	} {
		if got := run(c.argv...); !strings.Contains(got, c.want) {
			t.Errorf("%q printed %q, want %q in it", c.argv, got, c.want)
		}
	}
	// The same through /ro as distri-fuse serves it (lib/fusefs), as in
	// a root of distri-mkimage: automake's empty share/aclocal must be
	// /usr/share/aclocal there too, or aclocal stops with "couldn't open
	// directory". No package here provides bin/sh: bash's serves.
	roDir = fuseRO(t, images)
	proj = filepath.Join(t.TempDir(), "proj")
	write(t, filepath.Join(proj, "configure.ac"), []byte("AC_INIT([t], [1])\nAM_INIT_AUTOMAKE([foreign])\nAC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n"))
	write(t, filepath.Join(proj, "Makefile.am"), nil)
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"/ro/bin/bash", "-c", "test -d /usr/share/aclocal && echo dir"}, "dir\n"},
		{[]string{"/ro/bin/autoreconf", "-fi"}, ""},
		{[]string{"/ro/bin/bash", "-c", "test -x configure && test -f Makefile.in && test -f aclocal.m4 && echo generated"}, "generated\n"},
	} {
		if got := run(c.argv...); !strings.Contains(got, c.want) {
			t.Errorf("through distri-fuse's /ro: %q printed %q, want %q in it", c.argv, got, c.want)
		}
	}
	roDir = ro.dir

	// /ro/bin/awk is gawk's link, not the build farm's fallback alias.
	if target, err := os.Readlink(filepath.Join(ro.dir, "bin/awk")); err != nil || !strings.Contains(target, full["gawk"]) {
		t.Errorf("/ro/bin/awk → %q (%v), want gawk's bin/awk", target, err)
	}
}

// fuseRO serves images (full name → image, its meta next to it) with
// lib/fusefs, as distri-fuse serves /ro, and returns the mount point
// (unmounted when the test ends).
func fuseRO(t *testing.T, images map[string]string) string {
	t.Helper()
	distritest.NeedFUSE(t)
	store := t.TempDir()
	for full, img := range images {
		meta := strings.TrimSuffix(img, ".squashfs") + ".meta.textproto"
		for from, to := range map[string]string{img: full + ".squashfs", meta: full + ".meta.textproto"} {
			if err := os.Symlink(from, filepath.Join(store, to)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mnt := t.TempDir()
	// allow_other: the sandbox's steps run as an id of its user namespace.
	srv, err := fusefs.Mount(t.Context(), fusefs.Options{Store: store, Mountpoint: mnt, AllowOther: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}
