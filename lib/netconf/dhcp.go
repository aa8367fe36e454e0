package netconf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DHCP message types (option 53).
const (
	Discover = 1
	Offer    = 2
	Request  = 3
	Decline  = 4
	Ack      = 5
	Nak      = 6
	Release  = 7
)

// DHCP option codes that the client sends or reads.
const (
	OptSubnetMask   = 1
	OptRouter       = 3
	OptDNS          = 6
	OptHostname     = 12
	OptDomainName   = 15
	OptMTU          = 26
	OptBroadcast    = 28
	OptRequestedIP  = 50
	OptLeaseTime    = 51
	OptMessageType  = 53
	OptServerID     = 54
	OptParamRequest = 55
	OptRenewalTime  = 58
	OptRebindTime   = 59
	// OptClasslessRoutes is option 121, classless static routes
	// (RFC 3442). When a valid one is present, option 3 is ignored, as
	// the RFC says: its default route (0.0.0.0/0), if any, is the router.
	OptClasslessRoutes = 121
	optPad             = 0
	optEnd             = 255
)

// flagBroadcast asks the server to broadcast its replies: the client
// has no address yet to receive unicast on.
const flagBroadcast = 0x8000

var magicCookie = [4]byte{99, 130, 83, 99}

// headerLen is the fixed part of a DHCP message up to the options,
// magic cookie included.
const headerLen = 240

// Option is one DHCP option.
type Option struct {
	Code byte
	Data []byte
}

// Message is a DHCPv4 message (RFC 2131), the parts a client uses.
type Message struct {
	Op        byte // 1 request, 2 reply
	XID       uint32
	Secs      uint16
	Broadcast bool // the BROADCAST flag
	CIAddr    netip.Addr
	YIAddr    netip.Addr
	SIAddr    netip.Addr
	GIAddr    netip.Addr
	CHAddr    net.HardwareAddr
	Options   []Option // in order; repeated codes are concatenated when read
}

// Option returns the data of option code, or nil.
func (m *Message) Option(code byte) []byte {
	for _, o := range m.Options {
		if o.Code == code {
			return o.Data
		}
	}
	return nil
}

// Type returns the message type (option 53), 0 if missing.
func (m *Message) Type() byte {
	if d := m.Option(OptMessageType); len(d) == 1 {
		return d[0]
	}
	return 0
}

func addr4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

// Marshal encodes m, padded to the 300 bytes of a BOOTP message that
// some servers insist on.
func (m *Message) Marshal() ([]byte, error) {
	if len(m.CHAddr) > 16 {
		return nil, fmt.Errorf("dhcp: hardware address %v longer than 16 bytes", m.CHAddr)
	}
	b := make([]byte, headerLen, 300)
	b[0] = m.Op
	b[1] = 1 // Ethernet
	b[2] = byte(len(m.CHAddr))
	binary.BigEndian.PutUint32(b[4:], m.XID)
	binary.BigEndian.PutUint16(b[8:], m.Secs)
	if m.Broadcast {
		binary.BigEndian.PutUint16(b[10:], flagBroadcast)
	}
	for i, a := range []netip.Addr{m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr} {
		a4 := addr4(a)
		copy(b[12+4*i:], a4[:])
	}
	copy(b[28:44], m.CHAddr)
	copy(b[236:240], magicCookie[:])
	for _, o := range m.Options {
		if o.Code == optPad || o.Code == optEnd {
			return nil, fmt.Errorf("dhcp: option %d cannot carry data", o.Code)
		}
		data := o.Data
		for first := true; first || len(data) > 0; first = false {
			n := min(len(data), 255) // longer data is split (RFC 3396)
			b = append(b, o.Code, byte(n))
			b = append(b, data[:n]...)
			data = data[n:]
		}
	}
	b = append(b, optEnd)
	for len(b) < 300 {
		b = append(b, optPad)
	}
	return b, nil
}

var errShort = errors.New("dhcp: message too short")

// Unmarshal decodes a DHCP message.
func Unmarshal(b []byte) (*Message, error) {
	if len(b) < headerLen {
		return nil, errShort
	}
	if [4]byte(b[236:240]) != magicCookie {
		return nil, errors.New("dhcp: no magic cookie")
	}
	hlen := int(b[2])
	if hlen > 16 {
		return nil, fmt.Errorf("dhcp: hardware address length %d", hlen)
	}
	m := &Message{
		Op:        b[0],
		XID:       binary.BigEndian.Uint32(b[4:]),
		Secs:      binary.BigEndian.Uint16(b[8:]),
		Broadcast: binary.BigEndian.Uint16(b[10:])&flagBroadcast != 0,
		CIAddr:    netip.AddrFrom4([4]byte(b[12:16])),
		YIAddr:    netip.AddrFrom4([4]byte(b[16:20])),
		SIAddr:    netip.AddrFrom4([4]byte(b[20:24])),
		GIAddr:    netip.AddrFrom4([4]byte(b[24:28])),
		CHAddr:    net.HardwareAddr(append([]byte(nil), b[28:28+hlen]...)),
	}
	opts := b[headerLen:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return nil, fmt.Errorf("dhcp: option %d truncated", code)
		}
		data := opts[2 : 2+int(opts[1])]
		opts = opts[2+int(opts[1]):]
		found := false
		for i := range m.Options {
			if m.Options[i].Code == code { // RFC 3396: concatenate
				m.Options[i].Data = append(m.Options[i].Data, data...)
				found = true
			}
		}
		if !found {
			m.Options = append(m.Options, Option{code, append([]byte(nil), data...)})
		}
	}
	return m, nil
}

