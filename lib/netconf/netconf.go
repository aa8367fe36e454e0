// Package netconf brings up the network of a booted system without
// any daemon: the loopback interface, and a lease from DHCPv4 on each
// Ethernet interface, configured with rtnetlink.
//
// # What it does
//
//   - lo: up, 127.0.0.1/8.
//   - Ethernet interfaces: those in /sys/class/net with type 1 (ARPHRD_ETHER)
//     and a device link (hardware, or a virtio device; bridges, veths,
//     bonds and other virtual interfaces have none). Each is set up and
//     asks for a lease at the same time: DISCOVER, OFFER, REQUEST, ACK
//     over a UDP socket bound to 0.0.0.0:68 with SO_BINDTODEVICE and
//     SO_BROADCAST, the BROADCAST flag set (the interface has no address
//     to receive unicast on), a random transaction ID. A message is
//     sent again after 0.5 s, 1 s, 2 s, 4 s, 4 s… until [Options.Timeout]
//     (default 8 s) ends the attempt; then the interface is FAILED and
//     left up without an address.
//   - From the ACK: the address with its subnet mask (option 1), the
//     default route through the first router (option 3; a router outside
//     the subnet gets a link route first), or, when the server sends
//     classless static routes (option 121, RFC 3442), those routes and
//     their default route instead of option 3's, as the RFC asks (a
//     malformed option 121 is ignored as a whole, named on the console
//     line, and option 3 used), the MTU (option 26), and the
//     DNS servers (6) and domain (15) in /etc/resolv.conf. Anyone on the
//     link may answer, so the domain must be a DNS name (RFC 1123
//     labels) and the servers unicast addresses; invalid ones are
//     dropped and named on the lease's console line (Lease.Ignored), so
//     that a domain cannot smuggle "nameserver" or "options" lines in.
//   - /etc/resolv.conf is written (atomically: a temporary file renamed)
//     only if it is missing or its first line is [ResolvMarker], which
//     it writes: a file someone else wrote is never replaced. With
//     several interfaces the first lease with DNS servers writes it.
//
// A UDP socket instead of a packet socket keeps the client small, at two
// costs: the DISCOVER's source address is the kernel's pick, 0.0.0.0
// unless another interface has an address already (servers answer by
// the BROADCAST flag and the hardware address either way), and the
// server's broadcast reply is only accepted with the reverse path filter
// off (rp_filter 0, the kernel's default, which a distri system keeps).
//
// # Renewal
//
// A lease is renewed at T1 (option 58, else half the lease): a REQUEST
// unicast to the server until T2 (option 59, else 7/8 of the lease),
// then broadcast to any server until the lease ends, sent again after
// 4, 8, 16… s, at most every minute. A renewal that changes the address,
// router or MTU reconfigures the interface and logs a new line. A lease
// that ends unrenewed (or a NAK) is logged as FAILED, its address and
// routes removed, and a new lease asked for every minute. The address
// itself is configured without a lifetime: the renewal is what removes
// it.
//
// # Not done
//
// No IPv6 (the kernel's SLAAC works on its own when a router
// advertises), no DHCP options beyond those above, no link carrier wait
// beyond the retries, no DHCPRELEASE at shutdown.
package netconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// ResolvMarker is the first line of a resolv.conf that netconf wrote
// and may replace.
const ResolvMarker = "# Written by distri-init from DHCP; remove this line to keep your changes."

// Options configure Up.
type Options struct {
	// Log gets one line per interface; nil means discard.
	Log *log.Logger
	// Timeout bounds the DHCP exchange of each interface; zero means 8 s.
	Timeout time.Duration
	// SysClassNet is where the interfaces are listed; empty means
	// /sys/class/net.
	SysClassNet string
	// Resolv is the resolver configuration written; empty means
	// /etc/resolv.conf.
	Resolv string
}

// Result is what Up configured on one interface.
type Result struct {
	Interface string
	Lease     *Lease // nil if it failed
	Err       error
	Took      time.Duration
	start     time.Time // when the lease was asked for
}

