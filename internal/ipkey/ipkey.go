// Package ipkey says whom a per-address limit counts a connection against,
// and counts them. An IPv4 address is one client. An IPv6 client usually
// holds a whole /64 (SLAAC, privacy addresses) and may pick any address in
// it, so counting whole IPv6 addresses would hand one client 2^64 budgets:
// IPv6 addresses are grouped by their /64. Every per-address limit (HTTP,
// websocket, RTMP, TURN) keys by Of, so they all agree on who a client is.
package ipkey

import (
	"net"
	"net/netip"
	"sync"
)

// Key is what per-address limits count by: "192.0.2.7", "2001:db8:1:2::/64".
type Key string

// Of returns the key of a remote address, given as "host:port" or as a
// bare host, and whether it is loopback (this machine: often a reverse
// proxy, which must limit per client itself). An address that does not
// parse is its own key: it still counts, against itself.
func Of(addr string) (k Key, loopback bool) {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return Key(host), false
	}
	return FromAddr(a), a.Unmap().IsLoopback()
}

// OfNet is Of for a net.Addr (nil: the empty key).
func OfNet(a net.Addr) (Key, bool) {
	if a == nil {
		return "", false
	}
	return Of(a.String())
}

// FromAddr is the key of a parsed address.
func FromAddr(a netip.Addr) Key {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return Key(a.String())
	}
	p, err := a.Prefix(64)
	if err != nil {
		return Key(a.String())
	}
	return Key(p.String())
}

// Counter counts what each key holds open (connections, allocations)
// against a limit. It is safe for concurrent use; its zero value is not:
// use NewCounter.
type Counter struct {
	limit          int // <= 0: no limit
	exemptLoopback bool

	mu sync.Mutex
	n  map[Key]int
}

// NewCounter makes a Counter allowing limit per key (<= 0: no limit);
// with exemptLoopback, loopback addresses are never refused (but counted).
func NewCounter(limit int, exemptLoopback bool) *Counter {
	return &Counter{limit: limit, exemptLoopback: exemptLoopback, n: make(map[Key]int)}
}

// Acquire takes one slot for k and reports whether it was within the
// limit; a refused Acquire takes nothing. Every true Acquire needs one
// Release.
func (c *Counter) Acquire(k Key, loopback bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit > 0 && !(c.exemptLoopback && loopback) && c.n[k] >= c.limit {
		return false
	}
	c.n[k]++
	return true
}

// Release gives back a slot Acquire took.
func (c *Counter) Release(k Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k]--; c.n[k] <= 0 {
		delete(c.n, k) // the map never outgrows what is open
	}
}

// Count is what k holds now.
func (c *Counter) Count(k Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// Keys is how many keys hold something.
func (c *Counter) Keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}
