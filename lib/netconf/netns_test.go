package netconf

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// netnsThread runs functions on one OS thread in another new network
// namespace: the server's side of the veth pairs. Sockets made there
// stay in it, whichever thread uses them later.
type netnsThread struct {
	do chan func()
	fd int // the namespace, for IFLA_NET_NS_FD
}

func newNetnsThread(t *testing.T) *netnsThread {
	n := &netnsThread{do: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- err
			return
		}
		var err error
		n.fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		ready <- err
		for f := range n.do {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("new network namespace: %v", err)
	}
	t.Cleanup(func() { close(n.do); unix.Close(n.fd) })
	return n
}

func (n *netnsThread) run(f func()) {
	done := make(chan struct{})
	n.do <- func() { f(); close(done) }
	<-done
}

// veth creates the pair of interfaces name, here, and peer, in the
// namespace peerNs (RTM_NEWLINK with a veth link info).
func veth(t *testing.T, nl *rtnl, name, peer string, peerNs int) {
	t.Helper()
	peerInfo := &nlmsg{}
	peerInfo.attr(unix.IFLA_IFNAME, append([]byte(peer), 0))
	peerInfo.attrU32(unix.IFLA_NET_NS_FD, uint32(peerNs))
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

// dhcpServer answers DHCP as a server at 192.0.2.1 would, leasing
// 192.0.2.50 for 2 s; it ignores the first DISCOVER, so the client must
// send it again.
type dhcpServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	// renewals are the REQUESTs with a ciaddr: who sent them, how.
	renewals []string
}

func (s *dhcpServer) serve(t *testing.T) {
	buf := make([]byte, 1500)
	discovers := 0
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := Unmarshal(buf[:n])
		if err != nil || req.Op != 1 {
			continue
		}
		if len(req.Option(OptParamRequest)) == 0 {
			t.Errorf("request without parameter list: %+v", req)
		}
		to := &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
		var typ byte
		switch {
		case req.Type() == Discover:
			if discovers++; discovers == 1 {
				continue
			}
			typ = Offer
		case req.Type() == Request && !req.CIAddr.IsUnspecified():
			s.mu.Lock()
			s.renewals = append(s.renewals, fmt.Sprintf("from %v ciaddr %v broadcast %v options 50 %v 54 %v",
				from, req.CIAddr, req.Broadcast, req.Option(OptRequestedIP), req.Option(OptServerID)))
			s.mu.Unlock()
			to = from.(*net.UDPAddr)
			typ = Ack
		case req.Type() == Request:
			if !req.Broadcast {
				t.Errorf("REQUEST without BROADCAST flag")
			}
			if got := req.Option(OptRequestedIP); string(got) != "\xc0\x00\x02\x32" {
				t.Errorf("REQUEST for %v, want 192.0.2.50", got)
			}
			typ = Ack
		default:
			continue
		}
		reply := &Message{Op: 2, XID: req.XID, Broadcast: req.Broadcast, CHAddr: req.CHAddr,
			YIAddr: netip.MustParseAddr("192.0.2.50"), SIAddr: netip.MustParseAddr("192.0.2.1"),
			Options: []Option{{OptMessageType, []byte{typ}}, {OptServerID, []byte{192, 0, 2, 1}},
				{OptSubnetMask, []byte{255, 255, 255, 0}}, {OptRouter, []byte{192, 0, 2, 1}},
				{OptDNS, []byte{192, 0, 2, 53}}, {OptMTU, []byte{0x05, 0x78}}, {OptLeaseTime, []byte{0, 0, 0, 2}}}}
		// A hostile server: a domain that would add resolv.conf lines,
		// DNS servers that are no servers.
		reply.Options = append(reply.Options, Option{OptDomainName, []byte(hostileDomain)})
		for i, o := range reply.Options {
			if o.Code == OptDNS {
				reply.Options[i].Data = []byte{0, 0, 0, 0, 192, 0, 2, 53, 255, 255, 255, 255, 127, 0, 0, 1}
			}
		}
		b, _ := reply.Marshal()
		if _, err := s.conn.WriteTo(b, to); err != nil {
			t.Errorf("server: send to %v: %v", to, err)
		}
	}
}

// hostileDomain is the domain option of the test server.
const hostileDomain = "lan\nnameserver 6.6.6.6\noptions ndots:15 rotate"

func (s *dhcpServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.renewals...)
}