// String is the console line for r.
func (r Result) String() string {
	if r.Lease == nil {
		return fmt.Sprintf("FAILED: network %s: no DHCP lease after %s: %v", r.Interface, r.Took.Round(100*time.Millisecond), r.Err)
	}
	l := r.Lease
	s := fmt.Sprintf("network %s: %s", r.Interface, l.Addr)
	if l.Router.IsValid() {
		s += " via " + l.Router.String()
	}
	for _, r := range l.Routes {
		s += ", route " + r.String()
	}
	if len(l.DNS) > 0 {
		var d []string
		for _, a := range l.DNS {
			d = append(d, a.String())
		}
		s += ", dns " + strings.Join(d, " ")
	}
	if l.MTU > 0 {
		s += fmt.Sprintf(", mtu %d", l.MTU)
	}
	s += fmt.Sprintf(" (dhcp, %.1fs)", r.Took.Seconds())
	if len(l.Ignored) > 0 {
		s += "; ignored invalid " + strings.Join(l.Ignored, ", ")
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Loopback sets lo up with 127.0.0.1/8.
func Loopback() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	nl, err := openRtnl()
	if err != nil {
		return err
	}
	defer nl.Close()
	if err := nl.do(addrMsg(lo.Index, netip.MustParsePrefix("127.0.0.1/8"), unix.RT_SCOPE_HOST)); err != nil {
		return fmt.Errorf("lo: add 127.0.0.1/8: %w", err)
	}
	if err := nl.do(linkMsg(lo.Index, 0)); err != nil {
		return fmt.Errorf("lo: set up: %w", err)
	}
	return nil
}

// Ethernet returns the names of the Ethernet interfaces listed in
// sysClassNet (normally /sys/class/net) that are hardware: type 1 with a
// device link.
func Ethernet(sysClassNet string) []string {
	ents, _ := os.ReadDir(sysClassNet)
	var names []string
	for _, e := range ents {
		dir := filepath.Join(sysClassNet, e.Name())
		typ, err := os.ReadFile(filepath.Join(dir, "type"))
		if err != nil || strings.TrimSpace(string(typ)) != "1" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual: bridge, veth, bond, tap, …
		}
		names = append(names, e.Name())
	}
	return names
}

// Up configures lo and every Ethernet interface (see the package
// comment) and logs one line for each. It returns when every interface
// has a lease or gave up; the leases are renewed in the background
// until ctx is done.
func Up(ctx context.Context, opts Options) []Result {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log.Printf(format, args...)
		}
	}
	if opts.Timeout == 0 {
		opts.Timeout = 8 * time.Second
	}
	if opts.SysClassNet == "" {
		opts.SysClassNet = "/sys/class/net"
	}
	if opts.Resolv == "" {
		opts.Resolv = "/etc/resolv.conf"
	}
	if err := Loopback(); err != nil {
		logf("FAILED: network lo: %v", err)
	}
	names := Ethernet(opts.SysClassNet)
	if len(names) == 0 {
		logf("network: no Ethernet interface")
		return nil
	}
	results := make([]Result, len(names))
	var wg sync.WaitGroup
	var resolvOnce sync.Once
	for i, name := range names {
		wg.Go(func() {
			r := configure(ctx, name, opts.Timeout)
			if r.Lease != nil && len(r.Lease.DNS) > 0 {
				resolvOnce.Do(func() {
					if err := WriteResolv(opts.Resolv, name, r.Lease); err != nil {
						r.Err = errors.Join(r.Err, err)
					}
				})
			}
			results[i] = r
			logf("%s", r)
			if r.Lease != nil && r.Err == nil {
				go maintain(ctx, r, opts.Timeout, logf)
			}
		})
	}
	wg.Wait()
	return results
}

// configure sets one interface up, gets a lease and configures it.
func configure(ctx context.Context, name string, timeout time.Duration) Result {
	start := time.Now()
	r := Result{Interface: name, start: start}
	r.Lease, r.Err = lease(ctx, name, timeout)
	r.Took = time.Since(start)
	return r
}

// maintain keeps the lease r got: it renews it at T1 (see renew),
// reconfigures the interface if the server changes the lease, and when
// the lease ends unrenewed, removes the address and asks for a new lease
// (DISCOVER), every minute until it gets one. It returns when ctx is
// done, or at once for a lease without end (or without a lease time).
func maintain(ctx context.Context, r Result, timeout time.Duration, logf func(string, ...any)) {
	name, l, got := r.Interface, r.Lease, r.start
	for l.Duration > 0 && l.Duration < infinite {
		t1, t2 := l.times()
		if !sleep(ctx, time.Until(got.Add(t1))) {
			return
		}
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			logf("FAILED: network %s: lease not renewed: %v", name, err)
			return
		}
		asked := time.Now()
		nl, err := renew(ctx, name, ifc.HardwareAddr, l, got.Add(t2), got.Add(l.Duration))
		if ctx.Err() != nil {
			return
		}
		if err == nil && nl.Addr == l.Addr && nl.Router == l.Router && slices.Equal(nl.Routes, l.Routes) && nl.MTU == l.MTU {
			l, got = nl, asked
			continue
		}
		if err := unconfigure(ifc.Index, l); err != nil {
			logf("network %s: %v", name, err)
		}
		if err == nil { // a different lease: configure that
			r := Result{Interface: name, Lease: nl, start: asked}
			r.Err = applyLease(ifc.Index, nl)
			r.Took = time.Since(asked)
			logf("%s", r)
			l, got = nl, asked
			continue
		}
		logf("FAILED: network %s: lease of %s ended: %v; asking for a new one every minute", name, l.Addr, err)
		for {
			r := configure(ctx, name, timeout)
			if ctx.Err() != nil {
				return
			}
			if r.Lease != nil {
				logf("%s", r)
				l, got = r.Lease, r.start
				break
			}
			if !sleep(ctx, time.Minute) {
				return
			}
		}
	}
}

