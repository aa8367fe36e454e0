package netconf

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var hw = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// reply returns the bytes of a server's reply as a DHCP server writes
// them, assembled by hand: header, cookie, then raw options.
func reply(xid uint32, yiaddr [4]byte, opts ...byte) []byte {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 2, 1, 6
	b[4], b[5], b[6], b[7] = byte(xid>>24), byte(xid>>16), byte(xid>>8), byte(xid)
	b[10] = 0x80
	copy(b[16:20], yiaddr[:])
	copy(b[28:], hw)
	copy(b[236:], []byte{99, 130, 83, 99})
	return append(append(b, opts...), 255)
}

func TestUnmarshalLease(t *testing.T) {
	for _, tt := range []struct {
		name     string
		pkt      []byte
		wantType byte
		want     *Lease
		wantErr  bool
	}{
		{
			name: "slirp ack",
			pkt: reply(0x11223344, [4]byte{10, 0, 2, 15},
				53, 1, Ack,
				54, 4, 10, 0, 2, 2,
				51, 4, 0, 1, 0x51, 0x80, // 86400 s
				1, 4, 255, 255, 255, 0,
				3, 4, 10, 0, 2, 2,
				6, 4, 10, 0, 2, 3),
			wantType: Ack,
			want: &Lease{Addr: netip.MustParsePrefix("10.0.2.15/24"), Router: netip.MustParseAddr("10.0.2.2"),
				DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}, Duration: 24 * time.Hour, Server: netip.MustParseAddr("10.0.2.2")},
		},
		{
			name: "offer with mtu, two routers, two dns, padding, domain",
			pkt: reply(7, [4]byte{192, 168, 1, 77},
				53, 1, Offer,
				0, 0, // pads
				54, 4, 192, 168, 1, 1,
				1, 4, 255, 255, 254, 0,
				3, 8, 192, 168, 1, 1, 192, 168, 1, 2,
				6, 8, 1, 1, 1, 1, 9, 9, 9, 9,
				26, 2, 0x05, 0xdc, // 1500
				15, 3, 'l', 'a', 'n',
				51, 4, 0, 0, 0x0e, 0x10, // 3600 s
				58, 4, 0, 0, 0x03, 0x84, // 900 s
				59, 4, 0, 0, 0x07, 0x08), // 1800 s
			wantType: Offer,
			want: &Lease{Addr: netip.MustParsePrefix("192.168.1.77/23"), Router: netip.MustParseAddr("192.168.1.1"),
				DNS: []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("9.9.9.9")}, Domain: "lan", MTU: 1500,
				Duration: time.Hour, Renew: 15 * time.Minute, Rebind: 30 * time.Minute, Server: netip.MustParseAddr("192.168.1.1")},
		},
		{
			name: "split option concatenated (RFC 3396), no mask: classful",
			pkt: reply(7, [4]byte{10, 1, 2, 3},
				53, 1, Ack,
				6, 4, 8, 8, 8, 8,
				6, 4, 8, 8, 4, 4),
			wantType: Ack,
			want:     &Lease{Addr: netip.MustParsePrefix("10.1.2.3/8"), DNS: []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")}},
		},
		{
			name:     "no address",
			pkt:      reply(7, [4]byte{}, 53, 1, Nak),
			wantType: Nak,
			wantErr:  true,
		},
		{
			name:     "non-contiguous mask",
			pkt:      reply(7, [4]byte{10, 0, 0, 1}, 53, 1, Ack, 1, 4, 255, 0, 255, 0),
			wantType: Ack,
			wantErr:  true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Unmarshal(tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if m.Op != 2 || !bytes.Equal(m.CHAddr, hw) || !m.Broadcast {
				t.Errorf("op %d chaddr %v broadcast %v", m.Op, m.CHAddr, m.Broadcast)
			}
			if m.Type() != tt.wantType {
				t.Errorf("type %d, want %d", m.Type(), tt.wantType)
			}
			l, err := m.Lease()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Lease() = %+v, want an error", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, l, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("lease (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshalBad(t *testing.T) {
	good := reply(1, [4]byte{10, 0, 0, 1}, 53, 1, Ack)
	noCookie := bytes.Clone(good)
	noCookie[236] = 0
	for name, b := range map[string][]byte{
		"short":     good[:200],
		"no cookie": noCookie,
		"truncated": append(good[:len(good)-1], 6, 8, 1, 2, 3),
		"hlen":      append([]byte{2, 1, 17}, good[3:]...),
	} {
		if m, err := Unmarshal(b); err == nil {
			t.Errorf("%s: Unmarshal = %+v, want an error", name, m)
		}
	}
}

func TestMarshal(t *testing.T) {
	for _, tt := range []struct {
		name string
		msg  Message
		opts []byte // the encoded options, up to the end option
	}{
		{
			name: "discover",
			msg: Message{Op: 1, XID: 0xdeadbeef, Broadcast: true, CHAddr: hw,
				Options: []Option{{OptMessageType, []byte{Discover}}, {OptParamRequest, []byte{1, 3, 6, 26, 51, 54}}}},
			opts: []byte{53, 1, 1, 55, 6, 1, 3, 6, 26, 51, 54, 255},
		},
		{
			name: "request",
			msg: Message{Op: 1, XID: 1, Secs: 3, Broadcast: true, CHAddr: hw,
				Options: []Option{{OptMessageType, []byte{Request}}, {OptRequestedIP, []byte{10, 0, 2, 15}}, {OptServerID, []byte{10, 0, 2, 2}}}},
			opts: []byte{53, 1, 3, 50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2, 255},
		},
		{
			name: "long option split",
			msg:  Message{Op: 1, CHAddr: hw, Options: []Option{{OptHostname, bytes.Repeat([]byte{'a'}, 300)}}},
			opts: append(append(append([]byte{12, 255}, bytes.Repeat([]byte{'a'}, 255)...), 12, 45), append(bytes.Repeat([]byte{'a'}, 45), 255)...),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 300 {
				t.Errorf("%d bytes, want at least 300 (BOOTP)", len(b))
			}
			if b[0] != 1 || b[1] != 1 || b[2] != 6 {
				t.Errorf("op/htype/hlen = %v", b[:3])
			}
			if got := uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]); got != tt.msg.XID {
				t.Errorf("xid %#x, want %#x", got, tt.msg.XID)
			}
			if flags := b[10]; (flags == 0x80) != tt.msg.Broadcast {
				t.Errorf("flags %#x, broadcast %v", flags, tt.msg.Broadcast)
			}
			if !bytes.Equal(b[28:34], hw) || !bytes.Equal(b[236:240], []byte{99, 130, 83, 99}) {
				t.Errorf("chaddr %x cookie %x", b[28:34], b[236:240])
			}
			if got := b[240 : 240+len(tt.opts)]; !bytes.Equal(got, tt.opts) {
				t.Errorf("options %v, want %v", got, tt.opts)
			}
			for _, p := range b[240+len(tt.opts):] {
				if p != 0 {
					t.Fatalf("padding has %d", p)
				}
			}
			// And back.
			m, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.msg, m, cmp.Comparer(func(a, b netip.Addr) bool {
				return a.Unmap() == b.Unmap() || (!a.IsValid() && b == netip.IPv4Unspecified()) || (!b.IsValid() && a == netip.IPv4Unspecified())
			})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResultString(t *testing.T) {
	l := &Lease{Addr: netip.MustParsePrefix("10.0.2.15/24"), Router: netip.MustParseAddr("10.0.2.2"), DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}}
	r := Result{Interface: "eth0", Lease: l, Took: 300 * time.Millisecond}
	if got, want := r.String(), "network eth0: 10.0.2.15/24 via 10.0.2.2, dns 10.0.2.3 (dhcp, 0.3s)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	r = Result{Interface: "eth1", Err: errShort, Took: 8 * time.Second}
	if got, want := r.String(), "FAILED: network eth1: no DHCP lease after 8s: dhcp: message too short"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestLeaseTimes(t *testing.T) {
	for _, tt := range []struct {
		l      Lease
		t1, t2 time.Duration
	}{
		{Lease{Duration: time.Hour}, 30 * time.Minute, 52*time.Minute + 30*time.Second},
		{Lease{Duration: time.Hour, Renew: 15 * time.Minute, Rebind: 30 * time.Minute}, 15 * time.Minute, 30 * time.Minute},
		{Lease{Duration: time.Hour, Renew: 2 * time.Hour}, 30 * time.Minute, 52*time.Minute + 30*time.Second}, // beyond the lease
		{Lease{Duration: time.Hour, Renew: 50 * time.Minute, Rebind: 40 * time.Minute}, 50 * time.Minute, 52*time.Minute + 30*time.Second},
		{Lease{Duration: 2 * time.Second}, time.Second, 1750 * time.Millisecond},
	} {
		if t1, t2 := tt.l.times(); t1 != tt.t1 || t2 != tt.t2 {
			t.Errorf("%+v: T1 %v T2 %v, want %v %v", tt.l, t1, t2, tt.t1, tt.t2)
		}
	}
}

// TestLeaseHostileOptions attacks resolv.conf through a DHCP reply: a
// domain option with a newline used to add a "nameserver" line and one
// with a space an "options" line; DNS "servers" 0.0.0.0, broadcast,
// multicast and loopback went in unchecked. Each must be dropped, and
// said so, while the valid rest of the lease stays.
func TestLeaseHostileOptions(t *testing.T) {
	for _, tt := range []struct {
		name       string
		domain     string // option 15 as sent
		dns        []byte // option 6 as sent
		wantDomain string
		wantDNS    []netip.Addr
		wantIgnore []string // substrings of Lease.Ignored, in order
	}{
		{"newline nameserver", "lan\nnameserver 6.6.6.6", []byte{10, 0, 2, 3}, "", []netip.Addr{netip.MustParseAddr("10.0.2.3")},
			[]string{`domain "lan\nnameserver 6.6.6.6": not a DNS name: byte '\n'`}},
		{"space options", "lan options ndots:15", nil, "", nil, []string{`domain "lan options ndots:15": not a DNS name: byte ' '`}},
		{"carriage return", "lan\rsearch evil", nil, "", nil, []string{`not a DNS name: byte '\r'`}},
		{"leading hyphen", "-lan", nil, "", nil, []string{`label "-lan" begins or ends with a hyphen`}},
		{"empty label", "a..b", nil, "", nil, []string{`a label of 0 bytes`}},
		{"long label", strings.Repeat("a", 64) + ".org", nil, "", nil, []string{`a label of 64 bytes`}},
		{"long name", strings.Repeat("a.", 127) + "b", nil, "", nil, []string{`255 bytes, want 1 to 253`}},
		{"underscore", "my_lan", nil, "", nil, []string{`byte '_'`}},
		{"only a dot", ".", nil, "", nil, []string{`domain ".": not a DNS name`}},
		{"good with digits, trailing dot and NUL", "1und1.example-net.de.\x00", nil, "1und1.example-net.de.", nil, nil},
		{"bad servers", "lan",
			[]byte{0, 0, 0, 0, 255, 255, 255, 255, 224, 0, 0, 251, 127, 0, 0, 53, 192, 0, 2, 53, 1, 2},
			"lan", []netip.Addr{netip.MustParseAddr("192.0.2.53")},
			[]string{"dns server 0.0.0.0: unspecified", "dns server 255.255.255.255: broadcast", "dns server 224.0.0.251: multicast",
				"dns server 127.0.0.53: loopback", "dns servers: 2 trailing bytes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := []byte{53, 1, Ack, 54, 4, 10, 0, 2, 2, 15, byte(len(tt.domain))}
			opts = append(opts, tt.domain...)
			if tt.dns != nil {
				opts = append(append(opts, 6, byte(len(tt.dns))), tt.dns...)
			}
			m, err := Unmarshal(reply(1, [4]byte{10, 0, 2, 15}, opts...))
			if err != nil {
				t.Fatal(err)
			}
			l, err := m.Lease()
			if err != nil {
				t.Fatal(err)
			}
			if l.Domain != tt.wantDomain {
				t.Errorf("Domain = %q, want %q", l.Domain, tt.wantDomain)
			}
			if diff := cmp.Diff(tt.wantDNS, l.DNS, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("DNS mismatch (-want +got):\n%s", diff)
			}
			if len(l.Ignored) != len(tt.wantIgnore) {
				t.Fatalf("Ignored = %q, want %d entries like %q", l.Ignored, len(tt.wantIgnore), tt.wantIgnore)
			}
			for i, want := range tt.wantIgnore {
				if !strings.Contains(l.Ignored[i], want) {
					t.Errorf("Ignored[%d] = %q, want it to contain %q", i, l.Ignored[i], want)
				}
			}
			// Whatever got through makes a resolv.conf of only marker,
			// comment, search and nameserver lines.
			p := filepath.Join(t.TempDir(), "resolv.conf")
			if err := WriteResolv(p, "eth0", l); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				if line != ResolvMarker && !strings.HasPrefix(line, "# DHCP on ") &&
					!strings.HasPrefix(line, "nameserver ") && line != "search "+tt.wantDomain {
					t.Errorf("resolv.conf line %q", line)
				}
				if strings.Contains(line, "6.6.6.6") || strings.Contains(line, "options") {
					t.Errorf("resolv.conf line %q came from the attack", line)
				}
			}
			r := Result{Interface: "eth0", Lease: l}
			if len(tt.wantIgnore) > 0 && !strings.Contains(r.String(), "; ignored invalid ") {
				t.Errorf("console line %q does not name what was ignored", r)
			}
		})
	}
}

// TestWriteResolvRefusesBadLease checks the second line of defence: a
// Lease made elsewhere with a bad domain or server writes nothing.
func TestWriteResolvRefusesBadLease(t *testing.T) {
	for _, l := range []*Lease{
		{Domain: "lan\nnameserver 6.6.6.6", DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}},
		{DNS: []netip.Addr{netip.MustParseAddr("0.0.0.0")}},
	} {
		p := filepath.Join(t.TempDir(), "resolv.conf")
		if err := WriteResolv(p, "eth0", l); err == nil {
			t.Errorf("WriteResolv(%+v) succeeded", l)
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("WriteResolv(%+v) wrote %s", l, p)
		}
	}
}

// TestClasslessRoutes reads option 121 (RFC 3442): with it, option 3
// is ignored and the default route comes from it; a server that sends
// only option 121 still gives the machine its default route (before,
// it had none). Malformed options are ignored as a whole and named.
func TestClasslessRoutes(t *testing.T) {
	base := []byte{53, 1, Ack, 54, 4, 10, 0, 0, 1, 1, 4, 255, 255, 255, 0}
	pkt := func(opts ...byte) []byte {
		return reply(9, [4]byte{10, 0, 0, 50}, append(append([]byte(nil), base...), opts...)...)
	}
	gw := netip.MustParseAddr
	for _, tt := range []struct {
		name        string
		pkt         []byte
		router      netip.Addr
		routes      []Route
		ignored     string
		wantLeaseLn string
	}{
		{
			name:        "only option 121, default route",
			pkt:         pkt(121, 5, 0, 10, 0, 0, 254),
			router:      gw("10.0.0.254"),
			wantLeaseLn: "network eth0: 10.0.0.50/24 via 10.0.0.254 (dhcp, 0.0s)",
		},
		{
			name: "option 121 wins over option 3",
			pkt: pkt(3, 4, 10, 0, 0, 1,
				121, 20,
				0, 10, 0, 0, 254, // default via 10.0.0.254
				8, 172, 10, 0, 0, 253, // 172.0.0.0/8 via 10.0.0.253
				25, 192, 168, 7, 128, 0, 0, 0, 0, // 192.168.7.128/25 on the link
			),
			router: gw("10.0.0.254"),
			routes: []Route{
				{netip.MustParsePrefix("172.0.0.0/8"), gw("10.0.0.253")},
				{netip.MustParsePrefix("192.168.7.128/25"), gw("0.0.0.0")},
			},
			wantLeaseLn: "network eth0: 10.0.0.50/24 via 10.0.0.254, route 172.0.0.0/8 via 10.0.0.253, route 192.168.7.128/25 on link (dhcp, 0.0s)",
		},
		{
			name: "option 121 without a default route: none, option 3 ignored",
			pkt: pkt(3, 4, 10, 0, 0, 1,
				121, 9, 32, 198, 51, 100, 7, 10, 0, 0, 2),
			routes: []Route{{netip.MustParsePrefix("198.51.100.7/32"), gw("10.0.0.2")}},
		},
		{
			name:    "split over two option 121 (RFC 3396), second default ignored",
			pkt:     pkt(121, 3, 0, 10, 0, 121, 7, 0, 2, 0, 10, 0, 0, 3),
			router:  gw("10.0.0.2"),
			ignored: "route 0.0.0.0/0 via 10.0.0.3: a second default route",
		},
		{
			name:    "truncated: option 3 used",
			pkt:     pkt(3, 4, 10, 0, 0, 1, 121, 6, 24, 10, 1, 2, 10, 0),
			router:  gw("10.0.0.1"),
			ignored: "classless static routes (option 121): route at byte 0: truncated: /24 needs 8 bytes, 6 left",
		},
		{
			name:    "prefix length 33",
			pkt:     pkt(3, 4, 10, 0, 0, 1, 121, 5, 0, 10, 0, 0, 254, 121, 6, 33, 1, 2, 3, 4, 5),
			router:  gw("10.0.0.1"),
			ignored: "classless static routes (option 121): route at byte 5: prefix length 33, want at most 32",
		},
		{
			name:    "destination bits beyond the prefix",
			pkt:     pkt(121, 7, 9, 10, 192, 10, 0, 0, 1),
			ignored: "classless static routes (option 121): route at byte 0: destination 10.192.0.0 has bits set beyond /9",
		},
		{
			name:    "loopback gateway",
			pkt:     pkt(3, 4, 10, 0, 0, 1, 121, 5, 0, 127, 0, 0, 1),
			router:  gw("10.0.0.1"),
			ignored: "classless static routes (option 121): route at byte 0: gateway 127.0.0.1: loopback address",
		},
		{
			name:    "broadcast gateway",
			pkt:     pkt(121, 5, 0, 255, 255, 255, 255),
			ignored: "classless static routes (option 121): route at byte 0: gateway 255.255.255.255: broadcast address",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Unmarshal(tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			l, err := m.Lease()
			if err != nil {
				t.Fatal(err)
			}
			if l.Router != tt.router {
				t.Errorf("router %v, want %v", l.Router, tt.router)
			}
			if diff := cmp.Diff(tt.routes, l.Routes, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if got := strings.Join(l.Ignored, "; "); got != tt.ignored {
				t.Errorf("ignored %q, want %q", got, tt.ignored)
			}
			if tt.wantLeaseLn != "" {
				if got := (Result{Interface: "eth0", Lease: l}).String(); got != tt.wantLeaseLn {
					t.Errorf("line %q, want %q", got, tt.wantLeaseLn)
				}
			}
		})
	}
}
