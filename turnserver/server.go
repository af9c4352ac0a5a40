// Package turnserver is Banyan's TURN relay (`banyan turn`, and part of `banyan up`), built on
// pion/turn v5.
//
// It listens on UDP and TCP (default :3478) and optionally TLS (:5349), and relays UDP only.
// Credentials are short-lived and follow the coturn REST convention (see Credentials): the
// tracker mints them per peer with the shared secret, so a coturn configured with
// use-auth-secret and the same secret can stand in for this server.
//
// Abuse controls, all counted (Stats, banyan_turn_* metrics) and logged at most once per
// reason every 10 s:
//   - peers on loopback, private, link-local, multicast and reserved addresses are refused
//     (loopback and private can be allowed by flag), through pion's PermissionHandler, which
//     guards CreatePermission, ChannelBind and Connect; Send indications and ChannelData need
//     a permission, and every outgoing packet is checked again;
//   - per-user (peer id) allocation count and bandwidth (token bucket on the relay socket,
//     both directions together, since pion has no bandwidth quota of its own);
//   - a hard cap on an allocation's total age, on top of credential expiry;
//   - no RFC 6062 TCP relays; bounded, deadline-guarded TCP/TLS control connections.
package turnserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/banyan-live/banyan/internal/ipkey"
)

// Defaults for zero Config fields.
const (
	DefaultAddr                   = ":3478"
	DefaultTLSAddr                = ":5349"
	DefaultRealm                  = "banyan"
	DefaultRelayPortMin           = 49152
	DefaultRelayPortMax           = 65535
	DefaultMaxAllocationsPerUser  = 32
	DefaultMaxBandwidthBpsPerUser = 50_000_000
	DefaultMaxLifetime            = 24 * time.Hour
	DefaultMaxConns               = 4096
	DefaultMaxConnsPerIP          = 16
	DefaultMaxAllocationsPerIP    = 128
	DefaultMaxBandwidthBpsPerIP   = 200_000_000
	DefaultMaxBandwidthBps        = 1_000_000_000

	// logEvery is the refusal log rate: one line per reason per interval.
	logEvery = 10 * time.Second
	// minBurstBytes keeps the token bucket above any single datagram plus some slack.
	minBurstBytes = 16 << 10
	// closeWait bounds how long Close waits for pion's goroutines to leave our sockets.
	closeWait = 5 * time.Second
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// UDPAddr and TCPAddr are the TURN listen addresses (default ":3478" each).
	UDPAddr, TCPAddr string
	// TLSAddr is the TURN-over-TLS listen address (default ":5349"), used only when CertFile
	// and KeyFile are both set.
	TLSAddr           string
	CertFile, KeyFile string
	// GetCertificate, instead of CertFile and KeyFile, supplies the
	// certificate at each handshake (files reloaded on change, ACME).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// Realm is the long-term credential realm (default "banyan").
	Realm string
	// Secret is the shared secret the tracker signs credentials with. Required.
	Secret []byte

	// RelayIP is the address advertised in relayed candidates: the public IP. Default: the
	// UDP listen IP, or 127.0.0.1 (::1 for an IPv6 listener) when that is unspecified or
	// loopback — right for development only; New warns when the listen IP is unspecified.
	RelayIP net.IP
	// RelayPortMin and RelayPortMax bound the relay ports (default 49152–65535).
	RelayPortMin, RelayPortMax uint16

	// AllowLoopback and AllowPrivate let peers on loopback or private addresses be relayed
	// to (banyan up allows loopback). Link-local, multicast and reserved peers never are.
	AllowLoopback, AllowPrivate bool

	// MaxAllocationsPerUser caps concurrent allocations per peer id (default 32: a browser
	// peer holds one or two per peer connection; negative: unlimited).
	MaxAllocationsPerUser int
	// MaxBandwidthBpsPerUser caps the bits per second relayed for one peer id, both
	// directions together, with a one-second burst (default 50 Mbit/s; negative:
	// unlimited). Excess packets are dropped, as a congested link would.
	MaxBandwidthBpsPerUser int64
	// MaxAllocationsPerIP and MaxBandwidthBpsPerIP are the same caps per client address
	// (IPv6 grouped by /64): every websocket join mints a new peer id, so per-user quotas
	// alone do not bound one client (defaults 128 and 200 Mbit/s, room for a NAT with
	// many viewers; negative: unlimited).
	MaxAllocationsPerIP  int
	MaxBandwidthBpsPerIP int64
	// MaxBandwidthBps caps everything the server relays, both directions together, so
	// that TURN cannot take the host's whole uplink (default 1 Gbit/s; negative:
	// unlimited).
	MaxBandwidthBps int64
	// Alive, when set, keeps an expired credential working while the peer it was minted
	// for is still connected to the tracker: pion's ICE agents refresh allocations with
	// the credential they started with, so a short credential TTL would otherwise cut a
	// long session's relay. Once the session ends, the credential dies at its expiry.
	Alive func(peerID string) bool
	// MaxLifetime caps an allocation's total age, refreshes included (default 24 h;
	// negative: no cap beyond credential expiry, after which refreshes are refused).
	MaxLifetime time.Duration
	// MaxConns caps concurrent TCP+TLS control connections (default 4096).
	MaxConns int
	// MaxConnsPerIP caps them per client address, IPv6 grouped by /64
	// (internal/ipkey), loopback included (default 16; a browser opens
	// one or two per peer connection that falls back to TURN over TCP).
	MaxConnsPerIP int

	// Logger receives refusals (rate-limited) and pion's warnings (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, gets the banyan_turn_* metrics.
	Registerer prometheus.Registerer
}

