package initconfig

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseCmdline parses arbitrary kernel command lines (a boot
// loader's editor or a hostile boot entry writes them) and checks that
// what it accepts survives the way back: ParseCmdline(c.String()) is c.
func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{
		"BOOT_IMAGE=/vmlinuz root=UUID=BA0504EC-11B1-4015-B9FE-80939AF15A81 ro quiet console=ttyS0\n",
		`root=/dev/mapper/cryptroot rd.luks.uuid=luks-ba0504ec-11b1-4015-b9fe-80939af15a81,0d15ea5e rd.luks.key=/etc/key rw`,
		`root=PARTLABEL="my root" rootfstype=ext4 rootflags=data=journal,noatime rd.luks.name=0d15ea5e=cryptroot rd.timeout=2.5 init=/sbin/init`,
		`root=254:1 distri.fuse=/ro/bin/distri-fuse rd.timeout=0 rd.luks.key=0d15ea5e=/k "quoted param=a b"`,
		`root=LABEL=a"b rd.timeout=500ms rd.luks.name= ro rw ro`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		split := SplitCmdline(s)
		for _, p := range split {
			if p == "" && !strings.Contains(s, `"`) { // only quotes make one
				t.Errorf("SplitCmdline(%q) has an empty parameter", s)
			}
		}
		c, err := ParseCmdline(s)
		if err != nil {
			return
		}
		back := c.String()
		c2, err := ParseCmdline(back)
		if err != nil {
			t.Fatalf("ParseCmdline(%q) = %+v, whose String %q does not parse: %v", s, c, back, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Errorf("ParseCmdline(%q) = %+v\nString %q parses as %+v", s, c, back, c2)
		}
	})
}
