package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/banyan-live/banyan/cluster"
	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/role/seederrole"
	"github.com/banyan-live/banyan/role/trackerrole"
	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/store/etcdstore"
	"github.com/banyan-live/banyan/tracker"
	"github.com/banyan-live/banyan/turnserver"
	"github.com/banyan-live/banyan/web"
)

// `banyan tracker` and `banyan seeder` run one role each, on separate
// machines, sharing an etcd (docs/cluster.md). They build the same role
// constructors `banyan up` composes in one process.

// etcdOptions are the flags that name the shared store.
type etcdOptions struct {
	Endpoints, Prefix, User, Password string
	CA, Cert, Key                     string
}

func (o *etcdOptions) register(c *command) {
	c.String(&o.Endpoints, "etcd", "", "etcd client URLs, comma-separated: the store a cluster's trackers and seeders share")
	c.String(&o.Prefix, "etcd-prefix", "/banyan/", "key prefix in etcd")
	c.String(&o.User, "etcd-user", "", "etcd user (with --etcd-password; prefer BANYAN_ETCD_PASSWORD to the command line)")
	c.String(&o.Password, "etcd-password", "", "etcd password")
	c.String(&o.CA, "etcd-cacert", "", "CA file etcd's server certificate must chain to (https:// --etcd URLs)")
	c.String(&o.Cert, "etcd-cert", "", "client certificate file, for an etcd that demands one (with --etcd-key)")
	c.String(&o.Key, "etcd-key", "", "client key file")
}

func (o *etcdOptions) open(cmd string) (*etcdstore.Store, error) {
	if o.Endpoints == "" {
		return nil, usageError{fmt.Sprintf("banyan %s: --etcd is required (the cluster's store; `banyan up` runs everything on one machine without it)", cmd)}
	}
	st, err := etcdstore.Open(etcdstore.Config{
		Endpoints: strings.Split(o.Endpoints, ","), Prefix: o.Prefix, Username: o.User, Password: o.Password,
		CAFile: o.CA, CertFile: o.Cert, KeyFile: o.Key,
	})
	if err != nil {
		return nil, fmt.Errorf("open the store: %w", err)
	}
	return st, nil
}

// roleTLS are a role's TLS flags: its HTTP port (and a seeder's RTMPS)
// served with a certificate from files, through `banyan up`'s front door
// (tls.go) without its ACME, redirect or proxy options.
type roleTLS struct {
	CertFile, KeyFile, RTMPS string
}

func (o *roleTLS) register(c *command, rtmps bool) {
	c.String(&o.CertFile, "tls-cert", "", "serve HTTPS/WSS with this PEM certificate chain (reloaded when the file changes)")
	c.String(&o.KeyFile, "tls-key", "", "the private key of --tls-cert (PEM)")
	if rtmps {
		c.String(&o.RTMPS, "rtmps", "", "with TLS, RTMPS ingest listen address, the same keys and limits as RTMP (default :1936 when a certificate is configured; \"off\": none)")
	}
}

// frontDoor checks the flags and loads the certificate (nil error and a
// plain front door without --tls-cert).
func (o roleTLS) frontDoor(cmd string, log *slog.Logger) (*frontDoor, error) {
	rtmps := o.RTMPS
	if o.CertFile == "" {
		if rtmps != "" && rtmps != "off" {
			return nil, usageError{"banyan " + cmd + ": --rtmps needs a certificate: --tls-cert/--tls-key"}
		}
		rtmps = "off"
	}
	return newFrontDoor(tlsOptions{CertFile: o.CertFile, KeyFile: o.KeyFile, RTMPS: rtmps, TURNS: "off", HTTPRedirect: "off"}, "", log)
}

// defaultLimits are `banyan up`'s limits, defaults only: the roles take
// the same bounds (registering the flags sets the defaults).
func defaultLimits() upLimits {
	var o upOptions
	o.register(newCommand("up", "", ""))
	return o.Limits
}

