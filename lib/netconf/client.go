package netconf

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dhcpSocket returns a UDP socket bound to 0.0.0.0:68 on ifname only,
// allowed to broadcast. The kernel delivers the server's broadcast
// replies to it even though the interface has no address yet.
func dhcpSocket(ifname string) (net.PacketConn, error) { return dhcpSocketPort(ifname, 68) }

func dhcpSocketPort(ifname string, port int) (net.PacketConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	for _, o := range []struct {
		name string
		set  func() error
	}{
		{"SO_REUSEADDR", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) }},
		{"SO_BROADCAST", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1) }},
		{"SO_BINDTODEVICE", func() error { return unix.BindToDevice(fd, ifname) }},
		{fmt.Sprintf("bind :%d", port), func() error { return unix.Bind(fd, &unix.SockaddrInet4{Port: port}) }},
	} {
		if err := o.set(); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("dhcp socket on %s: %s: %w", ifname, o.name, err)
		}
	}
	f := os.NewFile(uintptr(fd), "dhcp-"+ifname)
	defer f.Close() // FilePacketConn has its own copy
	return net.FilePacketConn(f)
}

// client runs one DHCP exchange on one interface.
type client struct {
	conn  net.PacketConn
	hw    net.HardwareAddr
	xid   uint32
	start time.Time
	// retry is the first retransmission timeout; it doubles up to
	// maxWait (zero: 4 s).
	retry, maxWait time.Duration
	// to is the server; nil means broadcast.
	to *net.UDPAddr
	// ciaddr is the address being renewed; then the BROADCAST flag is
	// off and the server answers by unicast.
	ciaddr netip.Addr
}

var broadcastAddr = &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

// params are the options asked for (option 55).
var params = []byte{OptSubnetMask, OptClasslessRoutes, OptRouter, OptDNS, OptDomainName, OptMTU, OptBroadcast, OptLeaseTime, OptServerID, OptRenewalTime, OptRebindTime}

func (c *client) message(typ byte, extra ...Option) *Message {
	secs := time.Since(c.start) / time.Second
	return &Message{
		Op: 1, XID: c.xid, Secs: uint16(min(secs, 0xffff)), CHAddr: c.hw,
		CIAddr: c.ciaddr, Broadcast: !c.ciaddr.IsValid(),
		Options: append([]Option{{OptMessageType, []byte{typ}}, {OptParamRequest, params}}, extra...),
	}
}

// errNak is a DHCPNAK from the server: start over.
var errNak = errors.New("dhcp: server said NAK")

// transact sends m and waits for a reply of type want (or a NAK), retransmitting with doubling timeouts until ctx is done.
func (c *client) transact(ctx context.Context, m *Message, want byte) (*Message, error) {
	out, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	wait, maxWait, to := c.retry, c.maxWait, c.to
	if maxWait == 0 {
		maxWait = 4 * time.Second
	}
	if to == nil {
		to = broadcastAddr
	}
	buf := make([]byte, 1500)
	for {
		if _, err := c.conn.WriteTo(out, to); err != nil {
			return nil, fmt.Errorf("dhcp: send: %w", err)
		}
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.conn.SetReadDeadline(deadline)
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("dhcp: receive: %w", err)
			}
			r, err := Unmarshal(buf[:n])
			if err != nil || r.Op != 2 || r.XID != c.xid || string(r.CHAddr) != string(c.hw) {
				continue // not for us
			}
			switch r.Type() {
			case want:
				return r, nil
			case Nak:
				return nil, errNak
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait = min(2*wait, maxWait)
	}
}

// exchange gets a lease: DISCOVER, OFFER, REQUEST, ACK.
func (c *client) exchange(ctx context.Context) (*Lease, error) {
	for {
		c.xid = rand.Uint32()
		offer, err := c.transact(ctx, c.message(Discover), Offer)
		if errors.Is(err, errNak) {
			if !sleep(ctx, time.Second) { // not in a tight loop
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		sid := offer.Option(OptServerID)
		if len(sid) != 4 {
			continue // RFC 2131 requires it; ignore a server without
		}
		yi := offer.YIAddr.As4()
		ack, err := c.transact(ctx, c.message(Request, Option{OptRequestedIP, yi[:]}, Option{OptServerID, sid}), Ack)
		if errors.Is(err, errNak) {
			if !sleep(ctx, time.Second) {
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return ack.Lease()
	}
}

// renew extends lease l of interface ifname (hardware address hw): a
// REQUEST with the address as ciaddr, unicast to the server until t2
// (RENEWING), then broadcast to any server until expiry (REBINDING),
// sent again after 4, 8, 16… s, at most every minute. It returns the
// server's new lease, or an error at expiry or on a NAK.
func renew(ctx context.Context, ifname string, hw net.HardwareAddr, l *Lease, t2, expiry time.Time) (*Lease, error) {
	conn, err := dhcpSocket(ifname)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := &client{conn: conn, hw: hw, xid: rand.Uint32(), start: time.Now(), retry: 4 * time.Second, maxWait: time.Minute, ciaddr: l.Addr.Addr()}
	if l.Server.IsValid() && time.Now().Before(t2) {
		c.to = &net.UDPAddr{IP: l.Server.AsSlice(), Port: 67}
		rctx, cancel := context.WithDeadline(ctx, t2)
		ack, err := c.transact(rctx, c.message(Request), Ack)
		cancel()
		if err == nil {
			return ack.Lease()
		}
		if errors.Is(err, errNak) || ctx.Err() != nil {
			return nil, err
		}
		c.to = nil
	}
	rctx, cancel := context.WithDeadline(ctx, expiry)
	defer cancel()
	ack, err := c.transact(rctx, c.message(Request), Ack)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer to DHCP (%s) by the lease's end", hw)
	}
	if err != nil {
		return nil, err
	}
	return ack.Lease()
}

// sleep waits d or until ctx is done; false means ctx is.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
