package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// mkroot runs distri-mkimage root with a test repository and stand-ins
// for distri-init and distri-fuse, and returns the tree.
func mkroot(t *testing.T) string {
	t.Helper()
	r := mirrortest.NewRepo(t,
		mirrortest.Package{Name: "glibc-amd64-2.36-1", Files: map[string]string{
			"out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "loader\n",
		}},
		mirrortest.Package{Name: "hello-amd64-2.12-1", Deps: []string{"glibc-amd64-2.36-1"}, Files: map[string]string{
			"out/bin/hello": "#!/bin/sh\necho hello\n",
		}},
	)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	for _, name := range []string{"distri-init", "distri-fuse"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(dir, "root")
	args := []string{"root", "--repo", r.Dir, "--pubkey", r.PubFile(t), "-o", root,
		"--init", filepath.Join(bin, "distri-init"), "--fuse", filepath.Join(bin, "distri-fuse"), "hello"}
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("distri-mkimage %v: exit %d\n%s", args, code, stderr)
	}
	if got, want := stdout, root+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	return root
}

// tarEntries lists the entries of a tar file (gzipped if gz) by name.
func tarEntries(t *testing.T, file string, gz bool) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	m := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		m[h.Name] = h
	}
	return m
}

func TestRootUsage(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"no packages", []string{"root", "--repo", "r", "--pubkey", "k", "-o", "x"}},
		{"no repo", []string{"root", "--pubkey", "k", "-o", "x", "base"}},
		{"no output", []string{"root", "--repo", "r", "--pubkey", "k", "base"}},
		{"docker without root", []string{"docker", "-o", "x.tar"}},
		{"lxd without output", []string{"lxd", "--root", "x"}},
		{"gce without disk", []string{"gce", "-o", "x.tar.gz"}},
		{"vdi without output", []string{"vdi", "disk.img"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := runCmd(t, tt.args...); code != 2 {
				t.Errorf("distri-mkimage %v = exit %d, want 2; stderr:\n%s", tt.args, code, errOut)
			}
		})
	}
}

func TestDocker(t *testing.T) {
	tarTool := distritest.NeedTool(t, "tar")
	root := mkroot(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "distri.tar")
	code, stdout, stderr := runCmd(t, "docker", "--root", root, "-o", out)
	if code != 0 {
		t.Fatalf("docker: exit %d\n%s", code, stderr)
	}
	if got, want := stdout, out+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	listing, err := exec.Command(tarTool, "-tvf", out).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvf: %v\n%s", err, listing)
	}
	for _, want := range []string{
		"./entrypoint -> /init", "./init\n", "./distri-fuse\n", "./roimg/hello-amd64-2.12-1.squashfs\n",
		"./roimg/glibc-amd64-2.36-1.meta.textproto\n", "./bin -> /ro/bin\n", "./usr -> /\n",
		"./etc/shadow\n", "drwxrwxrwt", "2020-01-01",
	} {
		if !strings.Contains(string(listing), want) {
			t.Errorf("tar -tvf lacks %q:\n%s", want, listing)
		}
	}
	m := tarEntries(t, out, false)
	if h := m["./tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("./tmp/ = %+v, want mode 1777", h)
	}
	// The same tree gives the same tar.
	out2 := filepath.Join(dir, "distri2.tar")
	if code, _, stderr := runCmd(t, "docker", "--root", root, "-o", out2); code != 0 {
		t.Fatalf("docker: exit %d\n%s", code, stderr)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Errorf("two docker tars of the same tree differ")
	}
}

func TestLXD(t *testing.T) {
	root := mkroot(t)
	prefix := filepath.Join(t.TempDir(), "distri")
	code, stdout, stderr := runCmd(t, "lxd", "--root", root, "-o", prefix)
	if code != 0 {
		t.Fatalf("lxd: exit %d\n%s", code, stderr)
	}
	if got, want := stdout, prefix+"-metadata.tar\n"+prefix+"-rootfs.tar\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	f, err := os.Open(prefix + "-metadata.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	h, err := tr.Next()
	if err != nil || h.Name != "metadata.yaml" {
		t.Fatalf("first entry of metadata tar = %v, %v, want metadata.yaml", h, err)
	}
	yaml, _ := io.ReadAll(tr)
	for _, want := range []string{"architecture: ", "creation_date: 1577836800\n", "  os: distri\n"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("metadata.yaml lacks %q:\n%s", want, yaml)
		}
	}
	m := tarEntries(t, prefix+"-rootfs.tar", false)
	for _, want := range []string{"./", "./init", "./roimg/hello-amd64-2.12-1.squashfs", "./lib64/ld-linux-x86-64.so.2"} {
		if m[want] == nil {
			t.Errorf("rootfs tar lacks %s", want)
		}
	}
	if m["./entrypoint"] != nil {
		t.Errorf("rootfs tar has ./entrypoint, which is docker's")
	}
}