// Lease is what a DHCPACK configures.
type Lease struct {
	Addr netip.Prefix // yiaddr with the subnet mask (option 1)
	// Router is the gateway of the default route: from option 121 if
	// that is present and valid, else the first router of option 3;
	// invalid if none.
	Router netip.Addr
	// Routes are the other routes of option 121 (RFC 3442), in the
	// server's order; a default route on the link (gateway 0.0.0.0) is
	// one of them.
	Routes   []Route
	DNS      []netip.Addr  // option 6
	Domain   string        // option 15
	MTU      int           // option 26, 0 if not given
	Duration time.Duration // option 51; 0 if not given
	Renew    time.Duration // T1, option 58; 0 if not given
	Rebind   time.Duration // T2, option 59; 0 if not given
	Server   netip.Addr    // option 54
	// Ignored says which options were dropped as invalid, e.g.
	// `domain "lan\noptions ndots:15": not a DNS name`; Result.String
	// logs them.
	Ignored []string
}

// infinite is the lease time that never ends (0xffffffff s).
const infinite = 0xffffffff * time.Second

// times returns when to renew (T1: option 58, else half the lease) and
// rebind (T2: option 59, else 7/8 of it), after the lease began.
func (l *Lease) times() (t1, t2 time.Duration) {
	t1, t2 = l.Renew, l.Rebind
	if t1 <= 0 || t1 >= l.Duration {
		t1 = l.Duration / 2
	}
	if t2 <= t1 || t2 >= l.Duration {
		t2 = l.Duration / 8 * 7 // not *7/8: a lease of decades overflows
	}
	return t1, t2
}

// Lease reads the lease an ACK (or OFFER) carries.
func (m *Message) Lease() (*Lease, error) {
	if !m.YIAddr.Is4() || m.YIAddr.IsUnspecified() {
		return nil, errors.New("dhcp: no address offered")
	}
	l := &Lease{}
	var bits int
	if d := m.Option(OptSubnetMask); len(d) == 4 {
		ones, size := net.IPMask(d).Size()
		if size == 0 {
			return nil, fmt.Errorf("dhcp: subnet mask %v is not a prefix", net.IP(d))
		}
		bits = ones
	} else if m.YIAddr.As4()[0] < 128 { // classful default, as RFC 2132 allows
		bits = 8
	} else if m.YIAddr.As4()[0] < 192 {
		bits = 16
	} else {
		bits = 24
	}
	l.Addr = netip.PrefixFrom(m.YIAddr, bits)
	addrs := func(d []byte) []netip.Addr {
		var as []netip.Addr
		for ; len(d) >= 4; d = d[4:] {
			as = append(as, netip.AddrFrom4([4]byte(d[:4])))
		}
		return as
	}
	classless := false
	if d := m.Option(OptClasslessRoutes); d != nil {
		routes, err := ParseClasslessRoutes(d)
		if err != nil {
			l.Ignored = append(l.Ignored, fmt.Sprintf("classless static routes (option 121): %v", err))
		} else {
			classless = true
			haveDefault := false
			for _, r := range routes {
				switch {
				case r.Dst.Bits() == 0 && haveDefault:
					l.Ignored = append(l.Ignored, fmt.Sprintf("route %s: a second default route", r))
				case r.Dst.Bits() == 0 && !r.Gateway.IsUnspecified():
					haveDefault = true
					l.Router = r.Gateway
				default:
					haveDefault = haveDefault || r.Dst.Bits() == 0
					l.Routes = append(l.Routes, r)
				}
			}
		}
	}
	if r := addrs(m.Option(OptRouter)); len(r) > 0 && !classless {
		l.Router = r[0]
	}
	for _, a := range addrs(m.Option(OptDNS)) {
		if err := checkDNSServer(a); err != nil {
			l.Ignored = append(l.Ignored, fmt.Sprintf("dns server %s: %v", a, err))
			continue
		}
		l.DNS = append(l.DNS, a)
	}
	if d := m.Option(OptDNS); len(d)%4 != 0 {
		l.Ignored = append(l.Ignored, fmt.Sprintf("dns servers: %d trailing bytes", len(d)%4))
	}
	if d := m.Option(OptDomainName); d != nil {
		// Some servers NUL-terminate the name (RFC 2132 says not to).
		name := strings.TrimSuffix(string(d), "\x00")
		if err := checkDomain(name); err != nil {
			l.Ignored = append(l.Ignored, fmt.Sprintf("domain %q: %v", name, err))
		} else {
			l.Domain = name
		}
	}
	if d := m.Option(OptMTU); len(d) == 2 {
		if mtu := int(binary.BigEndian.Uint16(d)); mtu >= 68 {
			l.MTU = mtu
		}
	}
	if d := m.Option(OptLeaseTime); len(d) == 4 {
		l.Duration = time.Duration(binary.BigEndian.Uint32(d)) * time.Second
	}
	if d := m.Option(OptRenewalTime); len(d) == 4 {
		l.Renew = time.Duration(binary.BigEndian.Uint32(d)) * time.Second
	}
	if d := m.Option(OptRebindTime); len(d) == 4 {
		l.Rebind = time.Duration(binary.BigEndian.Uint32(d)) * time.Second
	}
	if s := addrs(m.Option(OptServerID)); len(s) > 0 {
		l.Server = s[0]
	}
	return l, nil
}

