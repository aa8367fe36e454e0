package luks

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Encrypt writes a LUKS2 container to dst: a header as Format writes it,
// followed by the data segment holding src (e.g. an ext4 image) encrypted
// with aes-xts-plain64, in parallel across CPU cores. The last sector is
// padded with zeros. dst, if a new file, ends up DataOffset plus the
// padded image size long.
func Encrypt(dst io.WriterAt, src io.Reader, passphrase []byte, opts FormatOptions) (*Volume, error) {
	v, err := Format(dst, passphrase, opts)
	if err != nil {
		return nil, err
	}
	if _, err := v.EncryptFrom(dst, src); err != nil {
		clear(v.Key)
		return nil, err
	}
	return v, nil
}

// cipher returns the sector cipher of the data segment.
func (v *Volume) cipher() (*xtsCipher, error) {
	return newCipherSpec(v.Segment.Encryption, v.Key)
}

// sector returns the IV of the sector at byte off of the segment, as
// dm-crypt computes it for LUKS2: the number of 512-byte sectors from the
// segment start plus iv_tweak, whatever the sector size.
func (v *Volume) sector(off int64) uint64 {
	return uint64(off)/512 + v.Segment.IVTweak
}

// extent returns the size of the data segment on a device of devSize
// bytes.
func (v *Volume) extent(devSize int64) (int64, error) {
	s := v.Segment
	if devSize < s.Offset {
		return 0, fmt.Errorf("device of %d bytes ends before the data segment at %d", devSize, s.Offset)
	}
	if s.Size < 0 {
		n := devSize - s.Offset
		return n - n%int64(s.SectorSize), nil
	}
	if s.Size > devSize-s.Offset {
		return 0, fmt.Errorf("device of %d bytes ends inside the data segment [%d, +%d)", devSize, s.Offset, s.Size)
	}
	return s.Size, nil
}

// EncryptFrom encrypts src into the data segment on dst, starting at its
// first sector, and returns the number of bytes written (src's size rounded
// up to whole sectors).
func (v *Volume) EncryptFrom(dst io.WriterAt, src io.Reader) (int64, error) {
	c, err := v.cipher()
	if err != nil {
		return 0, fmt.Errorf("encrypt: %w", err)
	}
	ss := v.Segment.SectorSize
	var pos int64
	next := func(ch *chunk) (bool, error) {
		n, err := io.ReadFull(src, ch.buf)
		more := err == nil
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return false, err
		}
		padded := (n + ss - 1) / ss * ss
		clear(ch.buf[n:padded])
		ch.buf, ch.off = ch.buf[:padded], pos
		pos += int64(padded)
		if v.Segment.Size >= 0 && pos > v.Segment.Size {
			return false, fmt.Errorf("input larger than the data segment (%d bytes)", v.Segment.Size)
		}
		return more, nil
	}
	work := func(ch *chunk) error {
		c.crypt(ch.buf, ch.buf, v.sector(ch.off), ss, false)
		_, err := dst.WriteAt(ch.buf, v.Segment.Offset+ch.off)
		return err
	}
	if err := pipeline(next, work, nil); err != nil {
		return 0, fmt.Errorf("encrypt: %w", err)
	}
	return pos, nil
}

// DecryptTo writes the decrypted data segment of the device dev, which is
// devSize bytes long, to dst, and returns the number of bytes written.
func (v *Volume) DecryptTo(dst io.Writer, dev io.ReaderAt, devSize int64) (int64, error) {
	c, err := v.cipher()
	if err != nil {
		return 0, fmt.Errorf("decrypt: %w", err)
	}
	size, err := v.extent(devSize)
	if err != nil {
		return 0, fmt.Errorf("decrypt: %w", err)
	}
	var pos, written int64
	next := func(ch *chunk) (bool, error) {
		n := min(int64(len(ch.buf)), size-pos)
		ch.buf, ch.off = ch.buf[:n], pos
		pos += n
		return pos < size, nil
	}
	work := func(ch *chunk) error {
		if n, err := dev.ReadAt(ch.buf, v.Segment.Offset+ch.off); n < len(ch.buf) {
			return err
		}
		c.crypt(ch.buf, ch.buf, v.sector(ch.off), v.Segment.SectorSize, true)
		return nil
	}
	emit := func(ch *chunk) error {
		n, err := dst.Write(ch.buf)
		written += int64(n)
		return err
	}
	if err := pipeline(next, work, emit); err != nil {
		return written, fmt.Errorf("decrypt: %w", err)
	}
	return written, nil
}

