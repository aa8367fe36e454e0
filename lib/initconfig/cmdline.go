package initconfig

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout is how long distri-init waits for the root (and LUKS)
// devices to appear when the command line has no rd.timeout=.
const DefaultTimeout = 30 * time.Second

// Cmdline is what distri-init takes from the kernel command line. Every
// parameter it honours is a field here; others are ignored.
type Cmdline struct {
	// Root is root=: which device holds the root file system. Empty
	// means the one LUKS volume named by rd.luks.*, if there is one.
	Root Device
	// RootFSType is rootfstype=, e.g. "ext4". Empty means the type
	// found in the device's superblock.
	RootFSType string
	// RootFlags is rootflags=, mount data, e.g. "data=journal".
	RootFlags string
	// ReadOnly is true with "ro". Without "ro", the root is mounted
	// read-write ("rw"): nothing in a distri system remounts it later.
	ReadOnly bool
	// LUKS lists the volumes to unlock, from rd.luks.uuid=UUID (named
	// luks-UUID) and rd.luks.name=UUID=NAME, in command line order.
	LUKS []LUKS
	// KeyFile is rd.luks.key=PATH: a file in the initramfs whose bytes
	// are the passphrase of every volume (for unattended boots and
	// tests). Empty means: ask on the console.
	KeyFile string
	// Timeout is rd.timeout= in seconds (or a Go duration, e.g. "500ms"):
	// how long to wait for devices. Zero means DefaultTimeout; a
	// negative value (rd.timeout=0) means forever.
	Timeout time.Duration
	// Init is init=, the root's init program; empty means /init, else
	// /sbin/init.
	Init string
	// Fuse is distri.fuse=, the distri-fuse binary the booted system's
	// PID 1 starts; empty means SystemFuse.
	Fuse string
}

// LUKS is one volume to unlock.
type LUKS struct {
	UUID string // e.g. "ba0504ec-11b1-4015-b9fe-80939af15a81"
	Name string // the device-mapper name, e.g. "cryptroot"; /dev/mapper/<Name>
}

// Device says how to find a block device.
type Device struct {
	// Kind is "UUID", "PARTUUID", "LABEL", "PARTLABEL" or "path"; empty
	// for no device.
	Kind string
	// Value is the UUID (lower case), label or path, e.g.
	// "/dev/vda2" or "/dev/mapper/cryptroot".
	Value string
}

func (d Device) String() string {
	switch d.Kind {
	case "":
		return ""
	case "path":
		return d.Value
	}
	return d.Kind + "=" + d.Value
}

// ParseDevice parses a device spec as root= takes it: UUID=…, PARTUUID=…,
// LABEL=…, PARTLABEL=…, a /dev path, or a major:minor pair (as
// "/dev/block/MAJ:MIN").
func ParseDevice(s string) (Device, error) {
	if s == "" {
		return Device{}, nil
	}
	if k, v, ok := strings.Cut(s, "="); ok {
		switch strings.ToUpper(k) {
		case "UUID", "PARTUUID":
			return Device{Kind: strings.ToUpper(k), Value: strings.ToLower(v)}, nil
		case "LABEL", "PARTLABEL":
			return Device{Kind: strings.ToUpper(k), Value: v}, nil
		}
		return Device{}, fmt.Errorf("unknown device spec %q (want UUID=, PARTUUID=, LABEL=, PARTLABEL= or /dev/…)", s)
	}
	if strings.HasPrefix(s, "/dev/") {
		return Device{Kind: "path", Value: s}, nil
	}
	if maj, min, ok := strings.Cut(s, ":"); ok {
		if _, err := strconv.ParseUint(maj, 10, 32); err == nil {
			if _, err := strconv.ParseUint(min, 10, 32); err == nil {
				return Device{Kind: "path", Value: "/dev/block/" + s}, nil
			}
		}
	}
	return Device{}, fmt.Errorf("unknown device spec %q (want UUID=, PARTUUID=, LABEL=, PARTLABEL= or /dev/…)", s)
}

