package modprobe

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"distri.dev/distri/lib/distritest"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want Options
	}{
		// How the kernel's request_module() runs it.
		{[]string{"-q", "--", "fs-vfat"}, Options{Quiet: true, Names: []string{"fs-vfat"}}},
		{[]string{"-q", "--", "-odd-name"}, Options{Quiet: true, Names: []string{"-odd-name"}}},
		{[]string{"nls_cp437", "nls_ascii"}, Options{Names: []string{"nls_cp437", "nls_ascii"}}},
		{[]string{"-b", "-q", "crypto-xts"}, Options{Quiet: true, Names: []string{"crypto-xts"}, Ignored: []string{"-b"}}},
		{[]string{"-qbav", "dm_crypt"}, Options{Quiet: true, Verbose: true, Names: []string{"dm_crypt"}, Ignored: []string{"-b", "-a"}}},
		{[]string{"-x", "--use-blacklist", "vfat"}, Options{Names: []string{"vfat"}, Ignored: []string{"-x", "--use-blacklist"}}},
		{[]string{"-d", "/mnt", "-S6.1.0-56-cloud-amd64", "-R", "vfat"}, Options{Root: "/mnt", Release: "6.1.0-56-cloud-amd64", Resolve: true, Names: []string{"vfat"}}},
		{[]string{"--dirname=/mnt", "--set-version", "6.1", "--show-depends", "vfat"}, Options{Root: "/mnt", Release: "6.1", Depends: true, Names: []string{"vfat"}}},
		{[]string{"-dq", "vfat"}, Options{Root: "q", Names: []string{"vfat"}}}, // -d takes the rest as its value
		{[]string{"-h"}, Options{Help: true}},
	} {
		got, err := Parse(tt.args)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.args, diff)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "no module name given"},
		{[]string{"-q", "--"}, "no module name given"},
		{[]string{"-r", "vfat"}, "-r (removing modules) is not supported"},
		{[]string{"-qn", "vfat"}, "-n (a dry run) is not supported"},
		{[]string{"--remove", "vfat"}, "--remove (removing modules) is not supported"},
		{[]string{"vfat", "utf8=1"}, "module parameters (utf8=1) are not supported"},
		{[]string{"-S"}, "option -S needs a value"},
	} {
		if _, err := Parse(tt.args); err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) error %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestRunDebian shows what loading the kernel's requests would insert,
// from Debian's cloud kernel tree (no modules.dep), as the kernel asks
// when a vfat file system is mounted.
func TestRunDebian(t *testing.T) {
	k := distritest.DebianKernel(t)
	dir := filepath.Join(k.Modules, k.Release)
	cache := t.TempDir()
	run := func(args ...string) (string, string, error) {
		o, err := Parse(args)
		if err != nil {
			t.Fatal(err)
		}
		o.Root, o.Release, o.CacheDirs = filepath.Dir(filepath.Dir(k.Modules)), k.Release, []string{cache}
		var out, errb bytes.Buffer
		err = Run(o, &out, &errb)
		return out.String(), errb.String(), err
	}
	out, stderr, err := run("-D", "--", "fs-vfat", "nls_cp437", "nls_ascii", "fs-ext4")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	want := "insmod " + dir + "/kernel/fs/fat/fat.ko\n" +
		"insmod " + dir + "/kernel/fs/fat/vfat.ko\n" +
		"insmod " + dir + "/kernel/fs/nls/nls_cp437.ko\n" +
		"insmod " + dir + "/kernel/fs/nls/nls_ascii.ko\n" +
		"builtin ext4\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("-D mismatch (-want +got):\n%s", diff)
	}
	if out, _, err := run("-R", "crypto-xts"); err != nil || out != "xts\n" {
		t.Errorf("-R crypto-xts: %q, %v", out, err)
	}
	_, stderr, err = run("-D", "fs-nonesuch")
	if err == nil || !strings.Contains(stderr, "fs-nonesuch: no such module (in "+dir+")") {
		t.Errorf("fs-nonesuch: err %v, stderr %q", err, stderr)
	}
	if _, stderr, err = run("-q", "-D", "fs-nonesuch"); err == nil || stderr != "" {
		t.Errorf("-q fs-nonesuch: err %v, stderr %q (want an error and silence)", err, stderr)
	}
	if ents, err := os.ReadDir(cache); err != nil || len(ents) != 2 {
		t.Errorf("cache %s: %v %v, want a lock and an index", cache, ents, err)
	}
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	link, sysctl := filepath.Join(dir, "run/distri/modprobe"), filepath.Join(dir, "sysctl")
	for _, target := range []string{"/init", "/sbin/distri-init"} { // the second replaces the first
		if err := Install(link, target, sysctl); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(link); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %s", link, got, err, target)
		}
	}
	if b, err := os.ReadFile(sysctl); err != nil || string(b) != link+"\n" {
		t.Errorf("sysctl holds %q (%v), want %s", b, err, link)
	}
	if err := Install(filepath.Join(dir, "helper"), "/init", sysctl); err == nil {
		t.Errorf("Install accepted a helper not named modprobe")
	}
}