// ipv4 returns the IPv4 addresses of an interface.
func ipv4(t *testing.T, name string) []string {
	ifc, err := net.InterfaceByName(name)
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
	return addrs
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
	srvNs := newNetnsThread(t)
	veth(t, nl, "dhc0", "dhs0", srvNs.fd)
	veth(t, nl, "dhc1", "dhs1", srvNs.fd)
	veth(t, nl, "dhc2", "dhs2", srvNs.fd)
	// No reverse path filter, as in a distri system (the kernel's
	// default): a strict or loose one drops the server's broadcast from
	// a source the interface has no route to yet.
	for _, p := range []string{"all", "default", "dhc0", "dhc1", "dhc2"} {
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+p+"/rp_filter", []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := &dhcpServer{}
	var classlessConn net.PacketConn
	srvNs.run(func() {
		snl, err := openRtnl()
		if err != nil {
			t.Error(err)
			return
		}
		defer snl.Close()
		for _, n := range []string{"dhs0", "dhs1", "dhs2"} {
			if err := snl.do(linkMsg(index(t, n), 0)); err != nil {
				t.Error(err)
			}
		}
		if err := snl.do(addrMsg(index(t, "dhs0"), netip.MustParsePrefix("192.0.2.1/24"), unix.RT_SCOPE_UNIVERSE)); err != nil {
			t.Error(err)
		}
		if srv.conn, err = dhcpSocketPort("dhs0", 67); err != nil {
			t.Error(err)
		}
		if err := snl.do(addrMsg(index(t, "dhs2"), netip.MustParsePrefix("198.51.100.1/24"), unix.RT_SCOPE_UNIVERSE)); err != nil {
			t.Error(err)
		}
		if classlessConn, err = dhcpSocketPort("dhs2", 67); err != nil {
			t.Error(err)
		}
	})
	if classlessConn != nil {
		defer classlessConn.Close()
		go serveClassless(classlessConn)
	}
	if srv.conn == nil {
		t.FailNow()
	}
	go srv.serve(t)
	defer srv.conn.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// No server on dhc1: FAILED once the time is up.
	start := time.Now()
	r := configure(ctx, "dhc1", 1500*time.Millisecond)
	t.Logf("%s", r)
	if r.Lease != nil || !strings.HasPrefix(r.String(), "FAILED: network dhc1: no DHCP lease after 1.5s: no answer to DHCP") {
		t.Errorf("dhc1 without a server: %q", r)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("gave up after %v, want 1.5 s", took)
	}

	r = configure(ctx, "dhc0", 5*time.Second)
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
	if addrs := ipv4(t, "dhc0"); len(addrs) != 1 || addrs[0] != "192.0.2.50/24" || ifc.MTU != 1400 || ifc.Flags&net.FlagUp == 0 {
		t.Errorf("dhc0: IPv4 addresses %v, MTU %d, flags %v; want 192.0.2.50/24, 1400, up", addrs, ifc.MTU, ifc.Flags)
	}
	// thread-self: the main thread may be the server namespace's.
	routes, err := os.ReadFile("/proc/thread-self/net/route")
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
	if b, _ := os.ReadFile(resolv); string(b) != ResolvMarker+"\n# DHCP on dhc0\nnameserver 192.0.2.53\n" {
		t.Errorf("resolv.conf from a hostile server: %q, want only nameserver 192.0.2.53", b)
	}
	for _, want := range []string{`ignored invalid dns server 0.0.0.0: unspecified address`, `domain "lan\nnameserver 6.6.6.6\noptions ndots:15 rotate": not a DNS name`} {
		if !strings.Contains(r.String(), want) {
			t.Errorf("line %q does not say %q", r, want)
		}
	}

	// The lease is for 2 s: renewed by unicast after 1 s. Then the server
	// goes away, and the lease ends after another 2 s: the address goes.
	var mu sync.Mutex
	var logged []string
	go maintain(ctx, r, time.Second, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf(format, args...))
	})
	deadline := time.Now().Add(3 * time.Second)
	for len(srv.seen()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if seen := srv.seen(); len(seen) == 0 {
		t.Fatalf("no renewal within 3 s of a 2 s lease")
	} else if want := "from 192.0.2.50:68 ciaddr 192.0.2.50 broadcast false options 50 [] 54 []"; seen[0] != want {
		t.Errorf("renewal %s, want %s", seen[0], want)
	}
	srv.conn.Close()
	deadline = time.Now().Add(4 * time.Second)
	for len(ipv4(t, "dhc0")) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if addrs := ipv4(t, "dhc0"); len(addrs) > 0 {
		t.Errorf("dhc0 still has %v after its lease ended", addrs)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("logged: %q", logged)
	if len(logged) == 0 || !strings.HasPrefix(logged[0], "FAILED: network dhc0: lease of 192.0.2.50/24 ended: no answer to DHCP") {
		t.Errorf("logged %q, want a FAILED line for the ended lease", logged)
	}

	// A server that sends its routes only as option 121 (and a decoy
	// router in option 3, which RFC 3442 says to ignore): the default
	// route and the static ones are configured, a gateway outside the
	// subnet reached through an on-link route of the same option.
	r = configure(context.Background(), "dhc2", 5*time.Second)
	t.Logf("%s", r)
	if r.Err != nil || r.Lease == nil {
		t.Fatalf("dhc2: %v", r.Err)
	}
	if want := "network dhc2: 198.51.100.50/24 via 198.51.100.1, route 10.9.0.0/16 on link, route 192.168.50.0/24 via 10.9.0.1, route 203.0.113.0/24 via 198.51.100.254 (dhcp, "; !strings.HasPrefix(r.String(), want) {
		t.Errorf("line %q, want %q…", r, want)
	}
	got := kernelRoutes(t, "dhc2")
	for _, want := range []string{
		"0.0.0.0/0 via 198.51.100.1",
		"10.9.0.0/16 on link",
		"192.168.50.0/24 via 10.9.0.1",
		"203.0.113.0/24 via 198.51.100.254",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("dhc2: no route %s in the kernel's table: %q", want, got)
		}
	}
	if slices.ContainsFunc(got, func(r string) bool { return strings.Contains(r, "198.51.100.99") }) {
		t.Errorf("dhc2: a route through option 3's router, which option 121 overrides: %q", got)
	}
}

