package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/role/seederrole"
	"github.com/banyan-live/banyan/role/trackerrole"
	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/seeder/rtmpingest"
	"github.com/banyan-live/banyan/seeder/whip"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/tracker"
	"github.com/banyan-live/banyan/turnserver"
	"github.com/banyan-live/banyan/web"
)

// upOptions are the flags of `banyan up`.
type upOptions struct {
	HTTP       string
	RTMP       string
	TURN       string
	TURNSecret string
	Data       string
	PublicHost string
	DemoStream string
	Demo       bool // false: no demo stream, no demo key file (production)
	LogLevel   string
	Stripes    int
	RootCap    int
	ICELoop    bool
	TURNPriv   bool
	Limits     upLimits
	PProf      bool
	TLS        tlsOptions // the front door: TLS, redirect, HSTS, trusted proxies (tls.go)
	// MetricsToken opens /metrics on the HTTP port besides the admin
	// token; MetricsAddr serves /metrics alone, without a token, on
	// another listener (bind it to a private interface).
	MetricsToken, MetricsAddr string
	// TURNSecretFile and MetricsTokenFile hold those secrets in a file
	// (a mounted secret), off the command line that ps shows.
	TURNSecretFile, MetricsTokenFile string

	// OnSealed, not a flag, sees every chunk the seeder seals (in-process
	// callers: the webrtc swarm benchmark times publish → play with it).
	OnSealed func(stream string, e *seeder.Entry)
}

// upLimits are the bounds on what a stranger can make `banyan up` hold
// (SECURITY.md lists them with their defaults).
type upLimits struct {
	HTTPConns, HTTPConnsPerIP, HTTPMaxHeader     int
	HTTPHeaderTimeout, HTTPReadTimeout, HTTPIdle time.Duration
	HTTPWriteTimeout                             time.Duration
	WSConnsPerIP, WSMsgBurst, PeersPerStream     int
	WSMsgRate                                    float64
	WSJoinTimeout                                time.Duration
	RTMPConns, RTMPConnsPerIP, RTMPMaxMessage    int
	RTMPHandshake, RTMPIdle                      time.Duration
	WHIPSessions, WHIPMaxBody                    int
	WHIPNoMedia                                  time.Duration
	LiveStreams                                  int
	TURNAllocs, TURNConns, TURNConnsPerIP        int
	TURNAllocsPerIP                              int
	TURNBps, TURNBpsPerIP, TURNTotalBps          int64
	TURNLifetime, TURNCredTTL                    time.Duration
}

