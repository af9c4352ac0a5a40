// Package trackerrole assembles the tracker role: signaling and the
// overlay (package tracker), the admin API, the stream manager's
// /api/ingest, the dashboard and the web pages. `banyan up` and `banyan
// tracker` both build it with New; the process around it owns the HTTP
// server (Mount adds the role's routes), the store and the TURN relay.
package trackerrole

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/tracker"
)

// Limits bound what a stranger can make the tracker hold (SECURITY.md).
type Limits struct {
	WSConnsPerIP, WSMsgBurst, PeersPerStream int
	WSMsgRate                                float64
	WSJoinTimeout                            time.Duration
}

// Config configures the role.
type Config struct {
	Store store.Backend
	// Stripes and RootCapacity shape each stream's forest.
	Stripes, RootCapacity int
	Limits                Limits
	// ICEServers mints a viewer's STUN/TURN servers; ICERefresh is how
	// often a connected viewer gets fresh ones. ICEServers may be nil.
	ICEServers func(peer protocol.PeerID) []protocol.ICEServer
	ICERefresh time.Duration
	// Local is the seeder running in the same process, if any (the
	// all-in-one `banyan up`): a revoke ends its publish at once, and the
	// admin API and dashboard read its live state. Nil for a standalone
	// tracker, which learns liveness from seeder sessions.
	Local Local
	// Ingest answers /api/ingest (tracker.Config.Ingest); nil: the
	// seeders this tracker has seen.
	Ingest func(stream, region string) (tracker.IngestPoint, bool)
	// SeederKey returns a seeder's own secret (tracker.Config.SeederKey):
	// a cluster's are in etcd (`banyan seeder-key`), `banyan up`'s one
	// local seeder has its own. Nil: no seeder is accepted.
	SeederKey func(id string) ([]byte, error)
	// Owner shards streams over trackers (tracker.Config.Owner); nil:
	// this tracker owns every stream.
	Owner func(stream string) (string, error)
	// Page serves the web pages (viewer, dashboard); nil: none.
	Page       http.Handler
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Local is what the tracker may ask of a seeder in its own process.
type Local interface {
	Kick(stream string)
	Live(stream string) bool
	Info(stream string) (protocol string, kbps, fps float64, live bool)
	// SetPublic applies a stream's private switch to its origin and
	// LL-HLS at once.
	SetPublic(stream string, public bool)
}

// Role is a running tracker. Make it with New, Mount its routes, Close it.
type Role struct {
	cfg     Config
	log     *slog.Logger
	tracker *tracker.Tracker
}

// New reads the tracker's secrets from the store (generating them on the
// first start) and makes the tracker.
func New(cfg Config) (*Role, error) {
	if cfg.Store == nil {
		return nil, errors.New("trackerrole: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Role{cfg: cfg, log: cfg.Logger}
	viewerSecret, err := cfg.Store.Secret("viewer-token", 32)
	if err != nil {
		return nil, err
	}
	// Peer ids name TURN users: each start takes the next 2^32 ids, so a
	// credential minted before a restart never names a new peer (and ids
	// stay below 2^53, exact in the browser's JSON numbers).
	starts, err := cfg.Store.NextStart()
	if err != nil {
		return nil, err
	}
	l := cfg.Limits
	r.tracker, err = tracker.New(tracker.Config{
		Stripes:       cfg.Stripes,
		RootCapacity:  cfg.RootCapacity,
		ICEServers:    cfg.ICEServers,
		ICERefresh:    cfg.ICERefresh,
		FirstPeerID:   starts << 32,
		SeederKey:     cfg.SeederKey,
		Ingest:        cfg.Ingest,
		Owner:         cfg.Owner,
		Access:        tracker.StoreAccess{Store: cfg.Store, TokenSecret: viewerSecret},
		MaxConnsPerIP: l.WSConnsPerIP, MsgRate: l.WSMsgRate, MsgBurst: l.WSMsgBurst,
		JoinTimeout: l.WSJoinTimeout, MaxPeersPerStream: l.PeersPerStream,
		Logger:     cfg.Logger.With("component", "tracker"),
		Registerer: cfg.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("start tracker: %w", err)
	}
	if reg := cfg.Registerer; reg != nil {
		reg.MustRegister(r.tracker.Collector())
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "banyan_streams", Help: "Streams with an active (not revoked) key.",
		}, r.activeStreams))
	}
	return r, nil
}

// Tracker is the role's signaling hub.
func (r *Role) Tracker() *tracker.Tracker { return r.tracker }

// Mount adds the tracker's routes: /ws, the admin API, /api/ingest, the
// dashboard and (with Config.Page) the web pages at /.
func (r *Role) Mount(mux *http.ServeMux) {
	admin := tracker.AdminConfig{Store: r.cfg.Store, Logger: r.log, IsLive: r.tracker.Live}
	dash := tracker.DashboardConfig{Store: r.cfg.Store, Page: r.cfg.Page, Logger: r.log.With("component", "dashboard")}
	if l := r.cfg.Local; l != nil {
		admin.OnRevoke, admin.IsLive, dash.Ingest = l.Kick, l.Live, l.Info
		// The keyframe interval and its advice, where the seeder tells.
		if k, ok := l.(interface {
			KeyframeInterval(string) (time.Duration, string)
		}); ok {
			dash.Keyframes = k.KeyframeInterval
		}
		// A stream made private stops being served to anyone without a
		// token at once, not at its next publish.
		admin.OnPrivate = func(name string, private bool) { l.SetPublic(name, !private) }
	}
	mux.Handle("/api/", tracker.NewAdminAPI(admin))
	mux.Handle("GET /api/ingest", r.tracker.IngestHandler())
	mux.Handle("/ws", r.tracker)
	r.tracker.MountDashboard(mux, dash)
	if r.cfg.Page != nil {
		mux.Handle("/", r.cfg.Page)
	}
}

func (r *Role) activeStreams() float64 {
	streams, err := r.cfg.Store.Streams()
	if err != nil {
		return 0
	}
	n := 0
	for _, st := range streams {
		if !st.Revoked {
			n++
		}
	}
	return float64(n)
}

// Close ends every signaling session. The store is the caller's.
func (r *Role) Close() error { return r.tracker.Close() }
