package netconf

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// parse decodes a request with the standard library's netlink parser,
// which knows nothing of how it was written.
func parse(t *testing.T, m *nlmsg, bodyLen int) (syscall.NlMsghdr, []byte, map[uint16][]byte) {
	t.Helper()
	b := m.bytes(42)
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ParseNetlinkMessage: %d messages, %v", len(msgs), err)
	}
	h := msgs[0].Header
	if int(h.Len) != len(b) || h.Seq != 42 || h.Flags&(unix.NLM_F_REQUEST|unix.NLM_F_ACK) != unix.NLM_F_REQUEST|unix.NLM_F_ACK {
		t.Errorf("header %+v (message of %d bytes)", h, len(b))
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(&msgs[0])
	if err != nil {
		t.Fatalf("ParseNetlinkRouteAttr: %v", err)
	}
	got := map[uint16][]byte{}
	for _, a := range attrs {
		got[a.Attr.Type] = a.Value
	}
	return h, msgs[0].Data[:bodyLen], got
}

func TestNetlinkMessages(t *testing.T) {
	u32 := func(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
	ip := func(s string) string { a := netip.MustParseAddr(s).As4(); return string(a[:]) }

	h, body, attrs := parse(t, linkMsg(3, 1400), unix.SizeofIfInfomsg)
	if h.Type != unix.RTM_NEWLINK || u32(body[4:]) != 3 || u32(body[8:]) != unix.IFF_UP || u32(body[12:]) != unix.IFF_UP {
		t.Errorf("link: type %d body %x", h.Type, body)
	}
	if len(attrs) != 1 || u32(attrs[unix.IFLA_MTU]) != 1400 {
		t.Errorf("link attributes %v, want IFLA_MTU 1400", attrs)
	}
	if _, _, attrs := parse(t, linkMsg(3, 0), unix.SizeofIfInfomsg); len(attrs) != 0 {
		t.Errorf("link without MTU has attributes %v", attrs)
	}

	h, body, attrs = parse(t, addrMsg(2, netip.MustParsePrefix("10.0.2.15/24"), unix.RT_SCOPE_UNIVERSE), unix.SizeofIfAddrmsg)
	if h.Type != unix.RTM_NEWADDR || h.Flags&(unix.NLM_F_CREATE|unix.NLM_F_REPLACE) == 0 ||
		body[0] != unix.AF_INET || body[1] != 24 || body[3] != unix.RT_SCOPE_UNIVERSE || u32(body[4:]) != 2 {
		t.Errorf("addr: header %+v body %x", h, body)
	}
	if string(attrs[unix.IFA_LOCAL]) != ip("10.0.2.15") || string(attrs[unix.IFA_ADDRESS]) != ip("10.0.2.15") ||
		string(attrs[unix.IFA_BROADCAST]) != ip("10.0.2.255") {
		t.Errorf("addr attributes %v", attrs)
	}
	if _, body, attrs := parse(t, addrMsg(1, netip.MustParsePrefix("127.0.0.1/8"), unix.RT_SCOPE_HOST), unix.SizeofIfAddrmsg); body[3] != unix.RT_SCOPE_HOST ||
		string(attrs[unix.IFA_BROADCAST]) != ip("127.255.255.255") {
		t.Errorf("lo addr: body %x attributes %v", body, attrs)
	}

	h, body, attrs = parse(t, routeMsg(2, netip.Prefix{}, netip.MustParseAddr("10.0.2.2")), unix.SizeofRtMsg)
	if h.Type != unix.RTM_NEWROUTE || body[0] != unix.AF_INET || body[1] != 0 || body[4] != unix.RT_TABLE_MAIN ||
		body[5] != unix.RTPROT_DHCP || body[6] != unix.RT_SCOPE_UNIVERSE || body[7] != unix.RTN_UNICAST {
		t.Errorf("default route: type %d body %x", h.Type, body)
	}
	if _, ok := attrs[unix.RTA_DST]; ok || string(attrs[unix.RTA_GATEWAY]) != ip("10.0.2.2") || u32(attrs[unix.RTA_OIF]) != 2 {
		t.Errorf("default route attributes %v", attrs)
	}
	_, body, attrs = parse(t, routeMsg(2, netip.MustParsePrefix("192.0.2.1/32"), netip.Addr{}), unix.SizeofRtMsg)
	if body[1] != 32 || body[6] != unix.RT_SCOPE_LINK || string(attrs[unix.RTA_DST]) != ip("192.0.2.1") {
		t.Errorf("link route: body %x attributes %v", body, attrs)
	}
	if _, ok := attrs[unix.RTA_GATEWAY]; ok {
		t.Errorf("link route has a gateway")
	}
}

func TestWriteResolv(t *testing.T) {
	dir := t.TempDir()
	l := &Lease{DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3"), netip.MustParseAddr("1.1.1.1")}, Domain: "example.org"}
	want := ResolvMarker + "\n# DHCP on eth0\nsearch example.org\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"

	missing := filepath.Join(dir, "missing")
	ours := filepath.Join(dir, "ours")
	theirs := filepath.Join(dir, "theirs")
	link := filepath.Join(dir, "link")
	os.WriteFile(ours, []byte(ResolvMarker+"\nnameserver 192.0.2.1\n"), 0o644)
	os.WriteFile(theirs, []byte("nameserver 192.0.2.9\n"), 0o644)
	os.Symlink("nowhere", link)
	for path, wantContent := range map[string]string{
		missing: want,
		ours:    want,
		theirs:  "nameserver 192.0.2.9\n",
	} {
		if err := WriteResolv(path, "eth0", l); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != wantContent {
			t.Errorf("%s: %q (%v), want %q", filepath.Base(path), b, err, wantContent)
		}
	}
	if err := WriteResolv(link, "eth0", l); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != "nowhere" {
		t.Errorf("symlink replaced: %q %v", target, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestEthernet(t *testing.T) {
	dir := t.TempDir()
	for name, f := range map[string]struct {
		typ    string
		device bool
	}{
		"eth0": {"1", true}, "enp1s0": {"1", true}, "br0": {"1", false}, "lo": {"772", false}, "wwan0": {"65534", true},
	} {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		os.WriteFile(filepath.Join(dir, name, "type"), []byte(f.typ+"\n"), 0o644)
		if f.device {
			os.Mkdir(filepath.Join(dir, name, "device"), 0o755)
		}
	}
	if got := strings.Join(Ethernet(dir), " "); got != "enp1s0 eth0" {
		t.Errorf("Ethernet = %q, want enp1s0 eth0", got)
	}
}
