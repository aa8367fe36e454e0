# distri: build, test and benchmark the suite.
#
#   make            the main job: install what is needed, build every binary into bin/
#   make test       every test tier the machine can run (CI runs this, as root)
#   make bench      benchmarks beside their peers, printed as tables
#   make deps       install the Debian packages the tests and the main job use (root, apt-get)
#
# Go is taken from $PATH, else from /usr/local/go.

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN := bin
CMDS := distri distri-build distri-install distri-fuse distri-mkimage distri-init distri-mirror

# Debian packages: squashfs-tools and squashfuse are the peers of
# lib/squashfs; fuse3 gives fusermount3; util-linux mounts loop devices;
# minisign and nginx are the peers of distri-mirror, cryptsetup of lib/luks;
# qemu boots the initramfs and images, kmod (depmod) builds module trees,
# fdisk, cpio and e2fsprogs make and check disks and archives.
DEBS := squashfs-tools squashfuse fuse3 util-linux xz-utils zstd lz4 minisign nginx-light cryptsetup-bin \
	qemu-system-x86 qemu-utils ovmf kmod fdisk cpio e2fsprogs

# The benchmarks' peers: Debian's initramfs generators, and apt/dpkg
# installing into a debootstrap'ed chroot from a loopback repository.
BENCH_DEBS := initramfs-tools-core dracut-core debootstrap dpkg-dev apt-utils curl

# How long CI fuzzes the SquashFS reader.
FUZZTIME ?= 30s

.PHONY: all build test deps bench-deps install-debs bench generate clean

all: deps build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ $(addprefix ./,$(CMDS))
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
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./lib/squashfs

bench: bench-deps
	$(GO) run ./bench

generate:
	$(GO) generate ./lib/pb

clean:
	rm -rf $(BIN)