// SplitCmdline splits a kernel command line into parameters the way the
// kernel does: at spaces, except inside double quotes, which are removed.
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ParseCmdline parses the kernel command line s (the contents of
// /proc/cmdline). Unknown parameters are ignored; malformed known ones
// are errors, all of them reported together.
func ParseCmdline(s string) (Cmdline, error) {
	var c Cmdline
	var errs []error
	names := map[string]int{} // UUID → index in c.LUKS
	addLUKS := func(uuid, name string) error {
		uuid = strings.TrimPrefix(strings.ToLower(uuid), "luks-")
		if uuid == "" {
			return errors.New("empty UUID")
		}
		if i, ok := names[uuid]; ok {
			if name != "" {
				c.LUKS[i].Name = name
			}
			return nil
		}
		if name == "" {
			name = "luks-" + uuid
		}
		names[uuid] = len(c.LUKS)
		c.LUKS = append(c.LUKS, LUKS{UUID: uuid, Name: name})
		return nil
	}
	for _, p := range SplitCmdline(s) {
		k, v, hasValue := strings.Cut(p, "=")
		var err error
		switch k {
		case "root":
			c.Root, err = ParseDevice(v)
		case "rootfstype":
			c.RootFSType = v
		case "rootflags":
			c.RootFlags = v
		case "ro":
			c.ReadOnly = true
		case "rw":
			c.ReadOnly = false
		case "init":
			c.Init = v
		case "distri.fuse":
			c.Fuse = v
		case "rd.luks.uuid":
			for u := range strings.SplitSeq(v, ",") {
				if u != "" && err == nil {
					err = addLUKS(u, "")
				}
			}
		case "rd.luks.name":
			uuid, name, ok := strings.Cut(v, "=")
			if !ok || uuid == "" || name == "" {
				err = errors.New("want rd.luks.name=UUID=NAME")
				break
			}
			err = addLUKS(uuid, name)
		case "rd.luks.key":
			// systemd also allows PATH:DEVICE and UUID=PATH; only a
			// path in the initramfs is supported.
			if _, path, ok := strings.Cut(v, "="); ok && !strings.HasPrefix(v, "/") {
				v = path
			}
			c.KeyFile = v
		case "rd.timeout":
			c.Timeout, err = parseTimeout(v)
		default:
			continue
		}
		if err == nil && !hasValue && k != "ro" && k != "rw" {
			err = errors.New("missing value")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	return c, errors.Join(errs...)
}

// maxTimeout is the largest rd.timeout= that fits a time.Duration, in
// seconds (about 292 years). Larger values, infinities and NaN are
// errors: converted, they would wrap around to a negative Duration,
// which means "forever", or to a tiny one.
const maxTimeout = float64(math.MaxInt64 / int64(time.Second))

func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, err2 := strconv.ParseFloat(v, 64)
		if err2 != nil || math.IsNaN(secs) || secs < 0 || secs > maxTimeout {
			return 0, fmt.Errorf("want seconds from 0 (forever) to %.0f, e.g. rd.timeout=30", maxTimeout)
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d < 0 {
		return 0, fmt.Errorf("negative duration %s", v)
	}
	if d == 0 {
		return -1, nil // forever
	}
	return d, nil
}

// WaitTimeout returns how long to wait for devices: Timeout, or
// DefaultTimeout if unset; negative means forever.
func (c Cmdline) WaitTimeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// String formats c as kernel command line parameters, the inverse of
// ParseCmdline for the fields that are set. Values with spaces are
// quoted.
func (c Cmdline) String() string {
	var p []string
	add := func(k, v string) {
		if v == "" {
			return
		}
		if strings.ContainsAny(v, " \t\n") { // where SplitCmdline splits
			v = `"` + v + `"`
		}
		p = append(p, k+"="+v)
	}
	add("root", c.Root.String())
	add("rootfstype", c.RootFSType)
	add("rootflags", c.RootFlags)
	if c.ReadOnly {
		p = append(p, "ro")
	} else {
		p = append(p, "rw")
	}
	for _, l := range c.LUKS {
		if l.Name == "luks-"+l.UUID {
			add("rd.luks.uuid", l.UUID)
		} else {
			add("rd.luks.name", l.UUID+"="+l.Name)
		}
	}
	key := c.KeyFile
	if !strings.HasPrefix(key, "/") && strings.Contains(key, "=") {
		key = "=" + key // else the part before "=" reads as a device
	}
	add("rd.luks.key", key)
	switch {
	case c.Timeout < 0:
		p = append(p, "rd.timeout=0")
	case c.Timeout > 0:
		add("rd.timeout", strconv.FormatFloat(c.Timeout.Seconds(), 'f', -1, 64))
	}
	add("init", c.Init)
	add("distri.fuse", c.Fuse)
	return strings.Join(p, " ")
}