// Server is a running TURN relay.
type Server struct {
	cfg         Config
	log         *slog.Logger
	rate        *rateLog
	policy      peerPolicy
	users       *users        // per peer id
	addrs       *users        // per client address (ipkey)
	total       *rate.Limiter // everything relayed; nil: unlimited
	maxLifetime time.Duration
	counters    counters

	turn    *turn.Server
	udp     net.PacketConn
	tcp     net.Listener
	tlsLn   net.Listener
	udpAddr net.Addr
	tcpAddr net.Addr
	tlsAddr net.Addr

	closing   atomic.Bool
	inflight  atomic.Int64 // goroutines blocked in our sockets' reads and accepts
	closeOnce sync.Once
	closeErr  error

	connsPerIP *ipkey.Counter

	mu     sync.Mutex
	relays map[netip.AddrPort]*relayConn
	conns  map[*trackedConn]struct{}
}

// New validates cfg, listens and starts serving.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		policy:     peerPolicy{allowLoopback: cfg.AllowLoopback, allowPrivate: cfg.AllowPrivate},
		relays:     make(map[netip.AddrPort]*relayConn),
		conns:      make(map[*trackedConn]struct{}),
		connsPerIP: ipkey.NewCounter(cfg.MaxConnsPerIP, false),
	}
	s.rate = newRateLog(s.log, logEvery)
	s.users = newUsers(cfg.MaxAllocationsPerUser, cfg.MaxBandwidthBpsPerUser)
	s.addrs = newUsers(cfg.MaxAllocationsPerIP, cfg.MaxBandwidthBpsPerIP)
	s.total = newBucket(cfg.MaxBandwidthBps)
	if cfg.MaxLifetime > 0 {
		s.maxLifetime = cfg.MaxLifetime
	}
	if err := s.start(); err != nil {
		s.closeListeners()

		return nil, err
	}
	// Registered last, so that a failed New leaves the registry as it found it.
	if cfg.Registerer != nil {
		if err := s.counters.register(cfg.Registerer); err != nil {
			_ = s.Close()

			return nil, err
		}
	}

	return s, nil
}

