package netconf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// rtnetlink messages, written by hand: a header, a fixed struct, then
// attributes (type-length-value, 4-byte aligned), native byte order.

// nlmsg encodes one request message: header, body and attributes.
type nlmsg struct {
	typ, flags uint16
	body       []byte
	attrs      []byte
}

func (m *nlmsg) attr(typ uint16, data []byte) {
	l := unix.SizeofRtAttr + len(data)
	a := make([]byte, rtaAlign(l))
	binary.NativeEndian.PutUint16(a[0:], uint16(l))
	binary.NativeEndian.PutUint16(a[2:], typ)
	copy(a[unix.SizeofRtAttr:], data)
	m.attrs = append(m.attrs, a...)
}

func (m *nlmsg) attrAddr(typ uint16, a netip.Addr) {
	b := a.As4()
	m.attr(typ, b[:])
}

func (m *nlmsg) attrU32(typ uint16, v uint32) {
	m.attr(typ, binary.NativeEndian.AppendUint32(nil, v))
}

func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// bytes returns the message with sequence number seq.
func (m *nlmsg) bytes(seq uint32) []byte {
	body := rtaAlign(len(m.body))
	b := make([]byte, unix.SizeofNlMsghdr+body, unix.SizeofNlMsghdr+body+len(m.attrs))
	copy(b[unix.SizeofNlMsghdr:], m.body)
	b = append(b, m.attrs...)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], m.typ)
	binary.NativeEndian.PutUint16(b[6:], m.flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return b
}

// linkMsg sets a link up, with an MTU if mtu > 0 (RTM_NEWLINK).
func linkMsg(index, mtu int) *nlmsg {
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	binary.NativeEndian.PutUint32(body[8:], unix.IFF_UP)  // flags
	binary.NativeEndian.PutUint32(body[12:], unix.IFF_UP) // change mask
	m := &nlmsg{typ: unix.RTM_NEWLINK, body: body}
	if mtu > 0 {
		m.attrU32(unix.IFLA_MTU, uint32(mtu))
	}
	return m
}

// addrMsg adds (or replaces) an IPv4 address (RTM_NEWADDR).
func addrMsg(index int, p netip.Prefix, scope uint8) *nlmsg {
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0] = unix.AF_INET
	body[1] = byte(p.Bits())
	body[3] = scope
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	m := &nlmsg{typ: unix.RTM_NEWADDR, flags: unix.NLM_F_CREATE | unix.NLM_F_REPLACE, body: body}
	m.attrAddr(unix.IFA_LOCAL, p.Addr())
	m.attrAddr(unix.IFA_ADDRESS, p.Addr())
	if p.Bits() < 31 {
		m.attrAddr(unix.IFA_BROADCAST, broadcast(p))
	}
	return m
}

// delAddrMsg removes an IPv4 address (RTM_DELADDR); the routes through
// it go with it.
func delAddrMsg(index int, p netip.Prefix) *nlmsg {
	m := addrMsg(index, p, 0)
	m.typ, m.flags = unix.RTM_DELADDR, 0
	return m
}

// broadcast returns the last address of p's network.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, v)))
}

// routeMsg adds (or replaces) a route to dst via gw (if valid) on the
// interface (RTM_NEWROUTE, main table, protocol dhcp); dst 0.0.0.0/0 or
// the zero Prefix is the default route.
func routeMsg(index int, dst netip.Prefix, gw netip.Addr) *nlmsg {
	body := make([]byte, unix.SizeofRtMsg)
	body[0] = unix.AF_INET
	bits := max(dst.Bits(), 0) // the zero Prefix: the default route
	body[1] = byte(bits)
	body[4] = unix.RT_TABLE_MAIN
	body[5] = unix.RTPROT_DHCP
	body[6] = unix.RT_SCOPE_UNIVERSE
	if !gw.IsValid() {
		body[6] = unix.RT_SCOPE_LINK
	}
	body[7] = unix.RTN_UNICAST
	m := &nlmsg{typ: unix.RTM_NEWROUTE, flags: unix.NLM_F_CREATE | unix.NLM_F_REPLACE, body: body}
	if bits > 0 {
		m.attrAddr(unix.RTA_DST, dst.Addr())
	}
	if gw.IsValid() {
		m.attrAddr(unix.RTA_GATEWAY, gw)
	}
	m.attrU32(unix.RTA_OIF, uint32(index))
	return m
}

// rtnl is a NETLINK_ROUTE socket that sends requests one at a time.
type rtnl struct {
	fd  int
	seq uint32
}

func openRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket netlink", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind netlink", err)
	}
	return &rtnl{fd: fd}, nil
}

func (r *rtnl) Close() error { return unix.Close(r.fd) }

// do sends m and waits for the kernel's acknowledgement.
func (r *rtnl) do(m *nlmsg) error {
	r.seq++
	if err := unix.Sendto(r.fd, m.bytes(r.seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto netlink", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvfrom netlink", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("netlink reply: %w", err)
		}
		for _, msg := range msgs {
			if msg.Header.Seq != r.seq || msg.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(msg.Data) < 4 {
				return fmt.Errorf("netlink: short error message")
			}
			if e := int32(binary.NativeEndian.Uint32(msg.Data)); e != 0 {
				return unix.Errno(-e)
			}
			return nil
		}
	}
}