// turnMint mints viewers' ICE servers for an external TURN relay
// (`banyan turn` with the same secret, or coturn).
type turnMint struct {
	addr   string // host:port, UDP and TCP
	secret []byte
	ttl    time.Duration
}

func (m turnMint) iceServers(peer protocol.PeerID) []protocol.ICEServer {
	if m.addr == "" {
		return nil
	}
	user, pass := turnserver.Credentials(m.secret, fmt.Sprint(peer), m.ttl, time.Now())
	return []protocol.ICEServer{
		{URLs: []string{"stun:" + m.addr}},
		{URLs: []string{"turn:" + m.addr + "?transport=udp", "turn:" + m.addr + "?transport=tcp"}, Username: user, Credential: pass},
	}
}

// roleServer is the HTTP server of a standalone role, with `banyan up`'s
// limits, /healthz and a token-gated /metrics.
type roleServer struct {
	srv  *http.Server
	ln   net.Listener
	errc chan error
}

func serveRole(ctx context.Context, addr string, front *frontDoor, mux *http.ServeMux, reg *prometheus.Registry, adminOK func(string) bool, metricsToken string, log *slog.Logger) (*roleServer, error) {
	lim := defaultLimits()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", tokenGate(metricsTokenOK(adminOK, metricsToken), "admin or metrics token",
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (--http): %w", addr, unwrapOpError(err))
	}
	limited := httpx.LimitListener(ln, httpx.LimitConfig{PerIP: lim.HTTPConnsPerIP, Total: lim.HTTPConns, ExemptLoopback: true})
	s := &roleServer{ln: ln, errc: make(chan error, 1), srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: lim.HTTPHeaderTimeout, ReadTimeout: lim.HTTPReadTimeout,
		WriteTimeout: lim.HTTPWriteTimeout, IdleTimeout: lim.HTTPIdle, MaxHeaderBytes: lim.HTTPMaxHeader,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}}
	go func() { s.errc <- front.serve(s.srv, limited) }()
	log.Info("http listening", "addr", ln.Addr().String(), "tls", front.TLS())
	return s, nil
}

