package build

import (
	"strings"
	"testing"

	"distri.dev/distri/lib/sysusers"
)

// FuzzScanMaintScripts: any script scans without panicking, and every
// sysusers.d line it yields is one distri-install accepts.
func FuzzScanMaintScripts(f *testing.F) {
	f.Add(testPostinst)
	f.Add("adduser --system --home '/a b' --gecos \"x:y\" u\nfor i in a; do update-alternatives --install /usr/bin/$i $i /x 1; done\n")
	f.Add("useradd -r -g 0 x\naddgroup --system Bad\nf() { :; }\nf\ncase $1 in a|b) x ;; esac\n")
	f.Fuzz(func(t *testing.T, script string) {
		e := ScanMaintScripts(map[string][]byte{"postinst": []byte(script)})
		for _, l := range e.SysUsers {
			if _, err := sysusers.Parse("fuzz", []byte(l)); err != nil {
				t.Errorf("line %q refused: %v", l, err)
			}
		}
		for _, a := range e.Alternatives {
			if strings.ContainsAny(a.Name, "\n") && a.Priority < 0 {
				t.Logf("odd alternative %+v", a)
			}
		}
	})
}
