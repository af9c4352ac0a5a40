package httpx

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/banyan-live/banyan/internal/ipkey"
)

// LimitConfig bounds the connections a listener keeps open.
type LimitConfig struct {
	// PerIP is the most connections one remote address may hold open at
	// once, IPv6 grouped by /64 (ipkey) (0: no per-address limit).
	PerIP int
	// ExemptLoopback leaves loopback addresses out of PerIP: on loopback
	// the peer is this machine, usually a reverse proxy carrying many
	// clients (or a test swarm).
	ExemptLoopback bool
	// Exempt, when set, leaves more addresses out of PerIP: the trusted
	// reverse proxies (--trusted-proxy), which carry many clients each.
	Exempt func(netip.Addr) bool
	// Total is the most connections open at once (0: no limit).
	Total int
	// OnRefuse, when set, is called with the reason ("per_ip", "total")
	// for every connection closed at accept.
	OnRefuse func(reason string)
}

// LimitListener wraps ln so that connections over the limits are closed as
// soon as they are accepted, before a byte is read: an address that opens
// connections and never sends (a slowloris) cannot use up the server's
// file descriptors or goroutines beyond its share. net/http has per-request
// timeouts but no per-address limit of its own.
func LimitListener(ln net.Listener, cfg LimitConfig) net.Listener {
	if cfg.PerIP <= 0 && cfg.Total <= 0 {
		return ln
	}
	// The counter's exemption is decided per connection in Accept.
	return &limitListener{Listener: ln, cfg: cfg, perIP: ipkey.NewCounter(cfg.PerIP, true)}
}

type limitListener struct {
	net.Listener
	cfg   LimitConfig
	perIP *ipkey.Counter

	mu    sync.Mutex
	total int
}

// Accept returns the next connection within the limits; refused ones are
// closed here and never reach the server.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, loopback := ipkey.OfNet(c.RemoteAddr())
		exempt := loopback && l.cfg.ExemptLoopback
		if !exempt && l.cfg.Exempt != nil {
			if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
				exempt = l.cfg.Exempt(ap.Addr().Unmap())
			}
		}
		if reason := l.admit(ip, exempt); reason != "" {
			c.Close()
			if l.cfg.OnRefuse != nil {
				l.cfg.OnRefuse(reason)
			}
			continue
		}
		return &limitConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) admit(ip ipkey.Key, exempt bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Total > 0 && l.total >= l.cfg.Total {
		return "total"
	}
	if !l.perIP.Acquire(ip, exempt) {
		return "per_ip"
	}
	l.total++
	return ""
}

func (l *limitListener) release(ip ipkey.Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	l.perIP.Release(ip)
}

// OpenConns reports how many connections are open and how many addresses hold
// them (tests, metrics).
func OpenConns(ln net.Listener) (conns, addrs int) {
	l, ok := ln.(*limitListener)
	if !ok {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP.Keys()
}

type limitConn struct {
	net.Conn
	l    *limitListener
	ip   ipkey.Key
	done atomic.Bool
}

// Close releases the connection's slot once, however often it is called
// (net/http closes hijacked and idle connections along several paths).
func (c *limitConn) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return c.Conn.Close()
}
