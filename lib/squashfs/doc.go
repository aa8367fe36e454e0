// Package squashfs writes and reads SquashFS 4.0 images, the format of
// every distri package.
//
// # Writer
//
// The writer turns a directory tree into an image that the Linux kernel
// mounts and squashfs-tools read. Output is deterministic: the same tree
// gives byte-identical images. Data is stored uncompressed by default
// (distri compresses on the wire, so a read never decompresses); zstd and
// gzip are available on request.
//
// # Reader
//
// The reader gives random access suited to a FUSE server: look up by
// inode, read directories from an offset, ReadAt on file data, readlink
// and xattrs. It reads images written by mksquashfs with gzip, xz, zstd,
// lz4 or no compression. A corrupt or truncated image yields an error,
// never a panic or a hang.
//
// # Not supported
//
// LZO and legacy LZMA compression (the reader reports them), and
// SquashFS versions before 4.0.
package squashfs
