package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/release"
)

// TestMakeRelease runs `make release` of the repository's Makefile on
// small stand-ins for the images and tars, with the distri-mirror this
// test built, and checks what it publishes with minisign and sha256sum.
func TestMakeRelease(t *testing.T) {
	mk := distritest.NeedTool(t, "make")
	minisign := distritest.NeedTool(t, "minisign")
	distritest.NeedTool(t, "sha256sum")
	bin := filepath.Dir(distritest.Binary(t, "distri.dev/distri/distri-mirror"))
	in := t.TempDir()
	key := filepath.Join(in, "distri-repo-key")
	if code, _, errs := runCmd(t, "keygen", "-o", key); code != 0 {
		t.Fatalf("keygen: %s", errs)
	}
	files := map[string]int64{"distri-disk.img": 64 << 20, "distri-qemu-serial.img": 64 << 20, "distri-docker.tar": 1 << 20, "distri-gce.tar.gz": 100}
	for name, size := range files {
		f, err := os.Create(filepath.Join(in, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(distritest.Bytes(4096, size), size/2); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out := filepath.Join(t.TempDir(), "release")
	cmd := exec.Command(mk, "--no-print-directory", "-C", "..", "release", "RELEASE_DEPS=", "BIN="+bin,
		"IMAGE_KEY="+key, "RELEASE_DIR="+out, "RELEASE_URL=https://mirror.example/distri/", "RELEASE_TRACKERS=",
		"DISKIMG="+filepath.Join(in, "distri-disk.img"), "SERIALIMG="+filepath.Join(in, "distri-qemu-serial.img"),
		"DOCKERTAR="+filepath.Join(in, "distri-docker.tar"), "GCEIMG="+filepath.Join(in, "distri-gce.tar.gz"))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	for _, want := range []string{"distri-disk.img.zst:\nmagnet:?xt=urn:btih:", "distri-qemu-serial.img.zst:\nmagnet:?xt=urn:btih:"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("make release printed no %q:\n%s", want, b)
		}
	}
	img := filepath.Join(out, release.ImgDir)
	for _, name := range []string{"distri-disk.img.zst", "distri-disk.img.zst.torrent", "distri-qemu-serial.img.zst",
		"distri-qemu-serial.img.zst.torrent", "distri-docker.tar.zst", "distri-gce.tar.gz", "README", "index.html"} {
		if _, err := os.Stat(filepath.Join(img, name)); err != nil {
			t.Errorf("make release: %v", err)
		}
	}
	if out, err := exec.Command(minisign, "-V", "-p", key+".pub", "-m", filepath.Join(img, release.SumsFile)).CombinedOutput(); err != nil {
		t.Errorf("minisign -V: %v\n%s", err, out)
	}
	sums := exec.Command("sha256sum", "--strict", "-c", release.SumsFile)
	sums.Dir = img
	if out, err := sums.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
}

func TestReleaseUsage(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no key", []string{"release", "--image", "x.img"}, 2, "--key is required"},
		{"nothing to publish", []string{"release", "--key", "k.key"}, 2, "nothing to publish"},
		{"bad level", []string{"release", "--key", "k.key", "--level", "max", "--image", "x"}, 2, "--level"},
		{"arguments", []string{"release", "--key", "k.key", "x.img"}, 2, "unknown command"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tt.wantCode, tt.wantErr)
			}
		})
	}
}
