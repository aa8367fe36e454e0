# distri: build, test and benchmark the suite.
#
#   make            the main job: install what is needed, build every binary into bin/,
#                   build the packages of pkgs/ into a signed repo/, make distri-disk.img
#   make test       every test tier the machine can run (CI runs this, as root)
#   make bench      benchmarks beside their peers, printed as tables
#   make deps       install the Debian packages the tests and the main job use (root, apt-get)
#   make man        man pages for every binary and subcommand into man/man1
#
# Go is taken from $PATH, else from /usr/local/go.

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN := bin
CMDS := distri distri-build distri-install distri-fuse distri-mkimage distri-init distri-mirror

# Debian packages: squashfs-tools and squashfuse are the peers of
# lib/squashfs; fuse3 gives fusermount3; util-linux mounts loop devices;
# minisign and nginx are the peers of distri-mirror, cryptsetup of lib/luks;
# qemu boots the initramfs and images, kmod (depmod) builds module trees,
# fdisk, cpio and e2fsprogs make and check disks and archives; grub-pc-bin
# and grub-common (grub-mkimage) make disk images boot with a legacy BIOS;
# patch applies recipes' cherry_picks (pkgs/gnu-make); aria2 (a BitTorrent
# client) downloads a release's images from their torrents' web seeds and
# chromium (headless) renders its pages and the repository's
# (lib/release, lib/mirror; chromium is about 100 MB to install).
DEBS := squashfs-tools squashfuse fuse3 util-linux xz-utils zstd lz4 minisign nginx-light cryptsetup-bin \
	qemu-system-x86 qemu-utils ovmf kmod fdisk cpio e2fsprogs grub-pc-bin grub-common patch aria2 chromium

# The benchmarks' peers: Debian's initramfs generators, apt/dpkg
# installing into a debootstrap'ed chroot from a loopback repository,
# mkfs.fat and mtools assembling a disk image's ESP, and gcc 12 and make
# building zstd on the host.
BENCH_DEBS := initramfs-tools-core dracut-core debootstrap dpkg-dev apt-utils curl dosfstools mtools gcc-12 make

# The fuzz targets (README.md, Tests), package:FuzzName: every
# parser of untrusted input. `make test` runs each for FUZZTIME, one
# after the other; minimizing a new input stops after FUZZMINIMIZETIME
# (the SquashFS and LUKS inputs are large: the default 60 s would eat the
# budget). E.g. make fuzz FUZZTIME=5m FUZZ_TARGETS=lib/luks:FuzzUnlock
FUZZTIME ?= 6s
FUZZMINIMIZETIME ?= 2s
FUZZ_TARGETS ?= lib/squashfs:FuzzReader lib/luks:FuzzParseHeader lib/luks:FuzzUnlock lib/repo:FuzzRepoIndex \
	lib/pb:FuzzIndex lib/pb:FuzzUnmarshalText lib/recipe:FuzzCheck \
	lib/minisign:FuzzParseKey lib/minisign:FuzzVerify lib/netconf:FuzzUnmarshal \
	lib/initconfig:FuzzParseCmdline lib/fstab:FuzzParse lib/blkid:FuzzProbe lib/blockdev:FuzzScan \
	lib/kmod:FuzzReadModinfo lib/kmod:FuzzReadIndex lib/kmod:FuzzMatch lib/elfdeps:FuzzRead lib/elfdeps:FuzzPkgConfigRequires \
	lib/earlyinit:FuzzParseUevent lib/internal/mountinfo:FuzzParse lib/repo:FuzzParseStamp lib/torrent:FuzzParse \
	lib/build:FuzzScanMaintScripts lib/sysusers:FuzzApply

.PHONY: all build test fuzz deps bench-deps install-debs bench generate clean man

all: deps build repo image

