#!/bin/sh
# gen.sh writes the seed images of FuzzReader and the fixture tests: tiny
# mksquashfs images of one small tree, one per compressor and layout.
# Timestamps and owners are fixed (-mkfs-time, -all-time, -all-root), so
# the same squashfs-tools version writes the same bytes.
#
#   % sh lib/squashfs/testdata/gen.sh   # needs mksquashfs (squashfs-tools 4.5) and python3
set -eu
cd "$(dirname "$0")"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
chmod 755 "$src"

mkdir -p "$src/dir/sub" "$src/empty"
printf 'hello, squashfs\n' >"$src/hello"
seq 1 1200 >"$src/dir/numbers" # 4.8 KiB: a block and a tail with -b 4096
python3 - "$src" <<'PY'
import os, sys
src = sys.argv[1]
# Poorly compressible, so the compressor stores some blocks uncompressed.
x, b = 12345, bytearray()
for _ in range(1500):
    x = (x * 1103515245 + 12345) & 0x7fffffff
    b.append(x >> 16 & 0xff)
open(os.path.join(src, "dir/random"), "wb").write(b)
# Sparse: a hole of whole blocks between data.
with open(os.path.join(src, "sparse"), "wb") as f:
    f.write(b"start")
    f.seek(3 * 4096)
    f.write(b"middle")
    f.truncate(6 * 4096 + 10)
os.setxattr(os.path.join(src, "hello"), "user.greeting", b"hi")
os.setxattr(os.path.join(src, "hello"), "user.big", b"v" * 300)
os.setxattr(os.path.join(src, "dir"), "user.dir", b"d")
os.setxattr(os.path.join(src, "dir/numbers"), "user.big", b"v" * 300)  # shared: stored out of line
PY
ln -s hello "$src/link"
ln -s ../../hello "$src/dir/sub/up"
ln "$src/hello" "$src/dir/hardlink"
chmod 4755 "$src/dir/numbers"
chmod 1777 "$src/empty"
pseudo="-p 'chr c 644 0 0 1 3' -p 'blk b 600 0 0 8 1' -p 'fifo i 644 0 0 f' -p 'sock i 755 0 0 s'"

mk() {
	out=$1
	shift
	rm -f "$out"
	eval mksquashfs "$src" "$out" -noappend -quiet -no-progress -nopad -b 4096 \
		-mkfs-time 1700000000 -all-time 1700000000 -all-root "$pseudo" "$@" >/dev/null
}
mk gzip.sqfs -comp gzip -Xcompression-level 1 # non-default level: compressor options
mk xz.sqfs -comp xz -b 16384 -Xdict-size 8K
mk zstd.sqfs -comp zstd
mk lz4.sqfs -comp lz4
mk none.sqfs -noI -noD -noF -noX
mk nofrag.sqfs -comp zstd -no-fragments
mk allfrag.sqfs -comp gzip -always-use-fragments

# A directory of 600 entries: its listing spans metadata blocks, so the
# directory gets an index. Empty files keep the image small.
rm -rf "$src" && mkdir -m 755 -p "$src/many"
i=0
while [ $i -lt 600 ]; do
	: >"$src/many/entry-with-a-longish-name-$i"
	i=$((i + 1))
done
pseudo=""
mk dirindex.sqfs -comp xz
ls -l *.sqfs
