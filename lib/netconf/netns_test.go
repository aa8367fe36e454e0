package netconf

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/distritest"
)

// TestNetns runs testNetns in a new network namespace: the test binary
// again, as a child cloned with CLONE_NEWNET (root only).
func TestNetns(t *testing.T) {
	if os.Getenv("NETCONF_TEST_NETNS") == "1" {
		testNetns(t)
		return
	}
	distritest.NeedRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNetns$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "NETCONF_TEST_NETNS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// veth creates the pair of interfaces name and peer (RTM_NEWLINK with
// a veth link info).
func veth(t *testing.T, nl *rtnl, name, peer string) {
	t.Helper()
	peerInfo := &nlmsg{}
	peerInfo.attr(unix.IFLA_IFNAME, append([]byte(peer), 0))
	data := &nlmsg{}
	data.attr(1 /* VETH_INFO_PEER */, append(make([]byte, unix.SizeofIfInfomsg), peerInfo.attrs...))
	info := &nlmsg{}
	info.attr(unix.IFLA_INFO_KIND, []byte("veth"))
	info.attr(unix.IFLA_INFO_DATA, data.attrs)
	m := &nlmsg{typ: unix.RTM_NEWLINK, flags: unix.NLM_F_CREATE | unix.NLM_F_EXCL, body: make([]byte, unix.SizeofIfInfomsg)}
	m.attr(unix.IFLA_IFNAME, append([]byte(name), 0))
	m.attr(unix.IFLA_LINKINFO, info.attrs)
	if err := nl.do(m); err != nil {
		t.Fatalf("create veth %s/%s: %v", name, peer, err)
	}
}

func index(t *testing.T, name string) int {
	t.Helper()
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifc.Index
}

// server answers DHCP on ifname as a server at 192.0.2.1 would, leasing
// 192.0.2.50; it ignores the first DISCOVER, so the client must send it
// again.
func server(t *testing.T, ifname string) {
	conn, err := dhcpSocketPort(ifname, 67)
	if err != nil {
		t.Error(err)
		return
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		discovers := 0
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := Unmarshal(buf[:n])
			if err != nil || req.Op != 1 {
				continue
			}
			if !req.Broadcast || len(req.Option(OptParamRequest)) == 0 {
				t.Errorf("request without BROADCAST flag or parameter list: %+v", req)
			}
			var typ byte
			switch req.Type() {
			case Discover:
				if discovers++; discovers == 1 {
					continue
				}
				typ = Offer
			case Request:
				if got := req.Option(OptRequestedIP); string(got) != "\xc0\x00\x02\x32" {
					t.Errorf("REQUEST for %v, want 192.0.2.50", got)
				}
				typ = Ack
			default:
				continue
			}
			reply := &Message{Op: 2, XID: req.XID, Broadcast: true, CHAddr: req.CHAddr,
				YIAddr: netip.MustParseAddr("192.0.2.50"), SIAddr: netip.MustParseAddr("192.0.2.1"),
				Options: []Option{{OptMessageType, []byte{typ}}, {OptServerID, []byte{192, 0, 2, 1}},
					{OptSubnetMask, []byte{255, 255, 255, 0}}, {OptRouter, []byte{192, 0, 2, 1}},
					{OptDNS, []byte{192, 0, 2, 53}}, {OptMTU, []byte{0x05, 0x78}}, {OptLeaseTime, []byte{0, 0, 0x0e, 0x10}}}}
			b, _ := reply.Marshal()
			conn.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		}
	}()
}

func testNetns(t *testing.T) {
	// lo: up with 127.0.0.1, which a fresh namespace lacks.
	if err := Loopback(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("after Loopback: %v", err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("after Loopback: %v", err)
	}
	c.Close()
	ln.Close()

	nl, err := openRtnl()
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	veth(t, nl, "dhc0", "dhs0")
	veth(t, nl, "dhc1", "dhs1")
	for _, n := range []string{"dhs0", "dhs1"} {
		if err := nl.do(linkMsg(index(t, n), 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nl.do(addrMsg(index(t, "dhs0"), netip.MustParsePrefix("192.0.2.1/24"), unix.RT_SCOPE_UNIVERSE)); err != nil {
		t.Fatal(err)
	}
	server(t, "dhs0")
	// Both ends are in this namespace, so both see the other's packets
	// come from a local address (the server's 192.0.2.1; and the
	// client's DISCOVER, as the kernel picks that address of another
	// interface as the source while dhc0 has none): accept that. And no
	// reverse path filter, as in a distri system (the kernel's default):
	// with a strict one, a broadcast from a source the interface has no
	// route to yet would be dropped.
	for _, p := range []string{"conf/dhc0/accept_local", "conf/dhs0/accept_local", "conf/dhc0/rp_filter", "conf/dhs0/rp_filter", "conf/all/rp_filter"} {
		v := "0\n"
		if strings.HasSuffix(p, "accept_local") {
			v = "1\n"
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/"+p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	r := configure(ctx, "dhc0", 5*time.Second)
	t.Logf("%s", r)
	if r.Err != nil || r.Lease == nil {
		t.Fatalf("dhc0: %v", r.Err)
	}
	if !strings.HasPrefix(r.String(), "network dhc0: 192.0.2.50/24 via 192.0.2.1, dns 192.0.2.53, mtu 1400 (dhcp, ") {
		t.Errorf("line %q", r)
	}
	if r.Took < 400*time.Millisecond {
		t.Errorf("took %v: the first DISCOVER was ignored, so it was sent again after 0.5 s", r.Took)
	}
	ifc, err := net.InterfaceByName("dhc0")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := ifc.Addrs()
	var addrs []string
	for _, a := range all {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			addrs = append(addrs, a.String())
		}
	}
	if len(addrs) != 1 || addrs[0] != "192.0.2.50/24" || ifc.MTU != 1400 || ifc.Flags&net.FlagUp == 0 {
		t.Errorf("dhc0: IPv4 addresses %v, MTU %d, flags %v; want 192.0.2.50/24, 1400, up", addrs, ifc.MTU, ifc.Flags)
	}
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	// Iface Destination Gateway …, little-endian hex: 192.0.2.1 is 010200C0.
	if !strings.Contains(string(routes), "dhc0\t00000000\t010200C0\t") {
		t.Errorf("no default route via 192.0.2.1 on dhc0:\n%s", routes)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := WriteResolv(resolv, "dhc0", r.Lease); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(resolv); !strings.Contains(string(b), "nameserver 192.0.2.53\n") {
		t.Errorf("resolv.conf: %q", b)
	}

	// No server on dhc1: FAILED once the time is up.
	start := time.Now()
	r = configure(ctx, "dhc1", 1500*time.Millisecond)
	t.Logf("%s", r)
	if r.Lease != nil || !strings.HasPrefix(r.String(), "FAILED: network dhc1: no DHCP lease after 1.5s: no answer to DHCP") {
		t.Errorf("dhc1 without a server: %q", r)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("gave up after %v, want 1.5 s", took)
	}
}
