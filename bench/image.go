package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"distri.dev/distri/lib/batch"
	"distri.dev/distri/lib/build"
	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/image"
	"distri.dev/distri/lib/initramfs"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/pack"
	"distri.dev/distri/lib/rootfs"
)

// benchImage times `make image`: distri-mkimage disk --repo R with the
// base set (the Makefile's IMAGE_PKGS) from a populated repository, warm
// page cache, 8 GiB sparse image. The target is under 4 s; the original
// distri took 40 s, then 4 s (DESIGN.md §7), with sudo, loop devices and
// mounts. The breakdown comes from the -v lines as they arrive: install
// (resolve, fetch into the store, the kernel package's initramfs), the
// rest of the root tree, ext4, ESP (and LUKS, GRUB). The repository is
// built from pkgs/ (the closure of IMAGE_PKGS, distri-build's batch,
// only what is stale; the suite packed as distri) into benchCache;
// $DISTRI_BENCH_IMAGE_REPO (a signed repository folder with distri.pub)
// and $DISTRI_BENCH_IMAGE_PKGS select another.
//
// Peers: the same disk assembled from the same root tree with host tools
// (sfdisk, mkfs.fat, mtools, mkfs.ext4 -d), and mkfs.ext4 -d alone. The
// encrypted image has no peer here: cryptsetup needs dm-crypt to encrypt
// data, which this host lacks.
func benchImage(work, _ string, rounds int) ([]result, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root: distri-build's batch builds the base set in its sandbox")
	}
	k, cache, err := kernelAndTools("e2fsprogs fdisk dosfstools mtools grub-common grub-pc-bin",
		"mkfs.ext4", "debugfs", "sfdisk", "mkfs.fat", "mcopy", "mmd", "grub-mkimage")
	if err != nil {
		return nil, err
	}
	pkgs, err := imagePkgs()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "image-bin")
	bins := map[string]string{}
	for _, c := range []string{"distri", "distri-build", "distri-install", "distri-fuse", "distri-mkimage", "distri-init", "distri-mirror"} {
		if bins[c], err = goBuildStatic(bin, "./"+c); err != nil {
			return nil, err
		}
	}
	repo, err := imageRepo(work, cache, pkgs, bins)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	root := filepath.Join(work, "image-root")
	img := filepath.Join(work, "image.img")
	passFile := filepath.Join(work, "image.pass")
	if err := os.WriteFile(passFile, []byte("peace\n"), 0o600); err != nil {
		return nil, err
	}
	mkimage := func(extra ...string) []string {
		return append(append([]string{bins["distri-mkimage"], "disk", "-v", "-o", img, "--serial", "--seed", "1",
			"--repo", repo}, extra...), pkgs...)
	}

	// The tree the peers and the tree-to-disk rows use (untimed); it
	// also warms the page cache.
	if _, err := rootfs.Make(ctx, rootfs.Options{Dir: root, Packages: pkgs, Repos: []string{repo},
		PubKeyFiles: []string{filepath.Join(repo, "distri.pub")}, Init: bins["distri-init"], Fuse: bins["distri-fuse"]}); err != nil {
		return nil, fmt.Errorf("root tree: %w", err)
	}
	boot, err := rootfs.FindBootFiles(root, work)
	if err != nil {
		return nil, err
	}
	var plain, enc, bios, tree steps
	var peer peerStats
	var initrd []time.Duration
	var allocated float64
	if err := plain.command(mkimage()); err != nil { // warm-up
		return nil, err
	}
	plain = steps{}
	for range rounds {
		if err := plain.command(mkimage()); err != nil {
			return nil, err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(img, &st); err != nil {
			return nil, err
		}
		allocated = float64(st.Blocks*512) / (1 << 20)
		// Encrypted: 2 GiB, since the whole root partition is written.
		if err := enc.command(mkimage("--size", "2G", "--encrypt", "--passphrase-file", passFile)); err != nil {
			return nil, err
		}
		if err := bios.command(mkimage("--bios")); err != nil {
			return nil, err
		}
		if err := tree.disk(ctx, image.DiskOptions{Output: img, Root: root, Kernel: boot.Kernel,
			Initramfs: boot.Initramfs, SystemdBoot: boot.SystemdBoot, Serial: true, Seed: 1}); err != nil {
			return nil, err
		}
		if err := peer.run(root, boot, img, image.DefaultSize); err != nil {
			return nil, err
		}
		// The kernel step of the install alone: the initramfs of the same
		// kernel and distri-init.
		start := time.Now()
		if _, err := initramfs.WriteFile(filepath.Join(work, "initramfs.img"), initramfs.Options{
			Init: bins["distri-init"], KernelRelease: k.Release, ModulesDir: k.Modules}); err != nil {
			return nil, err
		}
		initrd = append(initrd, time.Since(start))
	}
	os.Remove(img)

	treeMiB, files, err := treeSize(root)
	if err != nil {
		return nil, err
	}
	installed, _ := filepath.Glob(filepath.Join(root, "roimg", "*.squashfs"))
	p, e, b, t := plain.medians(), enc.medians(), bios.medians(), tree.medians()
	return []result{{
		name: "make image: disk --repo, base set, warm", ours: plain.median(),
		note: fmt.Sprintf("target < 4 s (original: 40 s, then 4 s); CPU %v; %d pkgs, tree %.0f MiB in %d files; "+
			"install %v (initramfs alone ~%v), rest of the tree %v, ext4 %v, ESP+GPT %v; 8 GiB sparse, %.0f MiB allocated",
			ms(median(plain.cpu)), len(installed), treeMiB, files, ms(p["install"]), ms(median(initrd)), ms(p["tree"]),
			ms(p["ext4"]), ms(p["esp"]), allocated),
	}, {
		name: "disk image from the root tree", ours: tree.median(), peer: median(peer.total),
		peerName: "sfdisk + mkfs.fat + mcopy + mkfs.ext4 -d",
		note: fmt.Sprintf("ours ESP+GPT %v, ext4 %v; peer GPT %v, ESP %v, ext4 %v", ms(t["esp"]), ms(t["ext4"]),
			ms(median(peer.gpt)), ms(median(peer.esp)), ms(median(peer.ext4))),
	}, {
		name: "ext4 root from the tree (8 GiB)", ours: t["ext4"], peer: median(peer.ext4), peerName: "mkfs.ext4 -d (host defaults)",
		note: "ours also writes inode tables and journal eagerly (deterministic bytes) and fixes times with debugfs",
	}, {
		name: "ESP: FAT32 256 MiB + boot files + GPT", ours: t["esp"], peer: median(peer.gpt) + median(peer.esp),
		peerName: "sfdisk + mkfs.fat + mmd/mcopy",
	}, {
		name: "make cryptimage: disk --repo --encrypt (2 GiB)", ours: enc.median(),
		note: fmt.Sprintf("install %v, ext4 %v, LUKS2 (argon2id 64 MiB, aes-xts, whole partition written) %v, ESP+GPT %v; no peer (no dm-crypt on the host)",
			ms(e["install"]), ms(e["ext4"]), ms(e["luks"]), ms(e["esp"])),
	}, {
		name: "disk --repo --bios (GRUB)", ours: bios.median(), peer: plain.median(), peerName: "the same without --bios",
		note: fmt.Sprintf("tree and grub-mkimage %v (without: %v), MBR and core image writes %v", ms(b["tree"]), ms(p["tree"]), ms(b["grub"])),
	}}, nil
}