func (c *Config) setDefaults() error {
	if len(c.Secret) == 0 {
		return errors.New("turnserver: config: Secret is required")
	}
	c.Secret = bytes.Clone(c.Secret) // the caller's slice may change under us
	if c.UDPAddr == "" {
		c.UDPAddr = DefaultAddr
	}
	if c.TCPAddr == "" {
		c.TCPAddr = DefaultAddr
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("turnserver: config: CertFile and KeyFile go together")
	}
	if c.CertFile != "" && c.GetCertificate != nil {
		return errors.New("turnserver: config: CertFile and GetCertificate both set: use one")
	}
	if (c.CertFile != "" || c.GetCertificate != nil) && c.TLSAddr == "" {
		c.TLSAddr = DefaultTLSAddr
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	switch {
	case c.RelayPortMin == 0 && c.RelayPortMax == 0:
		c.RelayPortMin, c.RelayPortMax = DefaultRelayPortMin, DefaultRelayPortMax
	case c.RelayPortMin == 0 || c.RelayPortMax == 0 || c.RelayPortMin > c.RelayPortMax:
		return fmt.Errorf("turnserver: config: bad relay port range %d-%d", c.RelayPortMin, c.RelayPortMax)
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if c.MaxBandwidthBpsPerUser == 0 {
		c.MaxBandwidthBpsPerUser = DefaultMaxBandwidthBpsPerUser
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.MaxAllocationsPerIP == 0 {
		c.MaxAllocationsPerIP = DefaultMaxAllocationsPerIP
	}
	if c.MaxBandwidthBpsPerIP == 0 {
		c.MaxBandwidthBpsPerIP = DefaultMaxBandwidthBpsPerIP
	}
	if c.MaxBandwidthBps == 0 {
		c.MaxBandwidthBps = DefaultMaxBandwidthBps
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	return nil
}

// listenNetwork picks the IPv4 or IPv6 socket family for a listen address: relays are
// single-family (one RelayIP), so the listeners are too.
func listenNetwork(base, addr string) (network string, host net.IP, err error) {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("turnserver: listen address %q: %w", addr, err)
	}
	if h == "" {
		return base + "4", net.IPv4zero, nil
	}
	ip := net.ParseIP(h)
	if ip == nil {
		// A host name: let the resolver choose, IPv4 first.
		ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip4", h)
		if err != nil || len(ips) == 0 {
			return "", nil, fmt.Errorf("turnserver: listen address %q: no IPv4 address: %v", addr, err)
		}
		ip = ips[0]
	}
	if ip.To4() != nil {
		return base + "4", ip.To4(), nil
	}

	return base + "6", ip, nil
}

func (s *Server) start() error {
	cfg := &s.cfg
	udpNet, udpIP, err := listenNetwork("udp", cfg.UDPAddr)
	if err != nil {
		return err
	}
	tcpNet, _, err := listenNetwork("tcp", cfg.TCPAddr)
	if err != nil {
		return err
	}

	relayIP := cfg.RelayIP
	if relayIP == nil {
		switch {
		case udpIP.IsUnspecified():
			level := slog.LevelWarn
			if cfg.AllowLoopback {
				level = slog.LevelInfo // local development: loopback is the point
			}
			s.log.Log(context.Background(), level, "turn: no relay IP given and listening on all interfaces: advertising loopback, which only local clients can reach; set the relay IP to the public address",
				"listen", cfg.UDPAddr)
			fallthrough
		case udpIP.IsLoopback():
			relayIP = net.IPv4(127, 0, 0, 1)
			if udpIP.To4() == nil {
				relayIP = net.IPv6loopback
			}
		default:
			relayIP = udpIP
		}
	}
	s.cfg.RelayIP = relayIP

	var tlsCfg *tls.Config
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("turnserver: load TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.GetCertificate != nil {
		tlsCfg = &tls.Config{GetCertificate: cfg.GetCertificate, MinVersion: tls.VersionTLS12}
	}

	lc := net.ListenConfig{}
	ctx := context.Background()
	udp, err := lc.ListenPacket(ctx, udpNet, cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("turnserver: listen UDP %s: %w", cfg.UDPAddr, err)
	}
	s.udp = udp
	s.udpAddr = udp.LocalAddr()
	tcp, err := lc.Listen(ctx, tcpNet, cfg.TCPAddr)
	if err != nil {
		return fmt.Errorf("turnserver: listen TCP %s: %w", cfg.TCPAddr, err)
	}
	s.tcp = tcp
	s.tcpAddr = tcp.Addr()
	if tlsCfg != nil {
		tlsNet, _, err := listenNetwork("tcp", cfg.TLSAddr)
		if err != nil {
			return err
		}
		ln, err := lc.Listen(ctx, tlsNet, cfg.TLSAddr)
		if err != nil {
			return fmt.Errorf("turnserver: listen TLS %s: %w", cfg.TLSAddr, err)
		}
		s.tlsLn = ln
		s.tlsAddr = ln.Addr()
	}

	// Relay sockets bind to the UDP listen IP (0.0.0.0 when unspecified) and are advertised
	// as RelayIP, which may be a NATed public address not present on this host.
	gen := &relayGen{s: s, inner: &turn.RelayAddressGeneratorPortRange{
		RelayAddress: relayIP,
		Address:      udpIP.String(),
		MinPort:      cfg.RelayPortMin,
		MaxPort:      cfg.RelayPortMax,
		MaxRetries:   64, // random probing; a busy range needs more than pion's 10 tries
	}}
	if err := gen.Validate(); err != nil {
		return fmt.Errorf("turnserver: relay address generator: %w", err)
	}

	listeners := []turn.ListenerConfig{{
		Listener:              &trackedListener{Listener: tcp, s: s},
		RelayAddressGenerator: gen,
		PermissionHandler:     s.permission,
	}}
	if s.tlsLn != nil {
		listeners = append(listeners, turn.ListenerConfig{
			Listener:              &trackedListener{Listener: s.tlsLn, s: s, tls: tlsCfg},
			RelayAddressGenerator: gen,
			PermissionHandler:     s.permission,
		})
	}
	ts, err := turn.NewServer(turn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		LoggerFactory: pionLoggerFactory{log: s.log, rate: s.rate},
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.mirrorPermission(relay, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.mirrorPermission(relay, peer, false)
			},
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            &serverPacketConn{PacketConn: udp, s: s},
			RelayAddressGenerator: gen,
			PermissionHandler:     s.permission,
		}},
		ListenerConfigs: listeners,
	})
	if err != nil {
		return fmt.Errorf("turnserver: start pion/turn: %w", err)
	}
	s.turn = ts
	if len(cfg.Secret) < 16 {
		s.log.Warn("turn: shared secret is shorter than 16 bytes; credentials are only as strong as the secret")
	}
	s.log.Info("turn: listening", "udp", s.udpAddr.String(), "tcp", s.tcpAddr.String(),
		"tls", addrString(s.tlsAddr), "relay_ip", relayIP.String(),
		"relay_ports", strconv.Itoa(int(cfg.RelayPortMin))+"-"+strconv.Itoa(int(cfg.RelayPortMax)),
		"allow_loopback", cfg.AllowLoopback, "allow_private", cfg.AllowPrivate)

	return nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}

	return a.String()
}