func (s *roleServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func runTracker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		e                                  etcdOptions
		httpAddr, level, publicHost        string
		turnAddr, turnSecret, metricsToken string
		id, publicURL, connectSrc          string
		stripes, rootCap                   int
		turnTTL, lease                     time.Duration
		rebalance                          bool
		tlsOpt                             roleTLS
		shard                              atomic.Pointer[cluster.Shard]
	)
	c := newCommand("tracker", "", "Runs the tracker alone: websocket signaling at /ws, the overlay, the admin API, the stream\nmanager (/api/ingest) and the dashboard, on the cluster's etcd. Seeders name it with --tracker.")
	e.register(c)
	c.String(&httpAddr, "http", ":8080", "HTTP listen address (signaling, admin API, dashboard, pages)")
	c.String(&publicHost, "public-host", "", "host name printed in URLs (default: localhost)")
	c.String(&id, "id", "", "this tracker's name in the cluster: 1-64 of a-z, 0-9, '_', '-' (default: random per start)")
	c.String(&publicURL, "public-url", "", "this tracker's signaling URL as clients reach it, ws(s)://HOST:PORT/ws (default ws://PUBLIC-HOST:PORT/ws): other trackers send a stream's clients here")
	c.Duration(&lease, "lease", 10*time.Second, "etcd lease: a tracker silent this long loses its streams to the others")
	tlsOpt.register(c, false)
	c.String(&connectSrc, "connect-src", "", "more origins the pages may connect to, comma-separated (CSP connect-src), e.g. wss://*.tv.example.net: trackers that join later, so pages loaded before follow a stream handed over to one")
	c.Bool(&rebalance, "rebalance", true, "hand a stream over (its clients are moved) to a tracker that joins and wins it by rendezvous hashing; false: streams stay with their tracker while it lives")
	c.Int(&stripes, "stripes", overlay.DefaultStripes, "stripe trees per stream (K): each viewer has K parents")
	c.Int(&rootCap, "root-capacity", overlay.DefaultRootCapacity, "children a seeder feeds directly in each stripe")
	c.String(&turnAddr, "turn-url", "", "host:port of the TURN relay viewers get (`banyan turn` or coturn with the same secret; empty: none)")
	c.String(&turnSecret, "turn-secret", "", "TURN shared secret (required with --turn-url; prefer BANYAN_TURN_SECRET)")
	c.Duration(&turnTTL, "turn-credential-ttl", 10*time.Minute, "lifetime of a viewer's TURN credentials (refreshed every half of it)")
	c.String(&metricsToken, "metrics-token", "", "bearer token that opens /metrics besides the admin token")
	c.String(&level, "log-level", "info", "log level: debug, info, warn, error")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if id == "" {
		id = "t-" + strings.ToLower(rand.Text()[:10])
	}
	if !protocol.ValidSeederID(id) {
		return usageError{"banyan tracker: --id: 1-64 of a-z, 0-9, '_' and '-'"}
	}
	if turnAddr != "" && turnSecret == "" {
		return usageError{"banyan tracker: --turn-url needs --turn-secret (the relay's shared secret)"}
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	// TLS flags first: a mistake there is reported before anything opens.
	front, err := tlsOpt.frontDoor("tracker", log)
	if err != nil {
		return err
	}
	st, err := e.open("tracker")
	if err != nil {
		return err
	}
	defer st.Close()
	tok, created, err := st.EnsureAdminToken()
	if err != nil {
		return err
	}
	// The stream manager: the seeders registered in etcd, kept by a watch.
	dir, err := cluster.StartDirectory(cluster.DirectoryConfig{Client: st.Client(), Prefix: st.Prefix(), Logger: log.With("component", "cluster")})
	if err != nil {
		return err
	}
	defer dir.Close()
	lim := defaultLimits()
	reg := newRegistry()
	mint := turnMint{addr: turnAddr, secret: []byte(turnSecret), ttl: turnTTL}
	tr, err := trackerrole.New(trackerrole.Config{
		Store: st, Stripes: stripes, RootCapacity: rootCap,
		Limits: trackerrole.Limits{
			WSConnsPerIP: lim.WSConnsPerIP, WSMsgRate: lim.WSMsgRate, WSMsgBurst: lim.WSMsgBurst,
			WSJoinTimeout: lim.WSJoinTimeout, PeersPerStream: lim.PeersPerStream,
		},
		ICEServers: mint.iceServers, ICERefresh: turnTTL / 2,
		// Each seeder proves its id with its own secret in etcd.
		SeederKey: st.SeederKey,
		// Streams are sharded over the trackers (cluster.Shard): a client
		// of a stream another tracker owns is sent there.
		Owner: func(stream string) (string, error) {
			sh := shard.Load()
			if sh == nil {
				return "", errors.New("not in the cluster yet")
			}
			return sh.Owner(stream)
		},
		Ingest: func(stream, region string) (tracker.IngestPoint, bool) {
			r, err := dir.Pick(stream, region)
			return tracker.IngestPoint{RTMPURL: r.RTMPURL, WHIPURL: r.WHIPURL, Region: r.Region, Seeder: r.ID}, err == nil
		},
		// The viewer may be moved to another tracker and fetch from any
		// seeder's origin: the pages' CSP lets it connect there.
		Page: web.NewHandler(web.Config{ConnectSrc: func() []string {
			var out []string
			if sh := shard.Load(); sh != nil {
				for _, r := range sh.Trackers() {
					out = append(out, originOf(r.URL))
				}
			}
			for _, r := range dir.Seeders() {
				out = append(out, originOf(r.OriginURL))
			}
			if connectSrc != "" {
				out = append(out, strings.Split(connectSrc, ",")...)
			}
			return out
		}}),
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	tr.Mount(mux)
	srv, err := serveRole(ctx, httpAddr, front, mux, reg, st.CheckAdminToken, metricsToken, log)
	if err != nil {
		tr.Close()
		return err
	}
	host := publicHost
	if host == "" {
		host = "localhost"
	}
	base := hostPort(host, srv.ln.Addr().String())
	if publicURL == "" {
		publicURL = front.scheme("ws") + "://" + base + "/ws"
	}
	var moved func(stream, url string)
	if rebalance {
		moved = func(stream, url string) { tr.Tracker().MoveStream(stream, url) }
	}
	sh, err := cluster.StartShard(cluster.ShardConfig{
		Client: st.Client(), Prefix: st.Prefix(), Self: cluster.TrackerRecord{ID: id, URL: publicURL}, TTL: lease,
		Lost: func(stream string) {
			tr.Tracker().CloseStream(stream, "this tracker no longer owns the stream")
		},
		Moved:  moved,
		Logger: log.With("component", "cluster"),
	})
	if err != nil {
		return errors.Join(err, tr.Close(), srv.Close())
	}
	shard.Store(sh)
	defer sh.Close()
	fmt.Fprintf(stdout, "\nBanyan tracker %q is up.\n\n", id)
	if created {
		fmt.Fprintf(stdout, "  Admin token (shown once, kept only hashed in etcd: save it now):\n    %s\n\n", tok)
	}
	ws, web := front.scheme("ws"), front.scheme("http")
	fmt.Fprintf(stdout, "  Signaling:   %s://%s/ws  (seeders: --tracker)\n", ws, base)
	fmt.Fprintf(stdout, "  Ingest API:  %s://%s/api/ingest?stream=NAME[&region=R]\n", web, base)
	fmt.Fprintf(stdout, "  Dashboard:   %s://%s/dashboard\n\n", web, base)
	<-ctx.Done()
	log.Info("shutting down")
	// Websockets end first, so the HTTP Shutdown does not wait for them.
	return errors.Join(tr.Close(), srv.Close())
}

func runSeeder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		e                                    etcdOptions
		httpAddr, rtmpAddr, trackerURL, id   string
		region, publicURL, level, metricsTok string
		turnAddr, turnSecret, caFile         string
		iceLoop                              bool
		tlsOpt                               roleTLS
		maxLive                              int
		lease                                time.Duration
		member                               atomic.Pointer[cluster.Member]
	)
	c := newCommand("seeder", "", "Runs a seeder alone: RTMP/WHIP ingest, CMAF packaging and sealing, origin HTTP, LL-HLS and the\nroot peers, registered with a tracker (--tracker) and checking stream keys in the cluster's etcd.")
	e.register(c)
	c.String(&httpAddr, "http", ":8081", "HTTP listen address (origin, WHIP, LL-HLS)")
	c.String(&rtmpAddr, "rtmp", ":1935", "RTMP ingest listen address")
	c.String(&trackerURL, "tracker", "", "the cluster's trackers' signaling URLs, ws://HOST:PORT/ws or wss://…[,…] (required; tried in turn, and a tracker that does not own a stream names the one that does)")
	c.String(&caFile, "ca", "", "PEM file of extra CA certificates trusted for wss:// trackers (besides the system roots and SSL_CERT_FILE)")
	c.String(&id, "id", "", "this seeder's name in the cluster: 1-64 of a-z, 0-9, '_', '-' (required)")
	c.String(&region, "region", "", "region this seeder serves (the stream manager prefers a broadcaster's region)")
	c.String(&publicURL, "public-url", "", "this seeder's public HTTP base, e.g. http://seed1.example.net:8081 (default http://localhost:PORT); viewers fetch chunks there")
	tlsOpt.register(c, true)
	c.Duration(&lease, "lease", 10*time.Second, "etcd lease: a seeder silent this long leaves the stream manager, and its streams' claims go")
	c.Bool(&iceLoop, "ice-loopback", false, "WebRTC over loopback only (tests and single-machine demos)")
	c.String(&turnAddr, "turn-url", "", "host:port of the TURN relay WHIP publishers get (`banyan turn` or coturn; empty: none)")
	c.String(&turnSecret, "turn-secret", "", "TURN shared secret (required with --turn-url; prefer BANYAN_TURN_SECRET)")
	c.Int(&maxLive, "max-live-streams", defaultLimits().LiveStreams, "streams live at once on this seeder")
	c.String(&metricsTok, "metrics-token", "", "bearer token that opens /metrics besides the admin token")
	c.String(&level, "log-level", "info", "log level: debug, info, warn, error")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if !protocol.ValidSeederID(id) {
		return usageError{"banyan seeder: --id is required: 1-64 of a-z, 0-9, '_' and '-'"}
	}
	if turnAddr != "" && turnSecret == "" {
		return usageError{"banyan seeder: --turn-url needs --turn-secret (the relay's shared secret)"}
	}
	// WHIP publishers' credentials come with the key-checked POST and
	// nothing refreshes them: they outlast a long broadcast.
	whipTURN := turnMint{addr: turnAddr, secret: []byte(turnSecret), ttl: whipCredentialTTL}
	trackerURLs := strings.Split(trackerURL, ",")
	for _, tu := range trackerURLs {
		if u, err := url.Parse(tu); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return usageError{fmt.Sprintf("banyan seeder: --tracker must be ws://HOST:PORT/ws or wss://…, not %q", tu)}
		}
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	log = log.With("seeder", id)
	// A bad --ca is a flag mistake: say so before anything opens.
	caRT, err := caTransport(caFile)
	if err != nil {
		return usageError{"banyan seeder: " + err.Error()}
	}
	front, err := tlsOpt.frontDoor("seeder", log)
	if err != nil {
		return err
	}
	st, err := e.open("seeder")
	if err != nil {
		return err
	}
	defer st.Close()
	// Each seeder signs with its own key (viewers learn it from the
	// tracker's welcome) and proves its id to trackers with its own
	// secret, made on its first start or by `banyan seeder-key create`
	// (where etcd's roles let a seeder only read its own).
	seed, err := st.Secret("seeder-ed25519-seed/"+id, ed25519.SeedSize)
	if err != nil {
		return err
	}
	secret, err := st.Secret(etcdstore.SeederKeyName(id), 32)
	if err != nil {
		return fmt.Errorf("%w (where etcd's roles keep seeders from writing secrets, run `banyan seeder-key create %s` with the trackers' etcd credentials first)", err, id)
	}
	lim := defaultLimits()
	reg := newRegistry()
	sd, err := seederrole.New(seederrole.Config{
		SigningKey: ed25519.NewKeyFromSeed(seed), Keys: st, RTMPAddr: rtmpAddr,
		Limits: seederrole.Limits{
			RTMPConns: lim.RTMPConns, RTMPConnsPerIP: lim.RTMPConnsPerIP, RTMPMaxMessage: lim.RTMPMaxMessage,
			RTMPHandshake: lim.RTMPHandshake, RTMPIdle: lim.RTMPIdle,
			WHIPSessions: lim.WHIPSessions, WHIPMaxBody: lim.WHIPMaxBody, WHIPNoMedia: lim.WHIPNoMedia,
			LiveStreams: maxLive,
		},
		ICELoopback: iceLoop,
		WHIPICEServers: func() []webrtc.ICEServer {
			var out []webrtc.ICEServer
			for _, is := range whipTURN.iceServers(0) {
				out = append(out, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
			}
			return out
		},
		// Each publish claims its stream in etcd (a take-over elsewhere,
		// or a revoke through any tracker, ends it here).
		OnEvent: func(ev seeder.Event) {
			m := member.Load()
			switch {
			case m == nil:
			case ev.Kind == seeder.PublishStarted:
				m.Carry(ev.Stream, ev.KeyGen)
			case ev.Kind == seeder.PublishEnded:
				m.Drop(ev.Stream)
			case ev.Kind == seeder.EpochStarted:
				m.Epoch(ev.Stream, ev.Epoch)
			}
		},
		// Epochs never repeat across the cluster's seeders (chunk URLs
		// stay unique behind one CDN hostname).
		EpochFloor: func(stream string) uint32 {
			if m := member.Load(); m != nil {
				return m.EpochFloor(stream)
			}
			return 0
		},
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	sd.Mount(mux)
	// POST /drain (admin token): the stream manager sends no new stream
	// here; what is live stays until it ends (docs/cluster.md).
	var draining atomic.Bool
	mux.Handle("POST /drain", tokenGate(st.CheckAdminToken, "admin token", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		draining.Store(true)
		if m := member.Load(); m != nil {
			m.Update()
		}
		log.Info("draining: no new streams")
		live, _ := sd.Seeder().Load()
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"draining": true, "live": len(live)})
	})))
	srv, err := serveRole(ctx, httpAddr, front, mux, reg, st.CheckAdminToken, metricsTok, log)
	if err != nil {
		sd.Close()
		return err
	}
	closeAll := func() error {
		var err error
		if m := member.Swap(nil); m != nil {
			err = m.Close() // leaves the stream manager at once
		}
		sd.CloseLinks()
		return errors.Join(err, srv.Close(), front.Close(), sd.Close())
	}
	if err := sd.Listen(); err != nil {
		return errors.Join(err, closeAll())
	}
	if err := front.startRTMPS(ctx, sd.RTMPConfig); err != nil {
		return errors.Join(err, closeAll())
	}
	if publicURL == "" {
		publicURL = front.scheme("http") + "://" + hostPort("localhost", srv.ln.Addr().String())
	}
	pu, err := url.Parse(publicURL)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return errors.Join(usageError{fmt.Sprintf("banyan seeder: bad --public-url %q", publicURL)}, closeAll())
	}
	publicURL = strings.TrimSuffix(publicURL, "/")
	rtmpURL := front.rtmpURL(pu.Hostname(), sd.RTMPAddr())
	link := seederrole.Link{
		TrackerURLs: trackerURLs, ID: id, Secret: secret, Region: region,
		OriginURL: publicURL, RTMPURL: rtmpURL, WHIPURL: publicURL + "/whip/",
	}
	if caRT != nil {
		link.HTTPClient = &http.Client{Transport: caRT}
	}
	m, err := cluster.StartMember(cluster.MemberConfig{
		Client: st.Client(), Prefix: st.Prefix(), TTL: lease,
		Record: func() cluster.SeederRecord {
			live, kbps := sd.Seeder().Load()
			return cluster.SeederRecord{
				ID: id, Region: region, OriginURL: publicURL, RTMPURL: rtmpURL, WHIPURL: link.WHIPURL,
				Live: len(live), MaxLive: maxLive, IngestKbps: kbps, Draining: draining.Load(),
			}
		},
		Lost: func(stream, why string) {
			log.Warn("ending publish: the cluster took the stream", "stream", stream, "why", why)
			sd.Seeder().Kick(stream)
		},
		// The private switch, set through any tracker, applies to this
		// seeder's origin and LL-HLS at once.
		Changed: func(st store.Stream) { sd.Seeder().SetPublic(st.Name, !st.Private) },
		Logger:  log,
	})
	if err != nil {
		return errors.Join(err, closeAll())
	}
	member.Store(m)
	if err := sd.Start(ctx, link); err != nil {
		return errors.Join(err, closeAll())
	}
	fmt.Fprintf(stdout, "\nBanyan seeder %q is up", id)
	if region != "" {
		fmt.Fprintf(stdout, " (region %s)", region)
	}
	fmt.Fprintf(stdout, ".\n\n  RTMP:        %s\n  WHIP:        %s\n  Origin:      %s\n  Tracker:     %s\n\n", rtmpURL, link.WHIPURL, publicURL, trackerURL)
	<-ctx.Done()
	log.Info("shutting down")
	return closeAll()
}

// originOf is a URL's scheme://host[:port] ("" when it has none).
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