// steps are the times of image builds, whole and per step.
type steps struct {
	total, cpu []time.Duration
	steps      []map[string]time.Duration
}

// stepOf names the step a log line starts (distri-mkimage -v, or
// image.Disk's log), "" for a line that starts none.
func stepOf(line string) string {
	line = strings.TrimPrefix(line, "distri-mkimage: ")
	has := func(p string) bool { return strings.HasPrefix(line, p) }
	switch {
	case has("installed kernel"):
		return "install" // the kernel package's initramfs is made; the install goes on
	case has("installed "), has("kernel "):
		return "tree" // the store is complete: /etc, the loader, time stamps, boot files
	case has("making ext4"):
		return "ext4"
	case has("encrypting"):
		return "luks"
	case has("writing GPT"):
		return "esp"
	case has("writing GRUB"):
		return "grub"
	case has("wrote "):
		return "exit"
	}
	return ""
}

// record splits the time from start to end by the marks (a log line and
// when it arrived): each step lasts from the line that starts it to the
// next step's.
func (s *steps) record(start, end time.Time, marks []mark) {
	m := map[string]time.Duration{}
	prev, step := start, "install"
	for _, mk := range append(marks, mark{end, "end"}) {
		next := stepOf(mk.line)
		if next == "" && mk.line != "end" {
			continue
		}
		m[step] += mk.at.Sub(prev)
		prev, step = mk.at, next
	}
	s.total = append(s.total, end.Sub(start))
	s.steps = append(s.steps, m)
}

type mark struct {
	at   time.Time
	line string
}