// UDPAddr is the UDP listen address.
func (s *Server) UDPAddr() net.Addr { return s.udpAddr }

// TCPAddr is the TCP listen address.
func (s *Server) TCPAddr() net.Addr { return s.tcpAddr }

// TLSAddr is the TLS listen address, nil without a certificate.
func (s *Server) TLSAddr() net.Addr { return s.tlsAddr }

// RelayIP is the address advertised in relayed candidates.
func (s *Server) RelayIP() net.IP { return s.cfg.RelayIP }

// Realm is the credential realm.
func (s *Server) Realm() string { return s.cfg.Realm }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.counters.snapshot() }

// refuse counts a refusal and logs it, at most once per reason per logEvery.
func (s *Server) refuse(r Reason, msg string, args ...any) {
	s.refuseAt(slog.LevelInfo, r, msg, args...)
}

// refuseAt is refuse at another log level.
func (s *Server) refuseAt(level slog.Level, r Reason, msg string, args ...any) {
	if i := reasonIndex(r); i >= 0 {
		s.counters.refusals[i].Add(1)
	}
	s.rate.logf(string(r), level, "turn: "+msg, append(args, slog.String("reason", string(r)))...)
}

// clip bounds attacker-chosen strings in log lines.
func clip(v string) string {
	const n = 64
	if len(v) > n {
		return v[:n] + "…"
	}

	return v
}

// authenticate is pion's AuthHandler: it checks realm, username shape and expiry (an
// expired credential passes while Config.Alive says its peer is still connected), and
// returns the long-term key of the coturn REST password. pion then verifies
// MESSAGE-INTEGRITY with it; a wrong password is reported through onAuth. The user id given
// back to pion (quotas, allocation ownership) is the peer id and the client's address key
// (userID), so a peer that renews its credentials keeps its allocations and its quota, and
// the per-address quota knows the address.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	if ra.Realm != s.cfg.Realm {
		s.refuse(ReasonAuth, "auth refused: wrong realm", slog.String("src", addrString(ra.SrcAddr)),
			slog.String("realm", clip(ra.Realm)))

		return "", nil, false
	}
	peerID, err := CheckUsername(ra.Username, time.Now())
	if errors.Is(err, ErrExpired) && s.cfg.Alive != nil {
		if _, id, perr := ParseUsername(ra.Username); perr == nil && s.cfg.Alive(id) {
			peerID, err = id, nil
		}
	}
	switch {
	case errors.Is(err, ErrExpired):
		s.refuse(ReasonExpired, "auth refused: credential expired", slog.String("src", addrString(ra.SrcAddr)),
			slog.String("username", clip(ra.Username)))

		return "", nil, false
	case err != nil:
		s.refuse(ReasonAuth, "auth refused: malformed username", slog.String("src", addrString(ra.SrcAddr)),
			slog.String("username", clip(ra.Username)))

		return "", nil, false
	}

	addr, _ := ipkey.OfNet(ra.SrcAddr)

	return userID(peerID, addr), turn.GenerateAuthKey(ra.Username, s.cfg.Realm, Password(s.cfg.Secret, ra.Username)), true
}