// serveClassless answers DHCP on conn as a server at 198.51.100.1 that
// gives its routes only as option 121, leasing 198.51.100.50/24 for
// ever; its option 3 names a router that must not be used.
func serveClassless(conn net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := Unmarshal(buf[:n])
		if err != nil || req.Op != 1 {
			continue
		}
		typ := byte(Offer)
		if req.Type() == Request {
			typ = Ack
		} else if req.Type() != Discover {
			continue
		}
		reply := &Message{Op: 2, XID: req.XID, Broadcast: req.Broadcast, CHAddr: req.CHAddr,
			YIAddr: netip.MustParseAddr("198.51.100.50"), SIAddr: netip.MustParseAddr("198.51.100.1"),
			Options: []Option{{OptMessageType, []byte{typ}}, {OptServerID, []byte{198, 51, 100, 1}},
				{OptSubnetMask, []byte{255, 255, 255, 0}}, {OptLeaseTime, []byte{255, 255, 255, 255}},
				{OptRouter, []byte{198, 51, 100, 99}},
				{OptClasslessRoutes, []byte{
					0, 198, 51, 100, 1, // default
					16, 10, 9, 0, 0, 0, 0, // 10.9.0.0/16 on the link
					24, 192, 168, 50, 10, 9, 0, 1, // through a gateway on that link
					24, 203, 0, 113, 198, 51, 100, 254,
				}}}}
		b, _ := reply.Marshal()
		conn.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
	}
}

// kernelRoutes returns the IPv4 routes of an interface in the main
// table, as "dst/bits via gw" or "dst/bits on link", from
// /proc/thread-self/net/route (the main thread may be the server
// namespace's).
func kernelRoutes(t *testing.T, name string) []string {
	b, err := os.ReadFile("/proc/thread-self/net/route")
	if err != nil {
		t.Fatal(err)
	}
	addr := func(hex string) netip.Addr {
		v, err := strconv.ParseUint(hex, 16, 32)
		if err != nil {
			t.Fatalf("route table: %q: %v", hex, err)
		}
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], uint32(v))
		return netip.AddrFrom4(a)
	}
	var routes []string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != name {
			continue
		}
		mask := addr(f[7]).As4()
		bits, _ := net.IPMask(mask[:]).Size()
		r := netip.PrefixFrom(addr(f[1]), bits).String()
		if gw := addr(f[2]); gw.IsUnspecified() {
			r += " on link"
		} else {
			r += " via " + gw.String()
		}
		routes = append(routes, r)
	}
	return routes
}
