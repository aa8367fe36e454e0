package fstab

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	const in = `# /etc/fstab: static file system information.
	# indented comment

UUID=5F3B8A41-0C2E-4D7A-9B61-3E8F2C1D0A77 / ext4 defaults 0 1
LABEL=my\040data	/mnt/my\040data   auto  ro,noexec,x-systemd.automount,comment=backup  0 2
tmpfs /tmp tmpfs size=10m,mode=1777
PARTUUID=0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58 none swap sw,pri=5,discard=once 0 0
/dev/vdc /srv ext4
/srv /export none bind,ro,nofail,noauto 0 0
`
	got, err := Parse(strings.NewReader(in), "fstab")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Line: 4, Spec: "UUID=5F3B8A41-0C2E-4D7A-9B61-3E8F2C1D0A77", File: "/", Type: "ext4", Options: "defaults", PassNo: 1},
		{Line: 5, Spec: "LABEL=my data", File: "/mnt/my data", Type: "auto", Options: "ro,noexec,x-systemd.automount,comment=backup", PassNo: 2,
			Mount: Mount{Flags: unix.MS_RDONLY | unix.MS_NOEXEC}},
		{Line: 6, Spec: "tmpfs", File: "/tmp", Type: "tmpfs", Options: "size=10m,mode=1777", Mount: Mount{Data: "size=10m,mode=1777"}},
		{Line: 7, Spec: "PARTUUID=0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58", File: "none", Type: "swap", Options: "sw,pri=5,discard=once",
			Mount: Mount{SwapFlags: swapFlagPrefer | 5 | swapFlagDiscard | swapFlagDiscardOnce}},
		{Line: 8, Spec: "/dev/vdc", File: "/srv", Type: "ext4", Options: "defaults"},
		{Line: 9, Spec: "/srv", File: "/export", Type: "none", Options: "bind,ro,nofail,noauto",
			Mount: Mount{Flags: unix.MS_BIND | unix.MS_RDONLY, NoFail: true, NoAuto: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if !got[3].Swap() || got[2].Swap() {
		t.Errorf("Swap() wrong")
	}
}

func TestParseBadLines(t *testing.T) {
	const in = `tmpfs /tmp tmpfs defaults 0 0
/dev/vdb
/dev/vdb /mnt ext4 defaults 0 0 extra
/dev/vdb mnt ext4
/dev/vdb /mnt ext4 defaults x 0
/dev/vdb /mnt\04 ext4
/dev/vdb /mnt\09x ext4
/dev/vdb /mnt ext4 loop
/dev/vdb none swap pri=high
/dev/vdb swapfile swap
/dev/vdb none swap discard=always
tmpfs /ok tmpfs
`
	got, err := Parse(strings.NewReader(in), "/etc/fstab")
	if len(got) != 2 || got[0].File != "/tmp" || got[1].File != "/ok" || got[1].Line != 12 {
		t.Errorf("good entries: %+v, want /tmp (line 1) and /ok (line 12)", got)
	}
	wantErrs := []string{
		`/etc/fstab:2: want 3 to 6 fields (spec, mount point, type, options, dump, pass), got 1`,
		`/etc/fstab:3: want 3 to 6 fields (spec, mount point, type, options, dump, pass), got 7`,
		`/etc/fstab:4: mount point "mnt" is not an absolute path`,
		`/etc/fstab:5: field 5 (dump): want a number, got "x"`,
		`/etc/fstab:6: "/mnt\\04": incomplete escape at byte 4 (want \ and 3 octal digits)`,
		`/etc/fstab:7: "/mnt\\09x": bad escape "\\09x" (want \ and 3 octal digits, e.g. \040)`,
		`/etc/fstab:8: option loop: loop devices are not supported (mount the device itself)`,
		`/etc/fstab:9: option pri=high: want a priority from 0 to 32767`,
		`/etc/fstab:10: swap mount point "swapfile": want none`,
		`/etc/fstab:11: option discard=always: want discard, discard=once or discard=pages`,
	}
	if err == nil {
		t.Fatal("no error for bad lines")
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || le.Name != "/etc/fstab" {
		t.Errorf("errors.As LineError: %+v", le)
	}
}

func TestParseOptions(t *testing.T) {
	for _, tt := range []struct {
		opts, fstype string
		want         Mount
	}{
		{"defaults", "ext4", Mount{}},
		{"", "ext4", Mount{}},
		{"ro", "ext4", Mount{Flags: unix.MS_RDONLY}},
		{"ro,rw", "ext4", Mount{}},
		{"rw,ro", "ext4", Mount{Flags: unix.MS_RDONLY}},
		{"defaults,ro", "ext4", Mount{Flags: unix.MS_RDONLY}},
		{"nosuid,nodev,noexec", "ext4", Mount{Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}},
		{"noexec,exec,suid,dev", "ext4", Mount{}},
		{"noatime,nodiratime", "ext4", Mount{Flags: unix.MS_NOATIME | unix.MS_NODIRATIME}},
		{"relatime,lazytime,sync,dirsync", "ext4", Mount{Flags: unix.MS_RELATIME | unix.MS_LAZYTIME | unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC}},
		{"sync,async", "ext4", Mount{}},
		{"strictatime", "ext4", Mount{Flags: unix.MS_STRICTATIME}},
		{"user", "ext4", Mount{Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}},
		{"user,exec", "ext4", Mount{Flags: unix.MS_NOSUID | unix.MS_NODEV}},
		{"rbind", "none", Mount{Flags: unix.MS_BIND | unix.MS_REC}},
		{"noauto,nofail", "ext4", Mount{NoAuto: true, NoFail: true}},
		{"auto,_netdev,nouser", "ext4", Mount{}},
		{"errors=remount-ro,ro,discard,commit=60", "ext4", Mount{Flags: unix.MS_RDONLY, Data: "errors=remount-ro,discard,commit=60"}},
		{"x-systemd.device-timeout=5s,comment=x-gvfs-show,mode=0700", "tmpfs", Mount{Data: "mode=0700"}},
		{"size=1m,,mode=1777", "tmpfs", Mount{Data: "size=1m,mode=1777"}},
		{"sw", "swap", Mount{}},
		{"sw,pri=0", "swap", Mount{SwapFlags: swapFlagPrefer}},
		{"pri=32767,discard", "swap", Mount{SwapFlags: swapFlagPrefer | 32767 | swapFlagDiscard}},
		{"discard=pages,nofail", "swap", Mount{SwapFlags: swapFlagDiscard | swapFlagDiscardPages, NoFail: true}},
	} {
		got, err := ParseOptions(tt.opts, tt.fstype)
		if err != nil {
			t.Errorf("ParseOptions(%q, %q): %v", tt.opts, tt.fstype, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseOptions(%q, %q) = %+v, want %+v", tt.opts, tt.fstype, got, tt.want)
		}
	}
	for _, bad := range []struct{ opts, fstype string }{
		{"loop", "ext4"}, {"loop=/dev/loop0", "ext4"}, {"offset=4096", "ext4"},
		{"pri=-1", "swap"}, {"pri=", "swap"}, {"pri=32768", "swap"}, {"discard=x", "swap"},
	} {
		if _, err := ParseOptions(bad.opts, bad.fstype); err == nil {
			t.Errorf("ParseOptions(%q, %q): no error", bad.opts, bad.fstype)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:               "plain",
		`/mnt/a\040b`:         "/mnt/a b",
		`tab\011x`:            "tab\tx",
		`back\134slash`:       `back\slash`,
		`\043hash`:            "#hash",
		`\040\040`:            "  ",
		`LABEL=with\012line`:  "LABEL=with\nline",
		`/trailing\040`:       "/trailing ",
		`/a\040b\040c\040d\0`: "",
	} {
		got, err := unescape(in)
		if want == "" {
			if err == nil {
				t.Errorf("unescape(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestIsDevice(t *testing.T) {
	for spec, want := range map[string]bool{
		"UUID=x": true, "uuid=x": true, "LABEL=a": true, "PARTUUID=x": true, "PARTLABEL=y": true,
		"/dev/vdb": true, "/dev/disk/by-uuid/x": true,
		"tmpfs": false, "proc": false, "/srv": false, "server:/export": false, "none": false, "ID=x": false,
	} {
		if got := isDevice(spec); got != want {
			t.Errorf("isDevice(%q) = %v, want %v", spec, got, want)
		}
	}
	for spec, want := range map[string]string{
		"/dev/disk/by-uuid/ABC":       "UUID=abc",
		"/dev/disk/by-label/data":     "LABEL=data",
		"/dev/disk/by-partuuid/X-1":   "PARTUUID=x-1",
		"/dev/disk/by-partlabel/root": "PARTLABEL=root",
		"/dev/vdb":                    "/dev/vdb",
		"LABEL=Data":                  "LABEL=Data",
	} {
		d, err := parseSpec(spec)
		if err != nil || d.String() != want {
			t.Errorf("parseSpec(%q) = %v, %v; want %s", spec, d, err, want)
		}
	}
}