// command runs distri-mkimage disk -v (argv) and records its steps by
// the lines it prints, and its CPU time.
func (s *steps) command(argv []string) error {
	os.Remove(argv[slices.Index(argv, "-o")+1])
	syscall.Sync()
	cmd := exec.Command(argv[0], argv[1:]...)
	r, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	var marks []mark
	var tail []string
	for sc := bufio.NewScanner(r); sc.Scan(); {
		marks = append(marks, mark{time.Now(), sc.Text()})
		tail = append(tail, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%v: %w\n%s", cmd.Args, err, lastLines(strings.Join(tail, "\n"), 20))
	}
	end := time.Now()
	s.record(start, end, marks)
	u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	s.cpu = append(s.cpu, time.Duration(u.Utime.Nano()+u.Stime.Nano()))
	return nil
}

// disk runs image.Disk and records its steps by its log lines.
func (s *steps) disk(ctx context.Context, opts image.DiskOptions) error {
	os.Remove(opts.Output)
	syscall.Sync()
	var marks []mark
	opts.Log = log.New(lineWriter(func(l string) { marks = append(marks, mark{time.Now(), l}) }), "", 0)
	start := time.Now()
	if _, err := image.Disk(ctx, opts); err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	s.record(start, time.Now(), marks)
	return nil
}

func (s *steps) median() time.Duration { return median(s.total) }

func (s *steps) medians() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, k := range []string{"install", "tree", "ext4", "luks", "esp", "grub", "exit"} {
		var v []time.Duration
		for _, m := range s.steps {
			v = append(v, m[k])
		}
		if len(v) > 0 {
			out[k] = median(v)
		}
	}
	return out
}

// lineWriter calls f with each line written to it, when written.
type lineWriter func(string)

func (f lineWriter) Write(p []byte) (int, error) {
	for l := range strings.SplitSeq(strings.TrimSuffix(string(p), "\n"), "\n") {
		f(l)
	}
	return len(p), nil
}

// peerStats is the same disk assembled with host tools: sfdisk for the
// GPT, mkfs.fat and mtools for the ESP in place, mkfs.ext4 -d at the
// root partition's offset. No privileges either.
type peerStats struct {
	total, gpt, esp, ext4 []time.Duration
}

func (p *peerStats) run(root string, bf *rootfs.BootFiles, img string, size int64) error {
	os.Remove(img)
	syscall.Sync()
	const espStart, espSize = 1 << 20, 256 << 20
	rootStart := int64(espStart + espSize)
	rootSize := size - rootStart - 1<<20
	dir := filepath.Dir(img)
	loader := filepath.Join(dir, "loader.conf")
	entry := filepath.Join(dir, "distri.conf")
	if err := os.WriteFile(loader, []byte("default distri.conf\ntimeout 0\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(entry, []byte("title distri\nlinux /distri/vmlinuz\ninitrd /distri/initramfs.img\noptions root=LABEL=distri-root rw\n"), 0o644); err != nil {
		return err
	}
	start := time.Now()
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(img, size); err != nil {
		return err
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n"+
		"start=%d, size=%d, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n", espStart/512, espSize/512, rootStart/512, rootSize/512))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w: %s", cmd.Args, err, out)
	}
	t1 := time.Now()
	if err := run("mkfs.fat", "-F", "32", "-S", "512", "-s", "1", "-n", "DISTRI-ESP", "--offset", fmt.Sprint(espStart/512),
		img, fmt.Sprint(espSize/1024)); err != nil {
		return err
	}
	at := fmt.Sprintf("%s@@%d", img, espStart)
	for _, d := range []string{"::EFI", "::EFI/BOOT", "::EFI/systemd", "::loader", "::loader/entries", "::distri"} {
		if err := run("mmd", "-i", at, d); err != nil {
			return err
		}
	}
	for src, dst := range map[string]string{
		bf.SystemdBoot: "::EFI/BOOT/BOOTX64.EFI", bf.Kernel: "::distri/vmlinuz", bf.Initramfs: "::distri/initramfs.img",
		loader: "::loader/loader.conf", entry: "::loader/entries/distri.conf",
	} {
		if err := run("mcopy", "-i", at, src, dst); err != nil {
			return err
		}
	}
	if err := run("mcopy", "-i", at, bf.SystemdBoot, "::EFI/systemd/systemd-bootx64.efi"); err != nil {
		return err
	}
	t2 := time.Now()
	if err := run("mkfs.ext4", "-q", "-F", "-t", "ext4", "-d", root, "-L", "distri-root",
		"-E", fmt.Sprintf("offset=%d,root_owner=0:0", rootStart), img, fmt.Sprintf("%dk", rootSize/1024)); err != nil {
		return err
	}
	end := time.Now()
	p.total = append(p.total, end.Sub(start))
	p.gpt = append(p.gpt, t1.Sub(start))
	p.esp = append(p.esp, t2.Sub(t1))
	p.ext4 = append(p.ext4, end.Sub(t2))
	return nil
}