# VERSION is what every binary's --version says (lib/cli): the tag of
# HEAD, else 0.<commits>+<hash>, as the distri package is versioned.
VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null || echo 0.$$(git rev-list --count HEAD 2>/dev/null || echo 0)+$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown))

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -X distri.dev/distri/lib/cli.version=$(VERSION)' -o $(BIN)/ $(addprefix ./,$(CMDS))
	@echo "built $(addprefix $(BIN)/,$(CMDS))" >&2

deps:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEBS)"

bench-deps:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEBS) $(BENCH_DEBS)"

# install-debs installs those of $(PKGS) that are missing.
install-debs:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing >&2; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >&2; \
	fi

test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:" $$unformatted >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) build ./...
	GOARCH=arm64 $(GO) build ./...
	$(GO) test -count=1 -timeout 40m ./...
	@$(MAKE) --no-print-directory fuzz

fuzz:
	@out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for t in $(FUZZ_TARGETS); do pkg=$${t%%:*} fn=$${t##*:}; \
		echo "== $$fn ./$$pkg" >&2; \
		$(GO) test -count=1 -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg >$$out 2>&1; \
		rc=$$?; grep -v '^fuzz: elapsed' $$out; [ $$rc = 0 ] && continue; \
		if grep -q '^    context deadline exceeded$$' $$out && ! grep -q 'Failing input written' $$out; then \
			echo "$$fn: the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input: not a failure" >&2; continue; \
		fi; exit 1; \
	done

bench: bench-deps
	$(GO) run ./bench

generate:
	$(GO) generate ./lib/pb

# make man writes a man page for every binary and subcommand into
# MANDIR (each binary's hidden __man command: cobra's doc generator over
# its --help texts), dated by the last commit. make repo packs them into
# the distri package as share/man/man1 (/ro/share/man/man1). distri goes
# first: its pages for "distri build", "distri install", … have the
# binaries' names, and the binaries' own pages replace them.
MANDIR ?= man/man1
man: build
	@mkdir -p $(MANDIR)
	for c in $(CMDS); do SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) $(BIN)/$$c __man $(MANDIR) >/dev/null || exit 1; done
	@echo "wrote $$(ls $(MANDIR) | wc -l) man pages into $(MANDIR)" >&2

clean:
	rm -rf $(BIN)

# Images, as the distri README uses them (distri-mkimage, docs/image.md).
# DISKIMG selects the disk image file. IMAGE_REPO is the signed repository
# the images install IMAGE_PKGS (the base system) and their closures from;
# `make repo` builds it: this suite packed from bin/ as the package
# distri (first: pkgs/base depends on it), every recipe of pkgs/
# (distri-build batch; a recipe that fails is reported and does not stop
# the image), indexed and signed with IMAGE_KEY.key (made on first use,
# never committed).
#
#   make repo                                  (re)build IMAGE_REPO, only what is stale
#   make image DISKIMG=/tmp/distri-disk.img   UEFI disk image: systemd-boot, ext4 root (serial=1: console on ttyS0 only)
#   make cryptimage                            the same, root in LUKS2 (passphrase in $(DISKIMG).passphrase, default "peace")
#   make serve                                 serve IMAGE_REPO over HTTP on 127.0.0.1:7080 (Ctrl-c stops)
#   make qemu-serial DISKIMG=…                 boot it on the serial console (Ctrl-a x quits); ssh on localhost:5555
#   make qemu-graphic DISKIMG=…                boot it with a display
#   make gceimage vboximage qcow2image         convert DISKIMG (made first if missing)
#   make dockertar lxdimage                    container images of the root tree
#   make release RELEASE_URL=…                 publish RELEASE_DIR/img (docs/release.md)
DISKIMG ?= distri-disk.img
IMAGE_REPO ?= $(CURDIR)/repo
IMAGE_PUBKEY ?= $(IMAGE_REPO)/distri.pub
IMAGE_KEY ?= distri-repo-key
# The repository the images' etc/distri/repos.d lists, for `distri
# install` in the running system: `make serve` on the host, as QEMU's user
# network shows it to the guest (10.0.2.2 is the host's loopback there).
# For an image that boots elsewhere, name a mirror it can reach.
SERVE_ADDR ?= 127.0.0.1:7080
IMAGE_URL ?= http://10.0.2.2:$(lastword $(subst :, ,$(SERVE_ADDR)))
# The base system, the meta-package pkgs/base: kernel (Debian's cloud
# kernel with its modules), boot loader, glibc and its headers, shells,
# core tools, login, and this suite (the tour installs it too).
IMAGE_PKGS ?= base
IMAGE_ROOT ?= /tmp/distri-root
IMAGE_SIZE ?= 8G
BATCH_JOBS ?= 2
DISTRI_PKG ?= distri-amd64-0.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)-1
PASSPHRASE_FILE ?= $(DISKIMG).passphrase
GCEIMG ?= distri-gce.tar.gz
VDIIMG ?= distri.vdi
QCOW2IMG ?= distri.qcow2
DOCKERTAR ?= distri-docker.tar
LXDPREFIX ?= distri-lxd
OVMF_CODE ?= /usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS ?= /usr/share/OVMF/OVMF_VARS_4M.fd
MKIMAGE = $(BIN)/distri-mkimage
DISKFLAGS = -v -o $(DISKIMG) --size $(IMAGE_SIZE) $(if $(serial),--serial) \
	--repo $(IMAGE_REPO) --pubkey $(IMAGE_PUBKEY) --image-repo $(IMAGE_URL) $(IMAGE_PKGS)
