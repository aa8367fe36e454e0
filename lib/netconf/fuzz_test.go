package netconf

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzUnmarshal decodes arbitrary DHCP replies (anyone on the link can
// send one) and checks what is accepted: the message encodes and decodes
// to itself, and a lease's renewal and rebinding times fall inside it.
func FuzzUnmarshal(f *testing.F) {
	f.Add(reply(0x11223344, [4]byte{10, 0, 2, 15},
		53, 1, Ack, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 0x51, 0x80,
		1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3))
	f.Add(reply(7, [4]byte{192, 168, 1, 77},
		53, 1, Offer, 0, 0, 54, 4, 192, 168, 1, 1, 1, 4, 255, 255, 254, 0,
		3, 8, 192, 168, 1, 1, 192, 168, 1, 2, 6, 8, 1, 1, 1, 1, 9, 9, 9, 9,
		26, 2, 0x05, 0xdc, 15, 3, 'l', 'a', 'n', 51, 4, 0, 0, 0x0e, 0x10,
		58, 4, 0, 0, 0x03, 0x84, 59, 4, 0, 0, 0x07, 0x08))
	f.Add(reply(7, [4]byte{10, 1, 2, 3}, 53, 1, Ack, 6, 4, 8, 8, 8, 8, 6, 4, 8, 8, 4, 4, 51, 4, 255, 255, 255, 255))
	f.Add(reply(7, [4]byte{10, 0, 0, 1}, 53, 1, Ack, 1, 4, 255, 0, 255, 0))
	f.Add(reply(7, [4]byte{10, 0, 0, 1}, 53, 1, Ack, 15, 23, 'l', 'a', 'n', '\n', 'n', 'a', 'm', 'e', 's', 'e', 'r', 'v', 'e', 'r', ' ',
		'6', '.', '6', '.', '6', '.', '6', 0, 6, 4, 127, 0, 0, 1))
	f.Add(reply(7, [4]byte{10, 0, 0, 50}, 53, 1, Ack, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 0, 1,
		121, 14, 0, 10, 0, 0, 254, 16, 10, 9, 0, 0, 0, 0, 0))
	resolv := filepath.Join(f.TempDir(), "resolv.conf")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		enc, err := m.Marshal()
		if err != nil {
			t.Fatalf("Unmarshal(%x) = %+v, which does not marshal: %v", b, m, err)
		}
		m2, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("re-encoded message %x does not unmarshal: %v", enc, err)
		}
		// Marshal writes the Ethernet hardware type and nothing of the
		// op's BOOTP fields beyond the header: compare what a client reads.
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("Unmarshal(%x) = %+v\nre-encoded: %+v", b, m, m2)
		}
		l, err := m.Lease()
		if err != nil {
			return
		}
		if !l.Addr.IsValid() || !l.Addr.Addr().Is4() || l.Addr.Bits() < 0 || l.Addr.Bits() > 32 {
			t.Errorf("lease address %v", l.Addr)
		}
		if l.Duration < 0 || l.Renew < 0 || l.Rebind < 0 {
			t.Errorf("lease %+v: negative times", l)
		}
		for _, r := range l.Routes {
			if !r.Dst.Addr().Is4() || r.Dst.Masked() != r.Dst || !r.Gateway.Is4() || checkRouter(r.Gateway) != nil {
				t.Errorf("reply %x: route %v", b, r)
			}
		}
		if t1, t2 := l.times(); t1 < 0 || t2 < t1 || t2 > l.Duration {
			t.Errorf("lease %+v: renew at %v, rebind at %v", l, t1, t2)
		}
		// What the reply says must not write anything but a search
		// and nameserver lines into resolv.conf.
		os.Remove(resolv)
		if err := WriteResolv(resolv, "eth0", l); err != nil {
			t.Fatal(err)
		}
		text, err := os.ReadFile(resolv)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSuffix(string(text), "\n"), "\n") {
			k, v, _ := strings.Cut(line, " ")
			switch {
			case i < 2 && strings.HasPrefix(line, "#"):
			case k == "search" && v != "" && !strings.ContainsAny(v, " \t\r\x00"):
			case k == "nameserver" && netip.MustParseAddr(v).Is4():
			default:
				t.Errorf("reply %x: resolv.conf line %q:\n%s", b, line, text)
			}
		}
	})
}
