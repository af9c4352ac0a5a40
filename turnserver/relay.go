package turnserver

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"

	"github.com/banyan-live/banyan/internal/ipkey"
)

var (
	errTCPRelayRefused = errors.New("turnserver: TCP relays (RFC 6062) are not offered")
	errQuota           = errors.New("turnserver: allocation quota reached")
	errClosed          = errors.New("turnserver: server closed")
	errNotUDPAddr      = errors.New("turnserver: relay destination is not a UDP address")
)

// users tracks, per authenticated user (the peer id) or per client address, how many relay
// sockets are open and the token bucket they share. pion's QuotaHandler only sees the request, not the outcome,
// so the authoritative count is taken where the relay socket is created and given back when
// it closes: no allocation can slip past the quota, and no count is leaked when an Allocate
// fails halfway.
type users struct {
	maxAllocs int     // <= 0: unlimited
	bytesPerS float64 // <= 0: unlimited
	burst     int

	mu sync.Mutex
	m  map[string]*user
}

type user struct {
	id     string
	allocs int
	lim    *rate.Limiter // nil: unlimited
}

func newUsers(maxAllocs int, bps int64) *users {
	u := &users{maxAllocs: maxAllocs, m: make(map[string]*user)}
	if bps > 0 {
		u.bytesPerS = float64(bps) / 8
		u.burst = max(int(u.bytesPerS), minBurstBytes)
	}

	return u
}

// newBucket is a one-second-burst token bucket of bps bits per second, in bytes; nil when
// bps <= 0 (unlimited).
func newBucket(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	b := float64(bps) / 8

	return rate.NewLimiter(rate.Limit(b), max(int(b), minBurstBytes))
}

// userID is what authenticate hands pion as the user: the peer id and the client's address
// key, separated by a space (which neither contains).
func userID(peer string, addr ipkey.Key) string { return peer + " " + string(addr) }

// splitUserID undoes userID.
func splitUserID(id string) (peer string, addr ipkey.Key) {
	peer, a, _ := strings.Cut(id, " ")

	return peer, ipkey.Key(a)
}

// canAllocate is the QuotaHandler's early check (it answers 486 Allocation Quota Reached).
func (u *users) canAllocate(id string) bool {
	if u.maxAllocs <= 0 {
		return true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	x := u.m[id]

	return x == nil || x.allocs < u.maxAllocs
}

func (u *users) acquire(id string) (*user, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x := u.m[id]
	if x == nil {
		x = &user{id: id}
		if u.bytesPerS > 0 {
			x.lim = rate.NewLimiter(rate.Limit(u.bytesPerS), u.burst)
		}
		u.m[id] = x
	}
	if u.maxAllocs > 0 && x.allocs >= u.maxAllocs {
		if x.allocs == 0 {
			delete(u.m, id)
		}

		return nil, errQuota
	}
	x.allocs++

	return x, nil
}

func (u *users) release(x *user) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x.allocs--
	if x.allocs <= 0 {
		// The bucket goes with the last allocation: the map never outgrows the open sockets.
		delete(u.m, x.id)
	}
}

// relayGen wraps pion's port-range generator: it enforces the per-user quota, wraps every
// relay socket in a relayConn, and refuses RFC 6062 TCP relays. Browsers never ask for TCP
// relays (they use UDP relays, reached over UDP, TCP or TLS), and a TCP relay would let any
// viewer holding credentials open TCP connections from this host.
type relayGen struct {
	s     *Server
	inner *turn.RelayAddressGeneratorPortRange
}

func (g *relayGen) Validate() error { return g.inner.Validate() }

func (g *relayGen) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := g.s
	if s.closing.Load() {
		return nil, nil, errClosed
	}
	peer, client := splitUserID(conf.UserID)
	u, err := s.users.acquire(peer)
	var a *user
	if err == nil {
		if a, err = s.addrs.acquire(string(client)); err != nil {
			s.users.release(u)
		}
	}
	if err != nil {
		// Reached only when two Allocates race past the QuotaHandler (UDP and TCP listeners
		// run concurrently); the client gets 508 instead of 486.
		s.refuse(ReasonQuota, "allocation refused: quota reached", slog.String("user", peer))

		return nil, nil, err
	}
	release := func() { s.users.release(u); s.addrs.release(a) }
	conn, addr, err := g.inner.AllocatePacketConn(conf)
	if err != nil {
		release()

		return nil, nil, err
	}
	key, ok := addrKey(addr)
	if !ok {
		_ = conn.Close()
		release()

		return nil, nil, errNotUDPAddr
	}
	rc := &relayConn{PacketConn: conn, s: s, u: u, a: a, key: key, perms: make(map[netip.Addr]struct{})}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = conn.Close()
		release()

		return nil, nil, errClosed
	}
	s.relays[key] = rc
	s.mu.Unlock()
	s.counters.active.Add(1)
	if s.maxLifetime > 0 {
		rc.timer.Store(time.AfterFunc(s.maxLifetime, func() {
			s.log.Debug("turn: allocation reached its maximum lifetime", "relay", addr.String(), "user", u.id)
			_ = rc.Close()
		}))
	}

	return rc, addr, nil
}