# UEFI (OVMF) with a per-image copy of the variable store; virtio disk,
# user networking with ssh forwarded. TCG by default: where /dev/kvm
# exists but cannot run OVMF (nested virtualization, as on the development
# VM: "KVM internal error"), accel=kvm:tcg would not fall back. On a host
# with working KVM: make qemu-serial QEMU_ACCEL=kvm.
QEMU_ACCEL ?= tcg
QEMU = qemu-system-x86_64 -machine q35,accel=$(QEMU_ACCEL) -cpu max -m 2048 -smp 2 \
	-drive if=pflash,format=raw,unit=0,readonly=on,file=$(OVMF_CODE) \
	-drive if=pflash,format=raw,unit=1,file=$(DISKIMG).vars \
	-drive file=$(DISKIMG),if=virtio,format=raw \
	-nic user,model=virtio-net-pci,hostfwd=tcp::5555-:22 \
	-device virtio-rng-pci

.PHONY: repo serve imageroot image cryptimage qemu-serial qemu-graphic ovmf-vars gceimage vboximage qcow2image dockertar lxdimage

imageroot: build
	rm -rf $(IMAGE_ROOT)
	$(MKIMAGE) root -v --repo $(IMAGE_REPO) --pubkey $(IMAGE_PUBKEY) -o $(IMAGE_ROOT) $(IMAGE_PKGS)

repo: build
	rm -rf $(IMAGE_REPO)/.distri && mkdir -p $(IMAGE_REPO)/.distri/out/bin $(IMAGE_REPO)/.distri/bin
	cp $(addprefix $(BIN)/,$(CMDS)) $(IMAGE_REPO)/.distri/out/bin/
	for c in $(CMDS); do ln -s ../out/bin/$$c $(IMAGE_REPO)/.distri/bin/$$c; done
	$(MAKE) --no-print-directory man MANDIR=$(IMAGE_REPO)/.distri/out/share/man/man1
	$(BIN)/distri-build pack --name $(DISTRI_PKG) $(IMAGE_REPO)/.distri -o $(IMAGE_REPO)/pkg
	rm -rf $(IMAGE_REPO)/.distri
	@echo "building pkgs/ into $(IMAGE_REPO) (logs: $(IMAGE_REPO)/log/batch/)" >&2
	$(BIN)/distri-build batch --repo $(IMAGE_REPO) --jobs $(BATCH_JOBS) --keep-going --log-dir $(IMAGE_REPO)/log/batch pkgs >/dev/null || \
		echo "some recipes failed (see above); the image needs only $(IMAGE_PKGS) and their closures" >&2
	[ -f $(IMAGE_KEY).key ] || $(BIN)/distri-mirror keygen -o $(IMAGE_KEY)
	cp $(IMAGE_KEY).pub $(IMAGE_PUBKEY)
	$(BIN)/distri-mirror index --key $(IMAGE_KEY).key $(IMAGE_REPO)