func (o *upOptions) register(c *command) {
	c.String(&o.HTTP, "http", ":8080", "HTTP listen address (pages, signaling, origin, API, metrics)")
	c.String(&o.RTMP, "rtmp", ":1935", "RTMP ingest listen address")
	c.String(&o.TURN, "turn", ":3478", "TURN listen address (UDP and TCP)")
	c.String(&o.TURNSecret, "turn-secret", "", "TURN shared secret (generated and kept in the data dir when empty); prefer BANYAN_TURN_SECRET or --turn-secret-file to the command line, which ps shows")
	c.String(&o.TURNSecretFile, "turn-secret-file", "", "read the TURN shared secret from this file (surrounding whitespace ignored)")
	c.String(&o.Data, "data", "./banyan-data", "data directory (bbolt database, admin token, secrets)")
	c.String(&o.PublicHost, "public-host", "", "host name printed in URLs (default: localhost or the listen host)")
	c.Bool(&o.Demo, "demo", true, "create the demo stream on first start and keep its key in the data dir so the banner can show it (--demo=false in production)")
	c.String(&o.DemoStream, "demo-stream", "demo", "name of the demo stream (empty: none)")
	c.String(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	c.Int(&o.Stripes, "stripes", overlay.DefaultStripes, "stripe trees per stream (K): each viewer has K parents")
	c.Int(&o.RootCap, "root-capacity", overlay.DefaultRootCapacity, "children the seeder feeds directly in each stripe")
	c.Bool(&o.ICELoop, "ice-loopback", false, "WebRTC over loopback only, and TURN may relay to loopback (tests and single-machine demos; never on a shared host)")
	c.Bool(&o.TURNPriv, "turn-allow-private", false, "let TURN relay to private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): a LAN or lab, never on the internet")
	c.Bool(&o.PProf, "pprof", false, "serve /debug/pprof/ on the HTTP port (admin token required)")
	c.String(&o.MetricsToken, "metrics-token", "", "bearer token that opens /metrics on the HTTP port (the admin token always does); prefer BANYAN_METRICS_TOKEN to the command line")
	c.String(&o.MetricsTokenFile, "metrics-token-file", "", "read the metrics token from this file (surrounding whitespace ignored)")
	c.String(&o.MetricsAddr, "metrics", "", "also serve /metrics without a token on this address (a private interface, e.g. 10.0.0.5:9100)")
	o.TLS.register(c)
	l := &o.Limits
	c.Int(&l.HTTPConns, "http-max-conns", 8192, "HTTP: connections open at once (0: no limit)")
	c.Int(&l.HTTPConnsPerIP, "http-max-conns-per-ip", 64, "HTTP: connections open at once per remote address, loopback exempt (0: no limit)")
	c.Int(&l.HTTPMaxHeader, "http-max-header-bytes", 16<<10, "HTTP: request line and headers, bytes")
	c.Duration(&l.HTTPHeaderTimeout, "http-header-timeout", 5*time.Second, "HTTP: time to send the request headers (slow-header guard)")
	c.Duration(&l.HTTPReadTimeout, "http-read-timeout", 30*time.Second, "HTTP: time to send a whole request, body included (slow-body guard)")
	c.Duration(&l.HTTPWriteTimeout, "http-write-timeout", 60*time.Second, "HTTP: time to write a whole response to a slow reader (websockets and the dashboard's event stream bound each write instead)")
	c.Duration(&l.HTTPIdle, "http-idle-timeout", 120*time.Second, "HTTP: keep-alive idle time between requests")
	c.Int(&l.WSConnsPerIP, "ws-max-conns-per-ip", 32, "signaling: websockets per remote address, loopback exempt")
	c.Float(&l.WSMsgRate, "ws-msg-rate", 20, "signaling: messages per second per websocket")
	c.Int(&l.WSMsgBurst, "ws-msg-burst", 60, "signaling: message burst per websocket")
	c.Duration(&l.WSJoinTimeout, "ws-join-timeout", 10*time.Second, "signaling: time from connect to the join message")
	c.Int(&l.PeersPerStream, "max-peers-per-stream", 100_000, "signaling: viewers per stream")
	c.Int(&l.RTMPConns, "rtmp-max-conns", rtmpingest.DefaultMaxConns, "RTMP: connections open at once")
	c.Int(&l.RTMPConnsPerIP, "rtmp-max-conns-per-ip", rtmpingest.DefaultMaxConnsPerIP, "RTMP: connections per remote address")
	c.Int(&l.RTMPMaxMessage, "rtmp-max-message-bytes", rtmpingest.DefaultMaxMessageSize, "RTMP: largest audio/video message (a keyframe)")
	c.Duration(&l.RTMPHandshake, "rtmp-handshake-timeout", rtmpingest.DefaultHandshakeTimeout, "RTMP: handshake, connect and publish, key check included")
	c.Duration(&l.RTMPIdle, "rtmp-idle-timeout", rtmpingest.DefaultIdleTimeout, "RTMP: a publish that sends nothing this long is ended")
	c.Int(&l.WHIPSessions, "whip-max-sessions", whip.DefaultMaxSessions, "WHIP: negotiating and live sessions")
	c.Int(&l.WHIPMaxBody, "whip-max-body-bytes", whip.DefaultMaxBody, "WHIP: SDP offer or PATCH body")
	c.Duration(&l.WHIPNoMedia, "whip-no-media-timeout", whip.DefaultNoMediaTimeout, "WHIP: a session without usable media this long is ended")
	c.Int(&l.LiveStreams, "max-live-streams", seeder.DefaultMaxLive, "streams live at once on this server")
	c.Int(&l.TURNAllocs, "turn-max-allocations", turnserver.DefaultMaxAllocationsPerUser, "TURN: allocations per peer")
	c.Int(&l.TURNConns, "turn-max-conns", turnserver.DefaultMaxConns, "TURN: TCP/TLS control connections")
	c.Int(&l.TURNConnsPerIP, "turn-max-conns-per-ip", turnserver.DefaultMaxConnsPerIP, "TURN: TCP/TLS control connections per client address (IPv6 by /64)")
	c.Int64(&l.TURNBps, "turn-max-bps", turnserver.DefaultMaxBandwidthBpsPerUser, "TURN: relayed bits per second per peer, both directions")
	c.Duration(&l.TURNLifetime, "turn-max-lifetime", turnserver.DefaultMaxLifetime, "TURN: an allocation's total age")
	c.Int(&l.TURNAllocsPerIP, "turn-max-allocations-per-ip", turnserver.DefaultMaxAllocationsPerIP, "TURN: allocations per client address (IPv6 by /64), whatever the peer ids")
	c.Int64(&l.TURNBpsPerIP, "turn-max-bps-per-ip", turnserver.DefaultMaxBandwidthBpsPerIP, "TURN: relayed bits per second per client address, both directions")
	c.Int64(&l.TURNTotalBps, "turn-max-total-bps", turnserver.DefaultMaxBandwidthBps, "TURN: relayed bits per second in total, both directions")
	c.Duration(&l.TURNCredTTL, "turn-credential-ttl", 10*time.Minute, "TURN: lifetime of a viewer's credentials; the tracker sends fresh ones every half of it while the viewer stays connected")
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o upOptions
	c := newCommand("up", "", "Runs the whole system in one process with embedded defaults: the tracker, a seeder,\nthe TURN relay and the web pages. Stop it with Ctrl-C (SIGINT) or SIGTERM.")
	o.register(c)
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("banyan up: unexpected argument %q (see banyan up --help)", c.fs.Arg(0))}
	}
	if err := o.readSecretFiles(); err != nil {
		return err
	}
	log, err := newLogger(stderr, o.LogLevel)
	if err != nil {
		return err
	}
	sys, err := startSystem(ctx, o, log)
	if err != nil {
		return startFailed(err, o.Data)
	}
	sys.printBanner(stdout)
	<-ctx.Done()
	log.Info("shutting down")
	return sys.Close()
}