func (g *relayGen) AllocateListener(conf turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	g.s.refuse(ReasonTransport, "allocation refused: TCP relay requested", slog.String("user", conf.UserID))

	return nil, nil, errTCPRelayRefused
}

func (g *relayGen) AllocateConn(conf turn.AllocateConnConfig) (net.Conn, error) {
	g.s.refuse(ReasonTransport, "connect refused: TCP relay requested", slog.String("user", conf.UserID))

	return nil, errTCPRelayRefused
}

// addrKey turns a relay address into the map key of Server.relays.
func addrKey(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()

	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// relayConn is one allocation's relay socket. It is where the per-packet policy lives:
//   - WriteTo (client → peer) drops packets to refused addresses. pion only lets data out
//     towards peers with a permission, and permissions are granted through the
//     PermissionHandler, so this is defence in depth, not the primary check.
//   - ReadFrom (peer → client) drops packets from peers without a permission before they
//     are counted or charged, so strangers spraying a relay port cannot eat its user's
//     bandwidth (pion would drop them a moment later anyway).
//   - both directions share the user's token bucket and feed the relayed-bytes counters.
//
// Drops return success to pion: an error would only make it log, per packet.
type relayConn struct {
	net.PacketConn
	s     *Server
	u     *user // the peer's budget
	a     *user // the client address's budget
	key   netip.AddrPort
	timer atomic.Pointer[time.Timer] // MaxLifetime; set after the socket is handed out

	permMu sync.RWMutex
	perms  map[netip.Addr]struct{} // mirror of pion's permissions, fed by its events

	closeOnce sync.Once
	closeErr  error
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errNotUDPAddr
	}
	peer := ua.AddrPort().Addr()
	if class, ok := c.s.policy.allow(peer); !ok {
		c.s.refuse(ReasonPeerAddress, "relay refused: peer address not allowed",
			slog.String("user", c.u.id), slog.String("peer", peer.String()), slog.String("class", class.String()))

		return len(p), nil
	}
	if !c.charge(len(p)) {
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if n > 0 {
		c.s.counters.bytesToPeer.Add(uint64(n))
	}

	return n, err
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.s.inflight.Add(1)
	defer c.s.inflight.Add(-1)
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok || !c.permitted(ua.AddrPort().Addr().Unmap()) {
			continue
		}
		if !c.charge(n) {
			continue
		}
		c.s.counters.bytesToClnt.Add(uint64(n))

		return n, addr, nil
	}
}

// charge takes n bytes from the peer's, the client address's and the server's token
// buckets; false drops the packet. A packet dropped by a later bucket has still used the
// earlier ones' tokens: dropping is rare and errs on the side of relaying less.
func (c *relayConn) charge(n int) bool {
	now := time.Now()
	for _, b := range [...]struct {
		lim  *rate.Limiter
		what string
	}{{c.u.lim, "user"}, {c.a.lim, "client address"}, {c.s.total, "server total"}} {
		if b.lim != nil && !b.lim.AllowN(now, n) {
			c.s.refuse(ReasonBandwidth, "relay dropped: "+b.what+" bandwidth quota exceeded",
				slog.String("user", c.u.id), slog.String("client", c.a.id))

			return false
		}
	}

	return true
}

func (c *relayConn) permitted(a netip.Addr) bool {
	c.permMu.RLock()
	_, ok := c.perms[a]
	c.permMu.RUnlock()

	return ok
}

func (c *relayConn) setPermission(ip net.IP, on bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return
	}
	a = a.Unmap()
	c.permMu.Lock()
	if on {
		c.perms[a] = struct{}{}
	} else {
		delete(c.perms, a)
	}
	c.permMu.Unlock()
}

// Close is idempotent: pion closes the socket when the allocation ends, and the server closes
// it on MaxLifetime and on shutdown.
func (c *relayConn) Close() error {
	c.closeOnce.Do(func() {
		if t := c.timer.Load(); t != nil {
			t.Stop()
		}
		c.closeErr = c.PacketConn.Close()
		c.s.mu.Lock()
		if c.s.relays[c.key] == c {
			delete(c.s.relays, c.key)
		}
		c.s.mu.Unlock()
		c.s.users.release(c.u)
		c.s.addrs.release(c.a)
		c.s.counters.active.Add(-1)
	})

	return c.closeErr
}