// imagePkgs returns $DISTRI_BENCH_IMAGE_PKGS or else the Makefile's
// IMAGE_PKGS, the base set `make image` installs.
func imagePkgs() ([]string, error) {
	if p := strings.Fields(os.Getenv("DISTRI_BENCH_IMAGE_PKGS")); len(p) > 0 {
		return p, nil
	}
	b, err := os.ReadFile("Makefile")
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?m)^IMAGE_PKGS \?=((?:.*\\\n)*.*)$`).FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("Makefile sets no IMAGE_PKGS")
	}
	return strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " ")), nil
}

// imageRepo returns $DISTRI_BENCH_IMAGE_REPO, or else a repository in
// benchCache holding pkgs: the closure of their recipes in pkgs/ built by
// a batch (only what is stale), and "distri", this suite's binaries
// packed as `make repo` packs them; indexed and signed with a fresh key
// (distri.pub in the repository).
func imageRepo(work, cache string, pkgs []string, bins map[string]string) (string, error) {
	if r := os.Getenv("DISTRI_BENCH_IMAGE_REPO"); r != "" {
		return r, nil
	}
	repo := filepath.Join(benchCache, "image-repo")
	dir := filepath.Join(work, "image-pkgs")
	if err := copyClosure("pkgs", dir, pkgs); err != nil { // distri has no recipe: packed below
		return "", err
	}
	// distri first: base's runtime dep without a recipe comes from the
	// repository.
	stage := filepath.Join(work, "distri-pkg")
	for c, p := range bins {
		if err := os.MkdirAll(filepath.Join(stage, "bin"), 0o755); err != nil {
			return "", err
		}
		if err := copyFile(p, filepath.Join(stage, "out", "bin", c)); err != nil {
			return "", err
		}
		if err := os.Symlink("../out/bin/"+c, filepath.Join(stage, "bin", c)); err != nil {
			return "", err
		}
	}
	if _, err := pack.Pack(pack.Options{Name: "distri-amd64-0-1", Dir: stage, OutDir: filepath.Join(repo, "pkg")}); err != nil {
		return "", err
	}
	uris, err := debian.DefaultSources.ArchiveURIs()
	if err != nil {
		return "", err
	}
	b, err := build.New(build.Options{RepoDir: repo, TempDir: work,
		Fetcher: &source.Fetcher{CacheDir: filepath.Join(cache, "sources"), ArchiveURIs: uris}})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "bench: building the base set's closure from pkgs/ into %s (what is stale)\n", repo)
	if _, err := batch.Run(context.Background(), batch.Options{PkgsDir: dir, RepoDir: repo, Jobs: runtime.NumCPU(),
		Builder: &timedBuilder{b: b}}); err != nil {
		return "", err
	}
	key, err := minisign.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	if _, _, err := minisign.WriteKeyFiles(filepath.Join(work, "image-repo"), key, true); err != nil {
		return "", err
	}
	if err := copyFile(filepath.Join(work, "image-repo.pub"), filepath.Join(repo, "distri.pub")); err != nil {
		return "", err
	}
	if _, err := mirror.Index(mirror.IndexOptions{Repo: repo, Key: key}); err != nil {
		return "", err
	}
	return repo, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// treeSize returns the MiB (apparent sizes) and the number of entries
// under dir.
func treeSize(dir string) (float64, int, error) {
	var bytes int64
	n := 0
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		bytes += fi.Size()
		n++
		return nil
	})
	return float64(bytes) / (1 << 20), n, err
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// kernelAndTools checks that the tools are in $PATH (debs is what to
// apt-get install if not) and returns Debian's cloud kernel, fetched into
// the test cache, and that cache.
func kernelAndTools(debs string, tools ...string) (*distritest.Kernel, string, error) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, "", fmt.Errorf("%s not in $PATH (apt-get install %s)", tool, debs)
		}
	}
	cache, err := distritest.DefaultCacheDir()
	if err != nil {
		return nil, "", err
	}
	k, err := distritest.FetchDebianKernel(cache)
	return k, cache, err
}
