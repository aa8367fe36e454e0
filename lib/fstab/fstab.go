// Package fstab reads /etc/fstab (fstab(5)) and mounts its entries, as
// mount -a and swapon -a do, for distri-init as PID 1 of the booted
// system. No mount(8), libmount or udev is involved: devices named by
// UUID=, LABEL=, PARTUUID= or PARTLABEL= are found by reading
// superblocks and partition tables (lib/blkid), and options become
// mount(2) flags and a data string here.
package fstab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry is one line of an fstab.
type Entry struct {
	// Line is the line number, from 1.
	Line int
	// Spec is the first field (fs_spec) with octal escapes undone:
	// "UUID=…", "LABEL=…", "PARTUUID=…", "PARTLABEL=…", "/dev/vdb",
	// or a name for file systems without a device ("tmpfs", "proc").
	Spec string
	// File is the mount point (fs_file), an absolute path; "none" (or
	// "swap") for swap.
	File string
	// Type is the file system type (fs_vfstype): "ext4", "tmpfs",
	// "swap", "auto" (probe the device), or a comma-separated list to
	// try in order.
	Type string
	// Options are the options as written (fs_mntops), "defaults" if the
	// field is missing.
	Options string
	// Freq and PassNo are the dump and fsck fields; nothing uses them.
	Freq, PassNo int
	// Mount is what Options mean.
	Mount Mount
}

// Swap reports whether e is a swap area.
func (e Entry) Swap() bool { return e.Type == "swap" }

// Mount is what the options of an entry mean: what mount(2) or
// swapon(2) takes and what only this package looks at.
type Mount struct {
	// Flags are mount(2)'s MS_* flags (ro, nosuid, noatime, bind, …).
	Flags uintptr
	// Data is the comma-separated rest, for the file system driver
	// (e.g. "size=1m,mode=0700", "errors=remount-ro").
	Data string
	// NoAuto entries are not mounted at boot.
	NoAuto bool
	// NoFail entries may fail quietly: a missing device is no error.
	NoFail bool
	// SwapFlags are swapon(2)'s flags (pri=, discard) of a swap entry.
	SwapFlags int
}

// swapon(2) flags (linux/swap.h).
const (
	swapFlagPrefer       = 0x8000
	swapFlagPrioMask     = 0x7fff
	swapFlagDiscard      = 0x10000
	swapFlagDiscardOnce  = 0x20000
	swapFlagDiscardPages = 0x40000
)

// flagOptions map an option to the flags it sets and clears, as
// libmount does. "defaults" (rw,suid,dev,exec,auto,nouser,async) sets
// nothing.
var flagOptions = map[string]struct{ set, clear uintptr }{
	"defaults":      {},
	"ro":            {unix.MS_RDONLY, 0},
	"rw":            {0, unix.MS_RDONLY},
	"nosuid":        {unix.MS_NOSUID, 0},
	"suid":          {0, unix.MS_NOSUID},
	"nodev":         {unix.MS_NODEV, 0},
	"dev":           {0, unix.MS_NODEV},
	"noexec":        {unix.MS_NOEXEC, 0},
	"exec":          {0, unix.MS_NOEXEC},
	"sync":          {unix.MS_SYNCHRONOUS, 0},
	"async":         {0, unix.MS_SYNCHRONOUS},
	"dirsync":       {unix.MS_DIRSYNC, 0},
	"noatime":       {unix.MS_NOATIME, 0},
	"atime":         {0, unix.MS_NOATIME},
	"nodiratime":    {unix.MS_NODIRATIME, 0},
	"diratime":      {0, unix.MS_NODIRATIME},
	"relatime":      {unix.MS_RELATIME, 0},
	"norelatime":    {0, unix.MS_RELATIME},
	"strictatime":   {unix.MS_STRICTATIME, 0},
	"nostrictatime": {0, unix.MS_STRICTATIME},
	"lazytime":      {unix.MS_LAZYTIME, 0},
	"nolazytime":    {0, unix.MS_LAZYTIME},
	"mand":          {unix.MS_MANDLOCK, 0},
	"nomand":        {0, unix.MS_MANDLOCK},
	"silent":        {unix.MS_SILENT, 0},
	"loud":          {0, unix.MS_SILENT},
	"nosymfollow":   {unix.MS_NOSYMFOLLOW, 0},
	"bind":          {unix.MS_BIND, 0},
	"rbind":         {unix.MS_BIND | unix.MS_REC, 0},
	// Options for mount(8) run by users imply the safe flags.
	"user":   {unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, 0},
	"users":  {unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, 0},
	"owner":  {unix.MS_NOSUID | unix.MS_NODEV, 0},
	"group":  {unix.MS_NOSUID | unix.MS_NODEV, 0},
	"nouser": {},
	// Options of other programs (fsck, network mounts, systemd).
	"auto":           {},
	"_netdev":        {},
	"nobootwait":     {},
	"x-initrd.mount": {},
}

