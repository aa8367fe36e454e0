package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/image"
	"distri.dev/distri/lib/rootfs"
)

type diskOptions struct {
	output         string
	size           string
	root           string
	kernel         string
	initramfs      string
	systemdBoot    string
	cmdline        string
	serial         bool
	encrypt        bool
	passphraseFile string
	seed           uint64
	bios           bool
	grubDir        string
	verbose        bool
	tree           rootOptions // package mode: disk --repo R PKG...
}

func (o *diskOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.output, "output", "o", "", "image file to write (required)")
	fs.StringVar(&o.size, "size", "8G", "image size: bytes or a number with K, M, G or T (the file is sparse unless encrypted)")
	fs.StringVar(&o.root, "root", "", "prepared root file system tree (instead of packages); etc/fstab is written into it")
	fs.StringVar(&o.kernel, "kernel", "", "vmlinuz with an EFI stub (with --root; default with packages: the kernel package's)")
	fs.StringVar(&o.initramfs, "initramfs", "", "initramfs holding distri-init, e.g. from distri-mkimage initramfs (with --kernel)")
	fs.StringVar(&o.systemdBoot, "systemd-boot", "", "systemd-boot EFI binary (default with packages: from systemd-boot-efi, else "+image.DefaultSystemdBoot+")")
	fs.StringSliceVar(&o.tree.repos, "repo", nil, "repository to install the packages from, a URL or folder (repeatable)")
	fs.StringSliceVar(&o.tree.pubkeys, "pubkey", nil, "public key trusted to sign the index (repeatable; default: distri.pub in a --repo folder)")
	fs.StringSliceVar(&o.tree.imageRepos, "image-repo", nil, "repository URL the image's etc/distri/repos.d lists (default: the --repo URLs; folders of this machine are not listed)")
	fs.StringVar(&o.tree.init, "init", "", "distri-init binary to install as /init (default: distri-init next to this program)")
	fs.StringVar(&o.tree.fuse, "fuse", "", "distri-fuse binary to install as /distri-fuse (default: distri-fuse next to this program)")
	fs.StringVar(&o.tree.hostname, "hostname", rootfs.DefaultHostname, "etc/hostname")
	fs.StringVar(&o.cmdline, "cmdline", "", "extra kernel command line, e.g. quiet")
	fs.BoolVar(&o.serial, "serial", false, "use ttyS0 as the only console (VMs without a display)")
	fs.BoolVar(&o.encrypt, "encrypt", false, "put the root into LUKS2, unlocked with a passphrase at boot")
	fs.StringVar(&o.passphraseFile, "passphrase-file", "", "file whose bytes (trailing newline removed) are the LUKS passphrase (with --encrypt)")
	fs.Uint64Var(&o.seed, "seed", 0, "make the image a function of its inputs and this number (0: random UUIDs); the LUKS volume key and salts are random even then")
	fs.BoolVar(&o.bios, "bios", false, "boot with a legacy BIOS too: GRUB in the MBR and a BIOS boot partition (needs grub-mkimage)")
	fs.StringVar(&o.grubDir, "grub-dir", image.DefaultGrubDir, "GRUB's i386-pc images and modules (with --bios)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log progress on stderr")
}

func newDiskCmd(stdio cli.Stdio) *cobra.Command {
	var opts diskOptions
	cmd := &cobra.Command{
		Use:   "disk -o FILE (--repo R [--pubkey K] PKG... | --root DIR --kernel VMLINUZ --initramfs FILE)",
		Short: "write a bootable UEFI disk image (GPT, systemd-boot, ext4 root, optionally LUKS2)",
		Long: `disk writes a GPT disk image that boots with UEFI: an EFI system partition
(FAT32, 256 MiB) holding systemd-boot, the kernel, the initramfs and one
boot entry, and a root partition holding the root tree as ext4, inside a
LUKS2 container with --encrypt. It needs mkfs.ext4 and no privileges: it
mounts nothing and uses no loop devices. The output is replaced
atomically; with --seed the same inputs give the same bytes, except
an encrypted root partition: its volume key and salts are always random.

With packages, disk installs them with their closures from the
repositories into a root tree (as distri-mkimage root does) and boots the
kernel package's kernel with the initramfs the installer made for it,
through systemd-boot from the systemd-boot-efi package; both must be in
the closure. Otherwise the root is a prepared tree (--root), e.g. from
distri-mkimage root, with --kernel and --initramfs.

Examples:
  % distri-mkimage disk -v -o distri-disk.img --repo repo/ \
        --image-repo http://10.0.2.2:7080 base
  % distri-mkimage root --repo ./repo --pubkey distri.pub -o root/ base
  % distri-mkimage initramfs --kernel-release 6.1.0-56-cloud-amd64 -o initramfs.img
  % distri-mkimage disk -o distri.img --serial --root root/ \
        --kernel /boot/vmlinuz-6.1.0-56-cloud-amd64 --initramfs initramfs.img
  % distri-mkimage disk -o distri.img --encrypt --passphrase-file pass.txt --root root/ \
        --kernel /boot/vmlinuz-6.1.0-56-cloud-amd64 --initramfs initramfs.img`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) > 0) == (opts.root != "") {
				return cli.Usagef("give either packages (with --repo) or a prepared tree (--root with --kernel and --initramfs)")
			}
			if len(args) == 0 && (opts.kernel == "" || opts.initramfs == "") {
				return cli.Usagef("--root needs --kernel and --initramfs")
			}
			if len(args) > 0 && len(opts.tree.repos) == 0 {
				return cli.Usagef("packages need --repo")
			}
			if (opts.kernel == "") != (opts.initramfs == "") {
				return cli.Usagef("--kernel and --initramfs go together")
			}
			return runDisk(cmd.Context(), opts, args, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagRequired("output")
	return cmd
}