serve: build
	$(BIN)/distri-mirror serve --listen $(SERVE_ADDR) $(IMAGE_REPO)

image: build
	$(MKIMAGE) disk $(DISKFLAGS)

cryptimage: build
	[ -f $(PASSPHRASE_FILE) ] || echo peace > $(PASSPHRASE_FILE)
	$(MKIMAGE) disk $(DISKFLAGS) --encrypt --passphrase-file $(PASSPHRASE_FILE)

ovmf-vars:
	[ -f $(DISKIMG).vars ] || cp $(OVMF_VARS) $(DISKIMG).vars

qemu-serial: ovmf-vars
	$(QEMU) -nographic

qemu-graphic: ovmf-vars
	$(QEMU) -vga virtio

gceimage:
	[ -f $(DISKIMG) ] || $(MAKE) image
	$(MKIMAGE) gce -o $(GCEIMG) $(DISKIMG)

vboximage:
	[ -f $(DISKIMG) ] || $(MAKE) image
	$(MKIMAGE) vdi $(DISKIMG) -o $(VDIIMG)

qcow2image:
	[ -f $(DISKIMG) ] || $(MAKE) image
	$(MKIMAGE) qcow2 $(DISKIMG) -o $(QCOW2IMG)

dockertar: imageroot
	$(MKIMAGE) docker --root $(IMAGE_ROOT) -o $(DOCKERTAR)

lxdimage: imageroot
	$(MKIMAGE) lxd --root $(IMAGE_ROOT) -o $(LXDPREFIX)

# A release as the distri README offers one (docs/release.md): in
# RELEASE_DIR/img the two disk images and the container tar compressed
# with zstd, the GCE image, a torrent per disk image whose web seed is
# RELEASE_URL (the URL RELEASE_DIR is served at; required), a README and
# index.html with the magnet links, SHA256SUMS signed with IMAGE_KEY. Run
# it after the main job; images and tars that are missing are made first.
#   make release RELEASE_URL=https://mirror.example/distri/
RELEASE_DIR ?= release
RELEASE_URL ?=
RELEASE_TRACKERS ?= udp://tracker.opentrackr.org:1337/announce
SERIALIMG ?= distri-qemu-serial.img
# What release runs first; tests set RELEASE_DEPS= and BIN to what they built.
RELEASE_DEPS ?= build

.PHONY: release

release: $(RELEASE_DEPS)
	@[ -n "$(RELEASE_URL)" ] || { echo "make release: set RELEASE_URL to the URL $(RELEASE_DIR)/ is served at" >&2; exit 2; }
	[ -f $(DISKIMG) ] || $(MAKE) image
	[ -f $(SERIALIMG) ] || $(MAKE) image DISKIMG=$(SERIALIMG) serial=1
	[ -f $(DOCKERTAR) ] || $(MAKE) dockertar
	[ -f $(GCEIMG) ] || $(MAKE) gceimage
	$(BIN)/distri-mirror release -v --key $(IMAGE_KEY).key --url '$(RELEASE_URL)' -o $(RELEASE_DIR) \
		$(addprefix --tracker ,$(RELEASE_TRACKERS)) \
		--image '$(DISKIMG)=UEFI disk image, console on screen (make qemu-graphic)' \
		--image '$(SERIALIMG)=UEFI disk image, console on ttyS0 only (make qemu-serial)' \
		--compress '$(DOCKERTAR)=root tree for docker import' \
		--file '$(GCEIMG)=Google Compute Engine image (gcloud compute images create)'