// onAuth counts failed MESSAGE-INTEGRITY checks (wrong password or secret).
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, ok bool) {
	if ok {
		return
	}
	s.refuse(ReasonAuth, "auth refused: bad message integrity (wrong password)", slog.String("src", addrString(src)),
		slog.String("username", clip(username)), slog.String("method", method))
}

// quota is pion's QuotaHandler, asked before each Allocate.
func (s *Server) quota(uid, _ string, src net.Addr) bool {
	peer, addr := splitUserID(uid)
	if s.users.canAllocate(peer) && s.addrs.canAllocate(string(addr)) {
		return true
	}
	s.refuse(ReasonQuota, "allocation refused: quota reached", slog.String("src", addrString(src)),
		slog.String("user", peer), slog.Int("max", s.cfg.MaxAllocationsPerUser), slog.Int("max_per_ip", s.cfg.MaxAllocationsPerIP))

	return false
}

// permission is pion's PermissionHandler, asked for every CreatePermission, ChannelBind and
// Connect peer address.
func (s *Server) permission(client net.Addr, peer net.IP) bool {
	class, ok := s.policy.allowIP(peer)
	if !ok {
		// Browsers ask for permissions towards every candidate of the other
		// peer, private and loopback host candidates too, so this refusal is
		// routine during normal playback: counted, logged at debug only.
		s.refuseAt(slog.LevelDebug, ReasonPeerAddress, "permission refused: peer address not allowed",
			slog.String("src", addrString(client)), slog.String("peer", peer.String()), slog.String("class", class.String()))
	}

	return ok
}

func (s *Server) onAllocationCreated(src, _ net.Addr, proto, userID, _ string, relay net.Addr, _ int) {
	s.counters.allocations.Add(1)
	s.log.Debug("turn: allocation created", "src", addrString(src), "transport", proto, "user", userID,
		"relay", addrString(relay))
}

func (s *Server) mirrorPermission(relay net.Addr, peer net.IP, on bool) {
	key, ok := addrKey(relay)
	if !ok {
		return
	}
	s.mu.Lock()
	rc := s.relays[key]
	s.mu.Unlock()
	if rc != nil {
		rc.setPermission(peer, on)
	}
}

// addConn registers a TCP/TLS control connection; false when closing, past MaxConns or
// past MaxConnsPerIP for its address.
func (s *Server) addConn(c *trackedConn) bool {
	var loopback bool
	c.ip, loopback = ipkey.OfNet(c.RemoteAddr())
	s.mu.Lock()
	full := len(s.conns) >= s.cfg.MaxConns
	ok := !s.closing.Load() && !full && s.connsPerIP.Acquire(c.ip, loopback)
	if ok {
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	switch {
	case ok, s.closing.Load():
	case full:
		s.refuse(ReasonCapacity, "connection refused: too many TCP/TLS connections",
			slog.String("src", addrString(c.RemoteAddr())), slog.Int("max", s.cfg.MaxConns))
	default:
		s.refuse(ReasonCapacity, "connection refused: too many TCP/TLS connections from this address",
			slog.String("src", addrString(c.RemoteAddr())), slog.Int("max_per_ip", s.cfg.MaxConnsPerIP))
	}

	return ok
}

func (s *Server) removeConn(c *trackedConn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.connsPerIP.Release(c.ip)
	}
	s.mu.Unlock()
}

// closeListeners closes whatever start opened, for a failed start.
func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
	if s.tlsLn != nil {
		_ = s.tlsLn.Close()
	}
}

// Close stops the server: listeners, control connections and relay sockets, then waits
// (up to 5 s) until pion's goroutines have left them and every allocation is gone.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		var errs []error
		if err := s.turn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("turnserver: close listeners: %w", err))
		}
		s.mu.Lock()
		conns := make([]*trackedConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		relays := make([]*relayConn, 0, len(s.relays))
		for _, r := range s.relays {
			relays = append(relays, r)
		}
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
		for _, r := range relays {
			_ = r.Close()
		}
		deadline := time.Now().Add(closeWait)
		for s.inflight.Load() > 0 || s.turn.AllocationCount() > 0 || s.counters.active.Load() > 0 {
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("turnserver: close: gave up waiting after %s (%d reads in flight, %d allocations)",
					closeWait, s.inflight.Load(), s.turn.AllocationCount()))

				break
			}
			time.Sleep(time.Millisecond)
		}
		s.closeErr = errors.Join(errs...)
	})

	return s.closeErr
}
