// Package seederrole assembles the seeder role: the seeder (packaging,
// sealing, origin HTTP, LL-HLS), its RTMP and WHIP ingests, the root peers
// of its live streams and the link that registers them with a tracker.
// `banyan up` and `banyan seeder` both build it with New; the process
// around it owns the HTTP server (Mount adds the role's routes) and the
// store the stream keys are checked against.
package seederrole

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/seeder/rtmpingest"
	"github.com/banyan-live/banyan/seeder/whip"
	"github.com/banyan-live/banyan/store"
)

// Keys is what the seeder reads of the store: it checks stream keys and
// reads stream records, and never writes anything but a key's last use.
type Keys interface {
	Authorize(key string) (store.Stream, error)
	CheckKeyGen(name string, gen uint64) error
	Stream(name string) (store.Stream, error)
}

// Limits bound what a stranger can make the seeder hold (SECURITY.md).
type Limits struct {
	RTMPConns, RTMPConnsPerIP, RTMPMaxMessage int
	RTMPHandshake, RTMPIdle                   time.Duration
	WHIPSessions, WHIPMaxBody                 int
	WHIPNoMedia                               time.Duration
	LiveStreams                               int
}

// Config configures the role.
type Config struct {
	// SigningKey signs every chunk (the seeder's identity to viewers).
	SigningKey ed25519.PrivateKey
	Keys       Keys
	// RTMPAddr is the RTMP listen address.
	RTMPAddr string
	Limits   Limits
	// ICELoopback keeps WebRTC (WHIP and root peers) on loopback.
	ICELoopback bool
	// WHIPICEServers returns the TURN/STUN servers a WHIP publisher gets.
	// May be nil: none.
	WHIPICEServers func() []webrtc.ICEServer
	// OnSealed, when set, sees every sealed chunk (benchmarks).
	OnSealed func(stream string, e *seeder.Entry)
	// EpochFloor: seeder.Config.EpochFloor (a cluster's last epoch of a
	// stream). May be nil.
	EpochFloor func(stream string) uint32
	// ReserveEpochs: seeder.Config.ReserveEpochs (epochs reserved in the
	// local store, monotonic across restarts). May be nil.
	ReserveEpochs func(stream string, atLeast, n uint32) (uint32, error)
	// OnEvent, when set, sees every publish event after the tracker link
	// (the cluster membership claims streams with it). Must not block.
	OnEvent    func(seeder.Event)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Link is how the seeder registers its live streams with a tracker.
type Link struct {
	// TrackerURL is the tracker's signaling websocket, ws://host/ws;
	// TrackerURLs, when set, are a cluster's trackers, tried in turn.
	TrackerURL  string
	TrackerURLs []string
	// ID names this seeder to the tracker; Secret is the seeder secret the
	// tracker shares (protocol.SeederMAC).
	ID     string
	Secret []byte
	Region string
	// OriginURL, RTMPURL and WHIPURL are this seeder's public addresses,
	// handed to viewers and broadcasters. An empty OriginURL means "the
	// tracker's host" (the all-in-one `banyan up`).
	OriginURL, RTMPURL, WHIPURL string
	// HTTPClient dials the trackers (nil: http.DefaultClient; over TLS
	// the all-in-one `banyan up` passes one that trusts its own
	// certificate).
	HTTPClient *http.Client
}

// Role is a running seeder. Make it with New, Mount its routes, Listen,
// Start it, and Close it.
type Role struct {
	cfg  Config
	log  *slog.Logger
	seed *seeder.Seeder
	whip *whip.Server
	rtmp *rtmpingest.Server

	// Set by Start; read by the seeder's callbacks, which may run
	// earlier (a WHIP publish as soon as the HTTP server serves).
	announcer atomic.Pointer[seeder.Announcer]
	roots     atomic.Pointer[seeder.Roots]

	rtmpErr chan error
	started bool
}

// New makes the seeder and its ingests; nothing listens yet.
func New(cfg Config) (*Role, error) {
	if cfg.Keys == nil || len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("seederrole: Keys and SigningKey are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Role{cfg: cfg, log: cfg.Logger, rtmpErr: make(chan error, 1)}
	var err error
	r.seed, err = seeder.New(seeder.Config{
		SigningKey: cfg.SigningKey, Logger: r.log.With("component", "seeder"), Registerer: cfg.Registerer,
		MaxLive: cfg.Limits.LiveStreams, KeyCheck: cfg.Keys.CheckKeyGen, EpochFloor: cfg.EpochFloor,
		ReserveEpochs: cfg.ReserveEpochs,
		Events: func(e seeder.Event) {
			if a := r.announcer.Load(); a != nil {
				a.Event(e)
			}
			if cfg.OnEvent != nil {
				cfg.OnEvent(e)
			}
		},
		Root: func(stream string, e *seeder.Entry) {
			if cfg.OnSealed != nil {
				cfg.OnSealed(stream, e)
			}
			if roots := r.roots.Load(); roots != nil {
				roots.Publish(stream, e)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start seeder: %w", err)
	}
	if err := r.newWHIP(); err != nil {
		r.seed.Close()
		return nil, fmt.Errorf("start WHIP: %w", err)
	}
	return r, nil
}

// Seeder is the role's seeder (its Kick, Live and Info serve a tracker
// in the same process).
func (r *Role) Seeder() *seeder.Seeder { return r.seed }

// Mount adds the seeder's routes: WHIP, chunks and LL-HLS.
func (r *Role) Mount(mux *http.ServeMux) {
	origin := r.seed.Origin().Handler()
	mux.Handle("/whip/", r.whip.Handler())
	mux.Handle("/chunks/", origin)
	mux.Handle("/hls/", origin)
}

// Listen opens the RTMP listener (so its port is known before Start).
func (r *Role) Listen() error {
	var err error
	r.rtmp, err = rtmpingest.New(r.RTMPConfig(r.cfg.RTMPAddr))
	if err != nil {
		return err
	}
	if err := r.rtmp.Listen(); err != nil {
		return fmt.Errorf("cannot listen on %s (--rtmp): %w", r.cfg.RTMPAddr, unwrapOpError(err))
	}
	return nil
}

// RTMPConfig is the ingest configuration for a listener on addr: RTMP and
// RTMPS alike, with the same keys, checks and limits.
func (r *Role) RTMPConfig(addr string) rtmpingest.Config {
	l := r.cfg.Limits
	return rtmpingest.Config{
		Addr:      addr,
		Logger:    r.log.With("component", "rtmp"),
		Authorize: r.authorizeRTMP,
		MaxConns:  l.RTMPConns, MaxConnsPerIP: l.RTMPConnsPerIP,
		MaxMessageSize:   uint32(max(l.RTMPMaxMessage, 0)),
		HandshakeTimeout: l.RTMPHandshake, IdleTimeout: l.RTMPIdle,
		NewSink: func(ctx context.Context, p rtmpingest.Publish) (media.Sink, func(error), error) {
			st, err := r.cfg.Keys.Stream(p.Stream)
			if err != nil {
				return nil, nil, err
			}
			// A take-over may have waited seconds since the key check:
			// the seeder re-checks p.KeyGen (seeder.Config.KeyCheck).
			pub, err := r.seed.StartPublish(p.Stream, "rtmp", !st.Private, p.KeyGen, p.Stop)
			if err != nil {
				return nil, nil, err
			}
			return pub, pub.End, nil
		},
	}
}

// RTMPAddr is the RTMP listener's address (after Listen).
func (r *Role) RTMPAddr() net.Addr { return r.rtmp.Addr() }

// Start links the seeder to its tracker (each live stream gets a
// signaling session carrying its root peer) and serves RTMP until ctx
// ends or Close.
func (r *Role) Start(ctx context.Context, link Link) error {
	if r.rtmp == nil {
		return errors.New("seederrole: Start before Listen")
	}
	var api *webrtc.API
	if r.cfg.ICELoopback {
		api = rtc.LoopbackAPI()
	}
	roots := seeder.NewRoots(api, r.log.With("component", "root"))
	a := seeder.NewAnnouncer(seeder.AnnouncerConfig{
		TrackerURL: link.TrackerURL, TrackerURLs: link.TrackerURLs, HTTPClient: link.HTTPClient,
		Auth:      seeder.MACAuth(link.ID, link.Secret),
		PublicKey: r.seed.PublicKey(),
		OriginURL: link.OriginURL, RTMPURL: link.RTMPURL, WHIPURL: link.WHIPURL, Region: link.Region,
		Logger:    r.log.With("component", "announce"),
		OnMessage: roots.OnMessage,
	})
	roots.SetSend(a.Send)
	r.roots.Store(roots)
	r.announcer.Store(a)
	r.started = true
	go func() { r.rtmpErr <- r.rtmp.Serve(ctx) }()
	return nil
}

func (r *Role) authorizeRTMP(ctx context.Context, key string) (rtmpingest.Grant, error) {
	st, err := r.cfg.Keys.Authorize(key)
	if err != nil {
		r.seed.Refused("rtmp", "bad_key")
		return rtmpingest.Grant{}, err
	}
	return rtmpingest.Grant{Stream: st.Name, KeyGen: st.KeyGen}, nil
}

// newWHIP makes the WHIP endpoint (browser and OBS 30+ publishers).
func (r *Role) newWHIP() (err error) {
	l := r.cfg.Limits
	r.whip, err = whip.New(whip.Config{
		Authorize: func(ctx context.Context, key string) (whip.Grant, error) {
			st, err := r.cfg.Keys.Authorize(key)
			if err != nil && !errors.Is(err, store.ErrBadKey) {
				return whip.Grant{}, fmt.Errorf("%w: %v", whip.ErrUnavailable, err)
			}
			return whip.Grant{Stream: st.Name, Public: !st.Private, KeyGen: st.KeyGen}, err
		},
		Publisher: whip.PublisherFunc(func(g whip.Grant, stop func()) (whip.Session, error) {
			p, err := r.seed.StartPublish(g.Stream, "whip", g.Public, g.KeyGen, stop)
			if errors.Is(err, seeder.ErrKeyRevoked) {
				return nil, fmt.Errorf("%w: %w", whip.ErrKeyRevoked, err)
			}
			if err != nil {
				return nil, err // never a typed-nil *seeder.Publish inside the interface
			}
			return p, nil
		}),
		OnRefused:   func(reason string) { r.seed.Refused("whip", reason) },
		MaxSessions: l.WHIPSessions, MaxBody: int64(l.WHIPMaxBody),
		NoMediaTimeout: l.WHIPNoMedia,
		ICEServers: func(stream string) []webrtc.ICEServer {
			if r.cfg.WHIPICEServers == nil {
				return nil
			}
			return r.cfg.WHIPICEServers()
		},
		Configure: func(se *webrtc.SettingEngine) {
			if r.cfg.ICELoopback {
				rtc.LoopbackSettings(se)
			}
		},
		Logger: r.log.With("component", "whip"), Registerer: r.cfg.Registerer,
	})
	return err
}

// CloseLinks ends the tracker sessions and root peers, and stops the
// origin's blocked requests, so an HTTP server's Shutdown does not wait
// for them. Close calls it too.
func (r *Role) CloseLinks() {
	if a := r.announcer.Swap(nil); a != nil {
		a.Close()
	}
	if roots := r.roots.Swap(nil); roots != nil {
		roots.Close()
	}
	r.seed.Origin().Close()
}

// Close ends every publish and the ingests.
func (r *Role) Close() error {
	var errs []error
	r.CloseLinks()
	r.whip.Close()
	if r.rtmp != nil {
		r.rtmp.Close()
		if r.started {
			if err := <-r.rtmpErr; err != nil {
				errs = append(errs, fmt.Errorf("rtmp serve: %w", err))
			}
		}
	}
	r.seed.Close()
	return errors.Join(errs...)
}

// unwrapOpError drops the "listen tcp :1935:" prefix the caller already says.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// RootSent is how many chunk bytes the stream's root peer has sent into
// the mesh (benchmarks compute the seeder's share from it).
func (r *Role) RootSent(stream string) uint64 {
	if roots := r.roots.Load(); roots != nil {
		return roots.Sent(stream)
	}
	return 0
}