func runDisk(ctx context.Context, opts diskOptions, pkgs []string, stdio cli.Stdio) error {
	size, err := parseSize(opts.size)
	if err != nil {
		return cli.Usagef("--size %q: %v", opts.size, err)
	}
	if opts.encrypt != (opts.passphraseFile != "") {
		return cli.Usagef("--encrypt and --passphrase-file go together")
	}
	var pass []byte
	if opts.encrypt {
		b, err := os.ReadFile(opts.passphraseFile)
		if err != nil {
			return err
		}
		// A passphrase typed at the console has no newline.
		pass = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
		if len(pass) == 0 {
			return fmt.Errorf("passphrase file %s is empty", opts.passphraseFile)
		}
	}
	var logger *log.Logger
	if opts.verbose {
		logger = log.New(stdio.Err, "distri-mkimage: ", 0)
	}
	var bios *image.BIOSOptions
	if opts.bios {
		bios = &image.BIOSOptions{GrubDir: opts.grubDir}
	}
	do := image.DiskOptions{
		Output:      opts.output,
		Size:        size,
		Root:        opts.root,
		Kernel:      opts.kernel,
		Initramfs:   opts.initramfs,
		SystemdBoot: opts.systemdBoot,
		Cmdline:     opts.cmdline,
		Serial:      opts.serial,
		Encrypt:     opts.encrypt,
		Passphrase:  pass,
		Seed:        opts.seed,
		BIOS:        bios,
		Log:         logger,
	}
	if len(pkgs) == 0 {
		_, err = image.Disk(ctx, do)
	} else {
		err = diskFromPackages(ctx, opts, pkgs, do, logger, stdio.Err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, opts.output)
	return nil
}

// parseSize parses "8G", "512M", "1T" (powers of 1024) or plain bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch strings.ToUpper(s[n-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		case "T":
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("want a positive size like 8G")
	}
	return v * mult, nil
}

// diskFromPackages installs pkgs into a root tree and writes it as the
// disk image (rootfs.Disk). Without --pubkey, each --repo folder's
// distri.pub is trusted.
func diskFromPackages(ctx context.Context, opts diskOptions, pkgs []string, do image.DiskOptions, logger *log.Logger, stderr io.Writer) error {
	tree := opts.tree
	if len(tree.pubkeys) == 0 {
		for _, r := range tree.repos {
			if k := filepath.Join(r, "distri.pub"); !strings.Contains(r, "://") {
				tree.pubkeys = append(tree.pubkeys, k)
			}
		}
		if len(tree.pubkeys) == 0 {
			return cli.Usagef("--pubkey is required for repositories that are not folders")
		}
	}
	if len(tree.imageRepos) == 0 {
		tree.imageRepos = imageRepoURLs(tree.repos)
		if strings.HasPrefix(tree.imageRepos[0], "#") {
			fmt.Fprintf(stderr, "distri-mkimage: warning: the image lists no repository for distri install: --repo %s is a folder of this machine (pass --image-repo URL)\n", strings.Join(tree.repos, ", "))
		}
	}
	ro, err := tree.treeOptions(pkgs, logger)
	if err != nil {
		return err
	}
	return rootfs.Disk(ctx, ro, do)
}

// imageRepoURLs returns what a disk image's repos.d lists by default:
// the --repo URLs. A folder of the machine that makes the image means
// nothing where the image boots, so without any URL it is a comment
// saying so.
func imageRepoURLs(repos []string) []string {
	var urls []string
	for _, r := range repos {
		if strings.Contains(r, "://") {
			urls = append(urls, r)
		}
	}
	if len(urls) == 0 {
		return []string{"# no repository: the image was made from folders (" + strings.Join(repos, ", ") + "); add a URL, e.g. http://10.0.2.2:7080"}
	}
	return urls
}