// ParseOptions splits the options of an entry of type fstype. Unknown
// options go to Data for the file system driver; x-* and comment=
// options (for other programs) are dropped.
func ParseOptions(opts, fstype string) (Mount, error) {
	var o Mount
	var data []string
	for opt := range strings.SplitSeq(opts, ",") {
		name, val, hasVal := strings.Cut(opt, "=")
		if f, ok := flagOptions[opt]; ok {
			o.Flags = o.Flags&^f.clear | f.set
			continue
		}
		switch {
		case opt == "":
		case opt == "noauto":
			o.NoAuto = true
		case opt == "nofail":
			o.NoFail = true
		case strings.HasPrefix(opt, "x-"), name == "comment":
		case name == "loop", name == "offset", name == "sizelimit":
			return o, fmt.Errorf("option %s: loop devices are not supported (mount the device itself)", opt)
		case fstype == "swap" && opt == "sw":
		case fstype == "swap" && name == "pri":
			pri, err := strconv.Atoi(val)
			if err != nil || !hasVal || pri < 0 || pri > swapFlagPrioMask {
				return o, fmt.Errorf("option %s: want a priority from 0 to %d", opt, swapFlagPrioMask)
			}
			o.SwapFlags |= swapFlagPrefer | pri
		case fstype == "swap" && name == "discard":
			switch val {
			case "":
				o.SwapFlags |= swapFlagDiscard
			case "once":
				o.SwapFlags |= swapFlagDiscard | swapFlagDiscardOnce
			case "pages":
				o.SwapFlags |= swapFlagDiscard | swapFlagDiscardPages
			default:
				return o, fmt.Errorf("option %s: want discard, discard=once or discard=pages", opt)
			}
		default:
			data = append(data, opt)
		}
	}
	o.Data = strings.Join(data, ",")
	return o, nil
}

// LineError is a line of an fstab that could not be parsed.
type LineError struct {
	Name string // the file, e.g. "/etc/fstab"
	Line int    // from 1
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// Parse reads the fstab r, named name in errors. It returns the entries
// of every good line and a *LineError for each bad one (joined), so a
// caller can mount what it can.
func Parse(r io.Reader, name string) ([]Entry, error) {
	var entries []Entry
	var errs []error
	s := bufio.NewScanner(r)
	n := 0
	for s.Scan() {
		n++
		e, err := parseLine(s.Text())
		if err != nil {
			errs = append(errs, &LineError{Name: name, Line: n, Err: err})
			continue
		}
		if e == nil {
			continue
		}
		e.Line = n
		entries = append(entries, *e)
	}
	if err := s.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", name, err))
	}
	return entries, errors.Join(errs...)
}

// parseLine parses one line; nil for blank lines and comments.
func parseLine(l string) (*Entry, error) {
	f := strings.Fields(l)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return nil, nil
	}
	if len(f) < 3 || len(f) > 6 {
		return nil, fmt.Errorf("want 3 to 6 fields (spec, mount point, type, options, dump, pass), got %d", len(f))
	}
	for i := range f {
		var err error
		if f[i], err = unescape(f[i]); err != nil {
			return nil, err
		}
	}
	e := &Entry{Spec: f[0], File: f[1], Type: f[2], Options: "defaults"}
	if len(f) > 3 {
		e.Options = f[3]
	}
	for i, p := range []*int{&e.Freq, &e.PassNo} {
		if len(f) <= 4+i {
			break
		}
		v, err := strconv.Atoi(f[4+i])
		if err != nil || v < 0 {
			return nil, fmt.Errorf("field %d (%s): want a number, got %q", 5+i, []string{"dump", "pass"}[i], f[4+i])
		}
		*p = v
	}
	if e.Swap() {
		if e.File != "none" && e.File != "swap" && !path.IsAbs(e.File) {
			return nil, fmt.Errorf("swap mount point %q: want none", e.File)
		}
	} else if !path.IsAbs(e.File) {
		return nil, fmt.Errorf("mount point %q is not an absolute path", e.File)
	}
	var err error
	if e.Mount, err = ParseOptions(e.Options, e.Type); err != nil {
		return nil, err
	}
	return e, nil
}

// unescape undoes fstab's octal escapes: \040 for a space, \011 for a
// tab, \012 for a newline, \134 for a backslash, \043 for '#'.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("%q: incomplete escape at byte %d (want \\ and 3 octal digits)", s, i)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("%q: bad escape %q (want \\ and 3 octal digits, e.g. \\040)", s, s[i:i+4])
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}