// rawDisk writes a small sparse file with some data, standing in for a
// disk image.
func rawDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(distritest.Bytes(1<<20, 1), 4<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGCE(t *testing.T) {
	disk := rawDisk(t)
	out := filepath.Join(t.TempDir(), "distri-gce.tar.gz")
	code, stdout, stderr := runCmd(t, "gce", "-o", out, disk)
	if code != 0 {
		t.Fatalf("gce: exit %d\n%s", code, stderr)
	}
	if got, want := stdout, out+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	m := tarEntries(t, out, true)
	if len(m) != 1 || m["disk.raw"] == nil {
		t.Fatalf("entries = %v, want disk.raw only", m)
	}
	if h := m["disk.raw"]; h.Size != 16<<20 || h.Format != tar.FormatGNU {
		t.Errorf("disk.raw: size %d format %v, want %d, GNU", h.Size, h.Format, 16<<20)
	}
}

func TestConvert(t *testing.T) {
	qemuImg := distritest.NeedTool(t, "qemu-img")
	disk := rawDisk(t)
	for _, format := range []string{"vdi", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "distri."+format)
			code, stdout, stderr := runCmd(t, format, disk, "-o", out)
			if code != 0 {
				t.Fatalf("%s: exit %d\n%s", format, code, stderr)
			}
			if got, want := stdout, out+"\n"; got != want {
				t.Errorf("stdout = %q, want %q", got, want)
			}
			b, err := exec.Command(qemuImg, "info", "--output=json", out).Output()
			if err != nil {
				t.Fatalf("qemu-img info: %v", err)
			}
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal(b, &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != format || info.VirtualSize != 16<<20 {
				t.Errorf("qemu-img info = %+v, want format %s, virtual size %d", info, format, 16<<20)
			}
		})
	}
	if code, _, _ := runCmd(t, "qcow2", filepath.Join(t.TempDir(), "missing.img"), "-o", filepath.Join(t.TempDir(), "x")); code != 1 {
		t.Errorf("qcow2 of a missing disk: exit %d, want 1", code)
	}
}

// TestDockerEntrypoint extracts the docker tar, chroots into it and runs
// /entrypoint with a command that is only reachable through /ro: the
// real distri-fuse must serve the store first.
func TestDockerEntrypoint(t *testing.T) {
	distritest.NeedFUSE(t)
	tarTool := distritest.NeedTool(t, "tar")
	init := distritest.StaticBinary(t, "distri.dev/distri/distri-init")
	fuse := distritest.StaticBinary(t, "distri.dev/distri/distri-fuse")
	// tool's program is a symlink to /init, distri-init, which has a
	// command that prints something checkable.
	r := mirrortest.NewRepo(t, mirrortest.Package{Name: "tool-amd64-1-1", Symlinks: map[string]string{"bin/tool": "/init", "out/bin/tool": "/init"}})
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if code, _, stderr := runCmd(t, "root", "--repo", r.Dir, "--pubkey", r.PubFile(t), "-o", root,
		"--init", init, "--fuse", fuse, "tool"); code != 0 {
		t.Fatalf("root: exit %d\n%s", code, stderr)
	}
	out := filepath.Join(dir, "distri.tar")
	if code, _, stderr := runCmd(t, "docker", "--root", root, "-o", out); code != 0 {
		t.Fatalf("docker: exit %d\n%s", code, stderr)
	}
	ext := filepath.Join(dir, "ext")
	os.Mkdir(ext, 0o755)
	if b, err := exec.Command(tarTool, "-xf", out, "-C", ext).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, b)
	}
	// docker gives a container /dev/fuse with --privileged.
	if err := unix.Mknod(filepath.Join(ext, "dev/fuse"), unix.S_IFCHR|0o666, int(unix.Mkdev(10, 229))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// distri-fuse outlives the command (as in a container, where it
		// dies with the namespace); unmounting ends it.
		if err := unix.Unmount(filepath.Join(ext, "ro"), unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s/ro: %v", ext, err)
		}
	})
	cmd := exec.Command("/entrypoint", "tool", "cmdline", "root=/dev/vda2 ro")
	cmd.Dir = "/"
	cmd.Env = []string{"TERM=dumb"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: ext}
	// Files, not buffers: distri-fuse inherits stderr and outlives the
	// command, so a pipe would never close.
	stdoutF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdoutF.Close()
	stderrF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderrF.Close()
	cmd.Stdout, cmd.Stderr = stdoutF, stderrF
	err = cmd.Run()
	stdout, _ := os.ReadFile(stdoutF.Name())
	stderr, _ := os.ReadFile(stderrF.Name())
	if err != nil {
		t.Fatalf("chroot %s /entrypoint: %v\nstdout:\n%s\nstderr:\n%s", ext, err, stdout, stderr)
	}
	if got, want := string(stderr), `root "/dev/vda2"`; !strings.Contains(got, want) {
		t.Errorf("/entrypoint tool cmdline: stderr %q lacks %q (stdout %q)", got, want, stdout)
	}
}
