#!/bin/sh
# Regenerates the header fixtures: LUKS2 headers that cryptsetup wrote,
# cut to their first 32 KiB (both header copies; the keyslot areas are
# left out). They seed FuzzParseHeader and pin ReadHeader's view of
# cryptsetup's output. Cheap PBKDF settings keep generation quick; the
# fixtures are not meant to be unlocked.
#
# Usage: cd lib/luks/testdata && ./gen.sh
set -eu

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'distri' > "$tmp/key"
printf 'second' > "$tmp/key2"

# fixture NAME [luksFormat options...]
fixture() {
	name=$1
	shift
	truncate -s 20M "$tmp/img"
	cryptsetup luksFormat --type luks2 --batch-mode --key-file "$tmp/key" \
		--uuid 5b1a6f0e-8c1d-4c1e-9a47-0d1c0ffee000 "$@" "$tmp/img"
	if [ "$name" = two-keyslots ]; then
		cryptsetup luksAddKey --batch-mode --key-file "$tmp/key" \
			--pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$tmp/img" "$tmp/key2"
	fi
	head -c 32768 "$tmp/img" > "$name.hdr"
	rm "$tmp/img"
}

fixture pbkdf2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 512
fixture pbkdf2-4096-label --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--sector-size 4096 --label root --subsystem distri
fixture argon2id --pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 \
	--pbkdf-parallel 1
fixture two-keyslots --pbkdf pbkdf2 --pbkdf-force-iterations 1000
