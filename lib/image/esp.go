package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"time"

	"github.com/diskfs/go-diskfs/filesystem"
)

// espFiles returns what goes on the ESP: ESP path → host file or
// contents.
func espFiles(l *Layout, opts DiskOptions) []espFile {
	loader := "default distri.conf\ntimeout 0\nconsole-mode keep\neditor no\n"
	entry := fmt.Sprintf("title distri\nlinux /distri/vmlinuz\ninitrd /distri/initramfs.img\noptions %s\n", l.Cmdline)
	files := []espFile{
		{name: "EFI/BOOT/BOOTX64.EFI", src: opts.SystemdBoot},
		{name: "EFI/systemd/systemd-bootx64.efi", src: opts.SystemdBoot},
		{name: "distri/vmlinuz", src: opts.Kernel},
		{name: "distri/initramfs.img", src: opts.Initramfs},
		{name: "loader/loader.conf", data: []byte(loader)},
		{name: "loader/entries/distri.conf", data: []byte(entry)},
	}
	if opts.BIOS != nil {
		files = append(files, grubConfig(l))
	}
	return files
}

type espFile struct {
	name string
	src  string // host file, or
	data []byte
}

// fillESP copies the boot loader, kernel, initramfs and loader
// configuration into the FAT file system.
func fillESP(fs filesystem.FileSystem, l *Layout, opts DiskOptions) error {
	made := map[string]bool{}
	for _, f := range espFiles(l, opts) {
		dir := path.Dir(f.name)
		if !made[dir] {
			if err := fs.Mkdir("/" + dir); err != nil {
				return fmt.Errorf("ESP mkdir %s: %w", dir, err)
			}
			made[dir] = true
		}
		if err := copyToESP(fs, f); err != nil {
			return fmt.Errorf("ESP write %s: %w", f.name, err)
		}
	}
	if opts.Seed == 0 {
		return nil
	}
	return fixESPTimes(fs, made, espFiles(l, opts))
}

// fixLabelTime sets the time stamps of the volume label entries in the
// FAT32 root directory's first cluster, at espOff in f, to fakeTime:
// go-diskfs's Chtimes does not reach the label entry.
func fixLabelTime(f io.ReaderAt, w io.WriterAt, espOff int64) error {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, espOff); err != nil {
		return err
	}
	bps := int64(binary.LittleEndian.Uint16(bs[11:13]))
	spc := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:16]))
	nfats := int64(bs[16])
	fatSize := int64(binary.LittleEndian.Uint32(bs[36:40]))
	rootCluster := int64(binary.LittleEndian.Uint32(bs[44:48]))
	if bps == 0 || spc == 0 || rootCluster < 2 {
		return fmt.Errorf("ESP: not a FAT32 boot sector")
	}
	off := espOff + (reserved+nfats*fatSize+(rootCluster-2)*spc)*bps
	dir := make([]byte, spc*bps)
	if _, err := f.ReadAt(dir, off); err != nil {
		return err
	}
	t := time.Unix(fakeTime, 0).UTC()
	date := uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	clock := uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xe5 || e[11]&0x0f == 0x0f || e[11]&0x08 == 0 {
			continue // deleted, long name part, or not a label
		}
		e[13] = 0
		binary.LittleEndian.PutUint16(e[14:], clock)
		binary.LittleEndian.PutUint16(e[16:], date)
		binary.LittleEndian.PutUint16(e[18:], date)
		binary.LittleEndian.PutUint16(e[22:], clock)
		binary.LittleEndian.PutUint16(e[24:], date)
	}
	_, err := w.WriteAt(dir, off)
	return err
}

// fixESPTimes sets every directory entry's times to fakeTime: go-diskfs
// stamps entries with the current time (or $SOURCE_DATE_EPOCH, which a
// library must not set for the whole process).
func fixESPTimes(fs filesystem.FileSystem, dirs map[string]bool, files []espFile) error {
	ch, ok := fs.(interface {
		Chtimes(p string, ctime, atime, mtime time.Time) error
	})
	if !ok {
		return fmt.Errorf("ESP: %T cannot set time stamps", fs)
	}
	t := time.Unix(fakeTime, 0).UTC()
	var paths []string
	for d := range dirs {
		for ; d != "."; d = path.Dir(d) {
			paths = append(paths, "/"+d, "/"+d+"/.", "/"+d+"/..")
		}
	}
	for _, f := range files {
		paths = append(paths, "/"+f.name)
	}
	slices.Sort(paths)
	for _, p := range slices.Compact(paths) {
		if err := ch.Chtimes(p, t, t, t); err != nil {
			return fmt.Errorf("ESP set times of %s: %w", p, err)
		}
	}
	return nil
}

func copyToESP(fs filesystem.FileSystem, f espFile) error {
	w, err := fs.OpenFile("/"+f.name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if f.src != "" {
		r, err := os.Open(f.src)
		if err != nil {
			w.Close()
			return err
		}
		defer r.Close()
		// One large write: go-diskfs allocates clusters per write.
		b, err := io.ReadAll(r)
		if err != nil {
			w.Close()
			return err
		}
		f.data = b
	}
	if _, err := w.Write(f.data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