// NewReader returns a reader of the decrypted data segment of the device
// dev, which is devSize bytes long. It decrypts on demand, sector by
// sector, and is safe for concurrent ReadAt calls if dev is.
func (v *Volume) NewReader(dev io.ReaderAt, devSize int64) (*io.SectionReader, error) {
	c, err := v.cipher()
	if err != nil {
		return nil, fmt.Errorf("new reader: %w", err)
	}
	size, err := v.extent(devSize)
	if err != nil {
		return nil, fmt.Errorf("new reader: %w", err)
	}
	return io.NewSectionReader(&segmentReader{v: v, c: c, dev: dev, size: size}, 0, size), nil
}

type segmentReader struct {
	v    *Volume
	c    *xtsCipher
	dev  io.ReaderAt
	size int64
}

func (r *segmentReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	ss := int64(r.v.Segment.SectorSize)
	end := min(off+int64(len(p)), r.size)
	start := off / ss * ss
	alignedEnd := (end + ss - 1) / ss * ss
	buf := make([]byte, alignedEnd-start)
	if n, err := r.dev.ReadAt(buf, r.v.Segment.Offset+start); n < len(buf) {
		return 0, err
	}
	r.c.crypt(buf, buf, r.v.sector(start), int(ss), true)
	n := copy(p, buf[off-start:end-start])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// DMCrypt is what the device-mapper "crypt" target needs to map a data
// segment, in the units of the dm-crypt table
// (https://docs.kernel.org/admin-guide/device-mapper/dm-crypt.html).
type DMCrypt struct {
	// Cipher is the dm-crypt cipher spec, "aes-xts-plain64".
	Cipher string
	// Key is the volume key; the table carries it hex-encoded.
	Key []byte
	// IVOffset is added to the sector number before computing the IV, in
	// 512-byte sectors; usually 0.
	IVOffset uint64
	// Offset is the start of the data segment on the device, in 512-byte
	// sectors, e.g. 32768 for 16 MiB.
	Offset uint64
	// Length is the size of the mapping in 512-byte sectors.
	Length uint64
	// SectorSize is the encryption sector size in bytes, e.g. 512 or 4096.
	SectorSize int
}

// DMCrypt returns the dm-crypt mapping of the data segment on a device of
// deviceSize bytes.
func (v *Volume) DMCrypt(deviceSize int64) (DMCrypt, error) {
	size, err := v.extent(deviceSize)
	if err != nil {
		return DMCrypt{}, fmt.Errorf("dm-crypt: %w", err)
	}
	return DMCrypt{
		Cipher:     v.Segment.Encryption,
		Key:        v.Key,
		IVOffset:   v.Segment.IVTweak,
		Offset:     uint64(v.Segment.Offset) / 512,
		Length:     uint64(size) / 512,
		SectorSize: v.Segment.SectorSize,
	}, nil
}

// Params returns the parameters of the crypt target for a table line
// "0 <Length> crypt <Params>", with device the backing device as a path or
// "major:minor". E.g. "aes-xts-plain64 <hex key> 0 /dev/vda2 32768" or,
// for 4096-byte sectors, the same plus " 1 sector_size:4096". LUKS2 counts
// IVs in 512-byte units, so there is no iv_large_sectors. The result
// contains the key.
func (d DMCrypt) Params(device string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d %s %d", d.Cipher, hex.EncodeToString(d.Key), d.IVOffset, device, d.Offset)
	if d.SectorSize != 512 {
		fmt.Fprintf(&b, " 1 sector_size:%d", d.SectorSize)
	}
	return b.String()
}
