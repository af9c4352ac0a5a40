package turnserver

import (
	"net"
	"net/netip"
)

// AddrClass is what kind of destination a peer address is, for the relay policy.
type AddrClass uint8

// Address classes, from always relayable (Public) to never relayable (Reserved and below).
const (
	// Public is a global unicast address: always relayable.
	Public AddrClass = iota
	// Loopback is 127/8 or ::1: relayable only with Config.AllowLoopback.
	Loopback
	// Private is RFC 1918 (10/8, 172.16/12, 192.168/16), shared CGNAT space (100.64/10),
	// unique-local fc00::/7 and the local-use NAT64 prefix: relayable only with
	// Config.AllowPrivate.
	Private
	// LinkLocal is 169.254/16 or fe80::/10. Never relayable: 169.254.169.254 and
	// 169.254.169.253 are cloud metadata and DNS services, and no peer of ours lives there.
	LinkLocal
	// Unspecified is 0.0.0.0 or ::. Never relayable.
	Unspecified
	// Multicast is 224/4 or ff00::/8. Never relayable.
	Multicast
	// Reserved covers 0/8, 240/4 (with broadcast), documentation and benchmarking ranges,
	// deprecated IPv4-compatible IPv6 and invalid addresses. Never relayable.
	Reserved
)

func (c AddrClass) String() string {
	switch c {
	case Public:
		return "public"
	case Loopback:
		return "loopback"
	case Private:
		return "private"
	case LinkLocal:
		return "link-local"
	case Unspecified:
		return "unspecified"
	case Multicast:
		return "multicast"
	default:
		return "reserved"
	}
}

// Prefixes the standard library's predicates do not cover.
var (
	privateExtra = []netip.Prefix{
		netip.MustParsePrefix("100.64.0.0/10"),  // RFC 6598 shared address space (CGNAT)
		netip.MustParsePrefix("64:ff9b:1::/48"), // RFC 8215 local-use NAT64
		netip.MustParsePrefix("fec0::/10"),      // deprecated site-local, still routed inside some sites
	}
	reservedExtra = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
		netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, includes 255.255.255.255
		netip.MustParsePrefix("::/96"),           // deprecated IPv4-compatible IPv6 (:: and ::1 are caught first)
		netip.MustParsePrefix("100::/64"),        // discard-only
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
	}
	// nat64 is the RFC 6052 well-known prefix: behind a NAT64 gateway 64:ff9b::a.b.c.d
	// reaches a.b.c.d, so it is classified as the IPv4 address it embeds.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// Classify tells what kind of destination a is. IPv4-mapped IPv6 addresses are classified as
// the IPv4 address they carry, and NAT64 addresses as the IPv4 address they embed, so that
// neither form smuggles a loopback or private destination past the policy.
func Classify(a netip.Addr) AddrClass {
	if !a.IsValid() {
		return Reserved
	}
	a = a.Unmap().WithZone("")
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case a.IsUnspecified():
		return Unspecified
	case a.IsLoopback():
		return Loopback
	case a.IsMulticast():
		return Multicast
	case a.IsLinkLocalUnicast():
		return LinkLocal
	case a.IsPrivate():
		return Private
	}
	for _, p := range reservedExtra {
		if p.Contains(a) {
			return Reserved
		}
	}
	for _, p := range privateExtra {
		if p.Contains(a) {
			return Private
		}
	}

	return Public
}

// peerPolicy decides which peer addresses an allocation may relay to.
type peerPolicy struct {
	allowLoopback, allowPrivate bool
}

// allow reports whether relaying to a is permitted, and the class that decided it.
func (p peerPolicy) allow(a netip.Addr) (AddrClass, bool) {
	c := Classify(a)
	switch c {
	case Public:
		return c, true
	case Loopback:
		return c, p.allowLoopback
	case Private:
		return c, p.allowPrivate
	default:
		return c, false
	}
}

// allowIP is allow for a net.IP (nil or malformed IPs are Reserved, hence refused).
func (p peerPolicy) allowIP(ip net.IP) (AddrClass, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return Reserved, false
	}

	return p.allow(a)
}