// Route is a static route of option 121.
type Route struct {
	Dst     netip.Prefix // masked: no bits set beyond its length
	Gateway netip.Addr   // 0.0.0.0: the destination is on the link
}

func (r Route) String() string {
	if r.Gateway.IsUnspecified() {
		return r.Dst.String() + " on link"
	}
	return r.Dst.String() + " via " + r.Gateway.String()
}

// ParseClasslessRoutes decodes the data of option 121 (RFC 3442): a
// list of routes, each a prefix length (0 to 32), the significant
// octets of the destination (length/8 rounded up) and a 4-byte
// gateway. Any malformed byte makes the whole option invalid (the RFC
// gives no way to resynchronise): a prefix length over 32, a truncated
// route, destination bits beyond the prefix length, or a gateway that
// cannot be a router (multicast, broadcast, loopback).
func ParseClasslessRoutes(d []byte) ([]Route, error) {
	var routes []Route
	for off := 0; off < len(d); {
		bits := int(d[off])
		if bits > 32 {
			return nil, fmt.Errorf("route at byte %d: prefix length %d, want at most 32", off, bits)
		}
		n := (bits + 7) / 8
		if len(d)-off-1 < n+4 {
			return nil, fmt.Errorf("route at byte %d: truncated: /%d needs %d bytes, %d left", off, bits, 1+n+4, len(d)-off)
		}
		var dst [4]byte
		copy(dst[:], d[off+1:off+1+n])
		p := netip.PrefixFrom(netip.AddrFrom4(dst), bits)
		if p.Masked() != p {
			return nil, fmt.Errorf("route at byte %d: destination %s has bits set beyond /%d", off, p.Addr(), bits)
		}
		gw := netip.AddrFrom4([4]byte(d[off+1+n : off+1+n+4]))
		if !gw.IsUnspecified() {
			if err := checkRouter(gw); err != nil {
				return nil, fmt.Errorf("route at byte %d: gateway %s: %v", off, gw, err)
			}
		}
		routes = append(routes, Route{Dst: p, Gateway: gw})
		off += 1 + n + 4
	}
	return routes, nil
}

// checkRouter reports whether a may be a gateway: a unicast address
// other than broadcast and loopback (0.0.0.0 means "on the link" and is
// checked by the caller).
func checkRouter(a netip.Addr) error {
	switch {
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("broadcast address")
	case a.IsMulticast():
		return errors.New("multicast address")
	case a.IsLoopback():
		return errors.New("loopback address")
	}
	return nil
}

// checkDomain reports whether name is a DNS name that may go on a
// resolv.conf "search" line: labels of letters, digits and hyphens
// (RFC 1123 host names, which allow a leading digit), 1 to 63 bytes,
// not beginning or ending with a hyphen; at most 253 bytes in all; one
// trailing dot allowed. A DHCP server (or anyone on the link who answers
// first) sends it; written unchecked, "lan\nnameserver 6.6.6.6" adds a
// resolver and "lan options ndots:15" changes the resolver's options.
func checkDomain(name string) error {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("not a DNS name: %d bytes, want 1 to 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("not a DNS name: a label of %d bytes, want 1 to 63", len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("not a DNS name: label %q begins or ends with a hyphen", label)
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("not a DNS name: byte %q", c)
			}
		}
	}
	return nil
}

// checkDNSServer reports whether a may be a resolver: a unicast address
// other than 0.0.0.0, broadcast and loopback (a server on the network
// cannot know what listens on our loopback).
func checkDNSServer(a netip.Addr) error {
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return errors.New("unspecified address")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("broadcast address")
	case a.IsMulticast():
		return errors.New("multicast address")
	case a.IsLoopback():
		return errors.New("loopback address")
	}
	return nil
}