// unconfigure removes a lease's address (and with it its routes).
func unconfigure(index int, l *Lease) error {
	nl, err := openRtnl()
	if err != nil {
		return err
	}
	defer nl.Close()
	if err := nl.do(delAddrMsg(index, l.Addr)); err != nil {
		return fmt.Errorf("remove address %s: %w", l.Addr, err)
	}
	return nil
}

// applyLease configures l on the interface with a netlink socket of its
// own.
func applyLease(index int, l *Lease) error {
	nl, err := openRtnl()
	if err != nil {
		return err
	}
	defer nl.Close()
	return apply(nl, index, l)
}

func lease(ctx context.Context, name string, timeout time.Duration) (*Lease, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	nl, err := openRtnl()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	if err := nl.do(linkMsg(ifc.Index, 0)); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	conn, err := dhcpSocket(name)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &client{conn: conn, hw: ifc.HardwareAddr, start: time.Now(), retry: 500 * time.Millisecond}
	l, err := c.exchange(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer to DHCP (%s, tried for %s)", ifc.HardwareAddr, timeout)
	}
	if err != nil {
		return nil, err
	}
	return l, apply(nl, ifc.Index, l)
}

// apply configures a lease on the interface: MTU, address, routes.
func apply(nl *rtnl, index int, l *Lease) error {
	if l.MTU > 0 {
		if err := nl.do(linkMsg(index, l.MTU)); err != nil {
			return fmt.Errorf("set MTU %d: %w", l.MTU, err)
		}
	}
	if err := nl.do(addrMsg(index, l.Addr, unix.RT_SCOPE_UNIVERSE)); err != nil {
		return fmt.Errorf("add address %s: %w", l.Addr, err)
	}
	// On-link routes of option 121 first: a gateway may be reachable
	// only through one of them.
	onLink := []netip.Prefix{l.Addr.Masked()}
	for _, r := range l.Routes {
		if r.Gateway.IsUnspecified() {
			if err := nl.do(routeMsg(index, r.Dst, netip.Addr{})); err != nil {
				return fmt.Errorf("add route %s: %w", r, err)
			}
			onLink = append(onLink, r.Dst)
		}
	}
	reach := func(gw netip.Addr) error {
		if slices.ContainsFunc(onLink, func(p netip.Prefix) bool { return p.Contains(gw) }) {
			return nil
		}
		// e.g. a /32 lease: reach the router on the link first.
		if err := nl.do(routeMsg(index, netip.PrefixFrom(gw, 32), netip.Addr{})); err != nil {
			return fmt.Errorf("add route to router %s: %w", gw, err)
		}
		onLink = append(onLink, netip.PrefixFrom(gw, 32))
		return nil
	}
	for _, r := range l.Routes {
		if r.Gateway.IsUnspecified() {
			continue
		}
		if err := reach(r.Gateway); err != nil {
			return err
		}
		if err := nl.do(routeMsg(index, r.Dst, r.Gateway)); err != nil {
			return fmt.Errorf("add route %s: %w", r, err)
		}
	}
	if !l.Router.IsValid() {
		return nil
	}
	if err := reach(l.Router); err != nil {
		return err
	}
	if err := nl.do(routeMsg(index, netip.PrefixFrom(netip.IPv4Unspecified(), 0), l.Router)); err != nil {
		return fmt.Errorf("add default route via %s: %w", l.Router, err)
	}
	return nil
}

// WriteResolv writes the lease's DNS servers and domain to path, unless
// path exists and does not start with ResolvMarker (someone else's),
// or is not a regular file.
func WriteResolv(path, ifname string, l *Lease) error {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil // a symlink (e.g. to a resolver's file) is someone else's
	}
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("resolv.conf: %w", err)
	case !bytes.HasPrefix(old, []byte(ResolvMarker+"\n")):
		return nil // not ours
	}
	// Lease parsing dropped invalid names and addresses already; check
	// again for leases made elsewhere, since one stray newline here
	// would add resolver lines.
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n# DHCP on %s\n", ResolvMarker, ifname)
	if l.Domain != "" {
		if err := checkDomain(l.Domain); err != nil {
			return fmt.Errorf("resolv.conf: domain %q: %w", l.Domain, err)
		}
		fmt.Fprintf(&b, "search %s\n", l.Domain)
	}
	for _, a := range l.DNS {
		if err := checkDNSServer(a); err != nil {
			return fmt.Errorf("resolv.conf: dns server %s: %w", a, err)
		}
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	if err := renameio.WriteFile(path, []byte(b.String()), 0o644, renameio.WithTempDir(filepath.Dir(path))); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