// readSecretFiles fills the secrets given as files. A secret given twice
// is a mistake: which one wins would be a guess.
func (o *upOptions) readSecretFiles() error {
	for _, f := range []struct {
		flag, file string
		value      *string
	}{
		{"turn-secret", o.TURNSecretFile, &o.TURNSecret},
		{"metrics-token", o.MetricsTokenFile, &o.MetricsToken},
	} {
		if f.file == "" {
			continue
		}
		if *f.value != "" {
			return usageError{fmt.Sprintf("banyan up: --%s and --%s-file both given (or %s set): use one", f.flag, f.flag, envName(f.flag))}
		}
		b, err := os.ReadFile(f.file)
		if err != nil {
			return fmt.Errorf("--%s-file: %w", f.flag, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return fmt.Errorf("--%s-file: %s is empty", f.flag, f.file)
		}
		*f.value = v
	}
	return nil
}

// system is everything `banyan up` runs, with one Close for all of it.
type system struct {
	opt     upOptions
	log     *slog.Logger
	store   *store.Store
	http    *http.Server
	ln      net.Listener
	front   *frontDoor
	metrics *http.Server // --metrics, nil without
	metErr  chan error
	// The roles (role/trackerrole, role/seederrole): `banyan tracker` and
	// `banyan seeder` build the same ones, each in its own process.
	tracker    *trackerrole.Role
	seed       *seederrole.Role
	turn       *turnserver.Server
	turnSecret []byte
	// seederKey is the in-process seeder's own secret (its id "local");
	// the tracker accepts no other seeder.
	seederKey []byte

	adminToken string // set only on the start that created it
	demoKey    string
	serveErr   chan error
}

func startSystem(ctx context.Context, o upOptions, log *slog.Logger) (*system, error) {
	// TLS flags first: a mistake there is reported before anything opens.
	front, err := newFrontDoor(o.TLS, o.Data, log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(o.Data, store.Options{})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("data dir %s is in use by another banyan process (stop it or pass --data)", o.Data)
		}
		return nil, fmt.Errorf("cannot use data dir %s: %w", o.Data, err)
	}
	s := &system{opt: o, log: log, store: st, front: front, serveErr: make(chan error, 1)}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *system) start(ctx context.Context) error {
	tok, created, err := s.store.EnsureAdminToken()
	if err != nil {
		return err
	}
	if created {
		s.adminToken = tok
	}
	if s.demoKey, err = s.ensureDemoStream(); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := s.newSeeder(reg); err != nil {
		return err
	}
	// The tracker first: the TURN relay asks it which peers are alive.
	if err := s.startTracker(reg); err != nil {
		return err
	}
	if err := s.startTURN(reg); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", s.opt.HTTP)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (--http): %w", s.opt.HTTP, unwrapOpError(err))
	}
	s.ln = ln
	lim := s.opt.Limits
	httpRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "banyan_http_refused_connections_total", Help: "HTTP connections closed at accept, by limit (per_ip, total).",
	}, []string{"limit"})
	reg.MustRegister(httpRefused)
	limited := httpx.LimitListener(ln, httpx.LimitConfig{
		PerIP: lim.HTTPConnsPerIP, Total: lim.HTTPConns, ExemptLoopback: true, Exempt: s.front.exemptProxy(),
		OnRefuse: func(reason string) { httpRefused.WithLabelValues(reason).Inc() },
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	// /metrics names every stream, private ones included, and shows the
	// load: on the public port it needs the admin or the metrics token.
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux.Handle("GET /metrics", tokenGate(metricsTokenOK(s.store.CheckAdminToken, s.opt.MetricsToken), "admin or metrics token", metrics))
	if err := s.startMetrics(ctx, metrics); err != nil {
		return err
	}
	// The roles' routes: the tracker's (/ws, /api/, /dashboard, the web
	// pages at /) and the seeder's (/whip/, /chunks/, /hls/).
	s.tracker.Mount(mux)
	s.seed.Mount(mux)
	if s.opt.PProf {
		mux.Handle("/debug/pprof/", pprofHandler(s.store))
	}

	s.http = &http.Server{
		Handler:           s.front.wrap(mux),
		ReadHeaderTimeout: lim.HTTPHeaderTimeout,
		ReadTimeout:       lim.HTTPReadTimeout,
		WriteTimeout:      lim.HTTPWriteTimeout,
		IdleTimeout:       lim.HTTPIdle,
		MaxHeaderBytes:    lim.HTTPMaxHeader,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() { s.serveErr <- s.front.serve(s.http, limited) }()
	s.log.Info("http listening", "addr", ln.Addr().String(), "tls", s.front.TLS())
	if err := s.front.startRedirect(ctx, ln.Addr(), lim); err != nil {
		return err
	}

	// The seeder registers each live stream with the tracker over the same
	// websocket protocol a standalone seeder uses (its id "local" and its
	// own secret); each stream's root peer rides that session.
	// No origin URL: viewers fetch chunks from the tracker's host.
	if err := s.seed.Listen(); err != nil {
		return err
	}
	if err := s.front.startRTMPS(ctx, s.seed.RTMPConfig); err != nil {
		return err
	}
	rtmpURL := s.front.rtmpURL(s.host(), s.seed.RTMPAddr())
	if err := s.seed.Start(ctx, seederrole.Link{
		TrackerURL: s.front.scheme("ws") + "://" + loopbackAddr(ln.Addr()) + "/ws",
		HTTPClient: s.front.selfClient(),
		ID:         "local", Secret: s.seederKey, RTMPURL: rtmpURL,
	}); err != nil {
		return err
	}
	s.tracker.Tracker().AddIngest(tracker.IngestPoint{RTMPURL: rtmpURL})
	return nil
}

// startMetrics serves /metrics alone on --metrics, without a token: the
// operator binds it where only the scraper reaches.
func (s *system) startMetrics(ctx context.Context, h http.Handler) error {
	if s.opt.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.opt.MetricsAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (--metrics): %w", s.opt.MetricsAddr, unwrapOpError(err))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	lim := s.opt.Limits
	s.metrics = &http.Server{
		Handler: mux, ReadHeaderTimeout: lim.HTTPHeaderTimeout, ReadTimeout: lim.HTTPReadTimeout,
		WriteTimeout: lim.HTTPWriteTimeout, IdleTimeout: lim.HTTPIdle, MaxHeaderBytes: lim.HTTPMaxHeader,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	s.metErr = make(chan error, 1)
	go func() { s.metErr <- s.metrics.Serve(ln) }()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// loopbackAddr turns a listen address into one this process can dial.
func loopbackAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// newSeeder makes the seeder role (role/seederrole) on the local store.
func (s *system) newSeeder(reg prometheus.Registerer) error {
	seed, err := s.store.Secret("seeder-ed25519-seed", ed25519.SeedSize)
	if err != nil {
		return err
	}
	l := s.opt.Limits
	s.seed, err = seederrole.New(seederrole.Config{
		SigningKey: ed25519.NewKeyFromSeed(seed), Keys: s.store, RTMPAddr: s.opt.RTMP,
		Limits: seederrole.Limits{
			RTMPConns: l.RTMPConns, RTMPConnsPerIP: l.RTMPConnsPerIP, RTMPMaxMessage: l.RTMPMaxMessage,
			RTMPHandshake: l.RTMPHandshake, RTMPIdle: l.RTMPIdle,
			WHIPSessions: l.WHIPSessions, WHIPMaxBody: l.WHIPMaxBody, WHIPNoMedia: l.WHIPNoMedia,
			LiveStreams: l.LiveStreams,
		},
		ICELoopback:    s.opt.ICELoop,
		WHIPICEServers: s.whipICEServers,
		OnSealed:       s.opt.OnSealed,
		ReserveEpochs:  s.store.ReserveEpochs,
		Logger:         s.log, Registerer: reg,
	})
	return err
}

// startTURN runs the bundled TURN relay. It relays to loopback only with
// --ice-loopback: every viewer of a public stream gets credentials, and
// relaying to 127.0.0.1 would hand them this machine's local services. A
// browser on the same machine does not need it: its host candidates reach
// the root peer directly.
func (s *system) startTURN(reg prometheus.Registerer) error {
	if s.opt.TURNSecret != "" {
		s.turnSecret = []byte(s.opt.TURNSecret)
	} else {
		var err error
		if s.turnSecret, err = s.store.Secret("turn-secret", 32); err != nil {
			return err
		}
	}
	var err error
	s.turn, err = turnserver.New(turnserver.Config{
		UDPAddr: s.opt.TURN, TCPAddr: s.opt.TURN, Secret: s.turnSecret,
		TLSAddr: s.front.turnsAddr(), GetCertificate: s.front.getCertificate(),
		RelayIP: net.ParseIP(s.opt.PublicHost), AllowLoopback: s.opt.ICELoop, AllowPrivate: s.opt.TURNPriv,
		MaxAllocationsPerUser: s.opt.Limits.TURNAllocs, MaxBandwidthBpsPerUser: s.opt.Limits.TURNBps,
		MaxAllocationsPerIP: s.opt.Limits.TURNAllocsPerIP, MaxBandwidthBpsPerIP: s.opt.Limits.TURNBpsPerIP,
		MaxBandwidthBps: s.opt.Limits.TURNTotalBps, Alive: s.turnPeerAlive,
		MaxLifetime: s.opt.Limits.TURNLifetime, MaxConns: s.opt.Limits.TURNConns, MaxConnsPerIP: s.opt.Limits.TURNConnsPerIP,
		Logger: s.log.With("component", "turn"), Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("cannot start TURN on %s (--turn): %w", s.opt.TURN, unwrapOpError(err))
	}
	return nil
}

// whipCredentialTTL is the lifetime of a WHIP publisher's TURN
// credentials: they come with the key-checked POST and nothing refreshes
// them, so they outlast a long broadcast.
const whipCredentialTTL = 12 * time.Hour

// whipICEServers hands a WHIP publisher the bundled TURN relay.
func (s *system) whipICEServers() []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, is := range s.iceServersTTL(protocol.PeerID(0), whipCredentialTTL) {
		out = append(out, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	return out
}

// turnPeerAlive keeps an expired viewer credential working while the
// viewer is still joined (turnserver.Config.Alive).
func (s *system) turnPeerAlive(peer string) bool {
	id, err := strconv.ParseUint(peer, 10, 64)
	return err == nil && s.tracker.Tracker().Alive(protocol.PeerID(id))
}

// iceServers hands a viewer the bundled TURN relay with credentials that
// expire after --turn-credential-ttl (coturn REST convention, so coturn
// works too); the tracker sends fresh ones while the viewer stays.
func (s *system) iceServers(peer protocol.PeerID) []protocol.ICEServer {
	return s.iceServersTTL(peer, s.opt.Limits.TURNCredTTL)
}

func (s *system) iceServersTTL(peer protocol.PeerID, ttl time.Duration) []protocol.ICEServer {
	user, pass := turnserver.Credentials(s.turnSecret, fmt.Sprint(peer), ttl, time.Now())
	host := s.turn.RelayIP().String()
	udp := net.JoinHostPort(host, portOf(s.turn.UDPAddr()))
	tcp := net.JoinHostPort(host, portOf(s.turn.TCPAddr()))
	turn := []string{"turn:" + udp + "?transport=udp", "turn:" + tcp + "?transport=tcp"}
	if a := s.turn.TLSAddr(); a != nil {
		// By name: the client checks the certificate against it.
		turn = append(turn, "turns:"+hostPort(s.host(), a.String())+"?transport=tcp")
	}
	return []protocol.ICEServer{
		{URLs: []string{"stun:" + udp}},
		{URLs: turn, Username: user, Credential: pass},
	}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// startTracker makes the tracker role (role/trackerrole) on the local
// store, with the in-process seeder as its Local.
func (s *system) startTracker(reg prometheus.Registerer) (err error) {
	l := s.opt.Limits
	if s.seederKey, err = s.store.Secret("seeder-key/local", 32); err != nil {
		return err
	}
	s.tracker, err = trackerrole.New(trackerrole.Config{
		Store: s.store, Stripes: s.opt.Stripes, RootCapacity: s.opt.RootCap,
		Limits: trackerrole.Limits{
			WSConnsPerIP: l.WSConnsPerIP, WSMsgRate: l.WSMsgRate, WSMsgBurst: l.WSMsgBurst,
			WSJoinTimeout: l.WSJoinTimeout, PeersPerStream: l.PeersPerStream,
		},
		ICEServers: s.iceServers, ICERefresh: l.TURNCredTTL / 2,
		Local: s.seed.Seeder(), Page: web.NewHandler(s.webConfig()),
		SeederKey: func(id string) ([]byte, error) {
			if id != "local" {
				return nil, fmt.Errorf("seeder %q: banyan up has only its own seeder", id)
			}
			return s.seederKey, nil
		},
		Logger: s.log, Registerer: reg,
	})
	return err
}

// demoKeyFile keeps the demo stream's key so `make run` can print the OBS
// settings on every start. Only the auto-created demo stream has one; keys
// made with `banyan key create` are shown once and never written down.
const demoKeyFile = "demo-stream.key"

func (s *system) ensureDemoStream() (string, error) {
	name := s.opt.DemoStream
	path := filepath.Join(s.store.Dir(), demoKeyFile)
	if !s.opt.Demo || name == "" {
		if _, err := os.Stat(path); err == nil {
			// Left by an earlier demo start: its key still publishes.
			s.log.Warn("demo disabled, but a demo stream key is still on disk: delete the file and rotate or revoke that stream's key",
				"file", path, "stream", name)
		}
		return "", nil
	}
	if _, err := s.store.Stream(name); err == nil {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", nil // created by hand, or the file was removed: nothing to show
		}
		return strings.TrimSpace(string(b)), nil
	}
	_, key, err := s.store.CreateStream(name)
	if err != nil {
		return "", fmt.Errorf("create demo stream %q: %w", name, err)
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write demo stream key: %w", err)
	}
	s.log.Info("demo stream created", "stream", name)
	return key, nil
}

// Close stops every listener and closes the store.
func (s *system) Close() error {
	var errs []error
	if s.seed != nil {
		// Tracker sessions and root peers end, and blocked origin
		// requests, so the HTTP Shutdown does not wait for them.
		s.seed.CloseLinks()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// Websockets end first, so Shutdown does not wait for them.
		s.tracker.Close()
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		if err := <-s.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http serve: %w", err))
		}
	} else if s.tracker != nil {
		s.tracker.Close()
	}
	if err := s.front.Close(); err != nil {
		errs = append(errs, err)
	}
	if s.metrics != nil {
		if err := s.metrics.Close(); err != nil {
			errs = append(errs, fmt.Errorf("metrics close: %w", err))
		}
		if err := <-s.metErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("metrics serve: %w", err))
		}
	}
	if s.seed != nil {
		// WHIP, RTMP and every publish.
		if err := s.seed.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.turn != nil {
		if err := s.turn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close turn: %w", err))
		}
	}
	if err := s.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	s.log.Info("stopped")
	return errors.Join(errs...)
}

// host is the host name to print in URLs.
func (s *system) host() string {
	if s.opt.PublicHost != "" {
		return s.opt.PublicHost
	}
	if h := s.front.host(); h != "" {
		return h // the certificate's name: the one browsers accept
	}
	return "localhost"
}

func hostPort(host, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return host
	}
	return net.JoinHostPort(host, port)
}

func (s *system) printBanner(w io.Writer) {
	web := s.front.scheme("http") + "://" + hostPort(s.host(), s.ln.Addr().String())
	rtmp := s.front.rtmpURL(s.host(), s.seed.RTMPAddr())
	fmt.Fprintf(w, "\nBanyan is up.\n\n")
	s.printAdminToken(w, web)
	if s.demoKey != "" {
		fmt.Fprintf(w, "  Broadcast from OBS (Settings > Stream > Service: Custom):\n")
		fmt.Fprintf(w, "    Server      %s\n    Stream Key  %s\n", rtmp, s.demoKey)
		fmt.Fprintf(w, "    and under Output (Advanced): %s (OBS's default of 0 means 8 s)\n", seeder.KeyframeAdvice)
		s.front.printPlainRTMP(w, s.host(), s.seed.RTMPAddr())
		fmt.Fprintf(w, "  or from a terminal:\n    ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 -pix_fmt yuv420p -g 60 -c:a aac -f flv %s/%s\n\n", rtmp, s.demoKey)
		fmt.Fprintf(w, "  Watch:       %s/watch/%s\n", web, s.opt.DemoStream)
		fmt.Fprintf(w, "  LL-HLS:      %s/hls/%s/index.m3u8  (VLC, ffplay, Safari)\n", web, s.opt.DemoStream)
	}
	fmt.Fprintf(w, "  Dashboard:   %s/dashboard\n", web)
	fmt.Fprintf(w, "  Metrics:     %s/metrics  (Authorization: Bearer <admin or --metrics-token>)\n", web)
	// Over TLS the CLI must use the certificate's name; plain HTTP is
	// reached on loopback.
	server := cliServerURL(s.ln.Addr())
	if s.front.TLS() {
		server = web
	}
	fmt.Fprintf(w, "  New stream:  %s\n\n", keyCreateLine(server, s.store.Dir()))
}

// unwrapOpError drops the "listen tcp :8080:" prefix the caller already says.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
