package initconfig

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    Cmdline
		wantErr bool
	}{
		{
			name: "uuid",
			in:   "BOOT_IMAGE=/vmlinuz console=ttyS0 root=UUID=5F3B8A41-0C2E-4D7A-9B61-3E8F2C1D0A77 ro quiet",
			want: Cmdline{Root: Device{Kind: "UUID", Value: "5f3b8a41-0c2e-4d7a-9b61-3e8f2c1d0a77"}, ReadOnly: true},
		},
		{
			name: "partuuid label path",
			in:   "root=PARTUUID=0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58 rootfstype=ext4 rw",
			want: Cmdline{Root: Device{Kind: "PARTUUID", Value: "0b5e2c7a-94d1-4f3e-8a26-7c1d9e0f4b58"}, RootFSType: "ext4"},
		},
		{
			name: "label with quotes and flags",
			in:   `root=LABEL=distri-root "rootflags=data=journal,commit=5" ro rw`,
			want: Cmdline{Root: Device{Kind: "LABEL", Value: "distri-root"}, RootFlags: "data=journal,commit=5"},
		},
		{
			name: "dev path and major:minor",
			in:   "root=/dev/mapper/cryptroot",
			want: Cmdline{Root: Device{Kind: "path", Value: "/dev/mapper/cryptroot"}},
		},
		{
			name: "major minor",
			in:   "root=254:2",
			want: Cmdline{Root: Device{Kind: "path", Value: "/dev/block/254:2"}},
		},
		{
			name: "luks as distri's image builder writes it",
			in:   "rd.luks=1 rd.luks.uuid=ba0504ec-11b1-4015-b9fe-80939af15a81 rd.luks.name=ba0504ec-11b1-4015-b9fe-80939af15a81=districrypt root=/dev/mapper/districrypt init=/init",
			want: Cmdline{
				Root: Device{Kind: "path", Value: "/dev/mapper/districrypt"},
				LUKS: []LUKS{{UUID: "ba0504ec-11b1-4015-b9fe-80939af15a81", Name: "districrypt"}},
				Init: "/init",
			},
		},
		{
			name: "several luks uuids, luks- prefix, key file, timeout",
			in:   "rd.luks.uuid=luks-AAAA,bbbb rd.luks.key=/etc/key rd.timeout=2.5",
			want: Cmdline{
				LUKS:    []LUKS{{UUID: "aaaa", Name: "luks-aaaa"}, {UUID: "bbbb", Name: "luks-bbbb"}},
				KeyFile: "/etc/key",
				Timeout: 2500 * time.Millisecond,
			},
		},
		{
			name: "systemd key syntax, forever, fuse",
			in:   "rd.luks.key=aaaa=/k rd.timeout=0 distri.fuse=/sbin/distri-fuse",
			want: Cmdline{KeyFile: "/k", Timeout: -1, Fuse: "/sbin/distri-fuse"},
		},
		{
			name:    "bad root",
			in:      "root=nonsense rd.timeout=soon",
			wantErr: true,
		},
		{
			name:    "bad luks name",
			in:      "rd.luks.name=onlyuuid",
			wantErr: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCmdline(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseCmdline(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCmdline(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			// String is the inverse of ParseCmdline.
			again, err := ParseCmdline(got.String())
			if err != nil {
				t.Fatalf("ParseCmdline(%q): %v", got.String(), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip through %q mismatch (-want +got):\n%s", got.String(), diff)
			}
		})
	}
}

// TestParseTimeoutHostile feeds rd.timeout= values that used to wrap
// around to a negative Duration (which means "wait forever") or parse as
// NaN: each must be an error naming rd.timeout.
func TestParseTimeoutHostile(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "infinity", "1e300", "9223372037", "-1", "-5s", "0x1p80"} {
		t.Run(v, func(t *testing.T) {
			c, err := ParseCmdline("rd.timeout=" + v)
			if err == nil || !strings.Contains(err.Error(), "rd.timeout="+v) {
				t.Errorf("ParseCmdline(rd.timeout=%s) = %v (Timeout %v), want an error naming it", v, err, c.Timeout)
			}
		})
	}
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"9223372036", 9223372036 * time.Second},
		{"0", -1},
		{"0s", -1},
		{"1.5", 1500 * time.Millisecond},
		{"2m", 2 * time.Minute},
	} {
		t.Run(tt.in, func(t *testing.T) {
			c, err := ParseCmdline("rd.timeout=" + tt.in)
			if err != nil || c.Timeout != tt.want {
				t.Errorf("ParseCmdline(rd.timeout=%s) = %v, %v, want %v", tt.in, c.Timeout, err, tt.want)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(`a "b c" d="e f"  g` + "\n")
	want := []string{"a", "b c", "d=e f", "g"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SplitCmdline mismatch (-want +got):\n%s", diff)
	}
}

func TestWaitTimeout(t *testing.T) {
	if got, want := (Cmdline{}).WaitTimeout(), DefaultTimeout; got != want {
		t.Errorf("WaitTimeout() = %v, want %v", got, want)
	}
}
