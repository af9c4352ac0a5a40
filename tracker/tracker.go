package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/internal/ipkey"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// Config configures a Tracker. Zero values take the documented defaults.
type Config struct {
	// Stripes is K, the number of stripe trees per stream (default
	// overlay.DefaultStripes).
	Stripes int
	// RootCapacity is how many children the seeder feeds per stripe
	// (default overlay.DefaultRootCapacity).
	RootCapacity int
	// StreamKbps is the assumed stream bitrate before stats tell better
	// (default 3000); it turns upload bandwidth into child slots.
	StreamKbps int
	// Headroom is the share of a peer's measured uplink kept out of its
	// child slots (default 0.25; see Capacity).
	Headroom float64
	// StatsInterval is how often peers report (default 2 s); a peer silent
	// for three intervals is taken for dead.
	StatsInterval time.Duration
	// ICEServers returns the ICE servers (with fresh TURN credentials) for
	// a peer. May be nil: no ICE servers.
	ICEServers func(peer protocol.PeerID) []protocol.ICEServer
	// ICERefresh is how often a connected viewer gets fresh ICE servers
	// (protocol.ICE): TURN credentials are short-lived, and a session that
	// lives keeps getting new ones (0: never).
	ICERefresh time.Duration
	// FirstPeerID is where peer ids start (the first is FirstPeerID+1).
	// Ids name TURN users and credentials, so they must not repeat across
	// restarts: `banyan up` passes a base that grows with every start.
	FirstPeerID uint64
	// SeederKey returns the secret of the seeder called id, which its
	// hellos are MACed with (protocol.SeederMAC); an error refuses the
	// seeder. Each seeder has its own, so a seeder that knows its secret
	// cannot claim another's id. Nil: no seeder is accepted.
	SeederKey func(id string) ([]byte, error)
	// Access decides who may watch a stream. May be nil: everyone.
	Access Access
	// Ingest, when set, answers /api/ingest: the cluster's stream manager
	// (package cluster). Nil: the seeders this tracker has seen itself
	// (AddIngest, seeder sessions).
	Ingest func(stream, region string) (IngestPoint, bool)
	// Owner, when set, shards streams over trackers (package cluster): it
	// returns "" when this tracker owns stream, else the owner's
	// signaling URL, which a joining viewer or seeder is sent to with
	// protocol.Moved. Nil: this tracker owns every stream.
	Owner func(stream string) (string, error)
	// MaxPeersPerStream bounds a swarm (default 100 000).
	MaxPeersPerStream int
	// MaxConnsPerIP bounds websocket connections per remote address, IPv6
	// grouped by /64 (internal/ipkey); loopback is exempt (default 32).
	MaxConnsPerIP int
	// MsgRate and MsgBurst bound each connection's messages per second
	// (defaults 20 and 60).
	MsgRate  float64
	MsgBurst int
	// JoinTimeout bounds the wait for a new connection's first message
	// (join or seeder_hello) (default 10 s): an idle websocket holds a
	// slot of MaxConnsPerIP no longer than this.
	JoinTimeout time.Duration
	// Overlay tunes each stream's forest (Stripes and RootCapacity are set
	// from the fields above).
	Overlay overlay.Config
	Logger  *slog.Logger
	// Registerer takes the tracker's metrics (none when nil).
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Access is the viewer admission policy.
type Access interface {
	// Admit returns nil if a viewer holding token may watch stream.
	Admit(stream, token string) error
}

// ErrNotAdmitted is returned by an Access that refuses a viewer.
var ErrNotAdmitted = errors.New("viewer not admitted")

// Tracker is the signaling hub. Create it with New, serve Handler, Close it.
type Tracker struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	nextID  atomic.Uint64
	viewers sync.Map       // protocol.PeerID → struct{}: joined viewers (Alive)
	ipConns *ipkey.Counter // websockets per client address (MaxConnsPerIP)

	mu      sync.Mutex
	streams map[string]*streamState
	ingests map[string]*ingestState // by RTMP URL
	closed  bool

	nonces nonceCache // seeder hellos seen (checkSeederHello)

	dashOnce sync.Once // starts the dashboard's sampler (dashboard.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes a Tracker and starts its liveness reaper.
func New(cfg Config) (*Tracker, error) {
	if cfg.Stripes == 0 {
		cfg.Stripes = overlay.DefaultStripes
	}
	if cfg.Stripes < 1 || cfg.Stripes > protocol.MaxStripes {
		return nil, fmt.Errorf("tracker: stripes %d not in 1..%d", cfg.Stripes, protocol.MaxStripes)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.RootCapacity, overlay.DefaultRootCapacity)
	def(&cfg.StreamKbps, 3000)
	def(&cfg.MaxPeersPerStream, 100_000)
	def(&cfg.MaxConnsPerIP, 32)
	def(&cfg.MsgBurst, 60)
	if cfg.MsgRate <= 0 {
		cfg.MsgRate = 20
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = 2 * time.Second
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Overlay.Stripes = cfg.Stripes
	cfg.Overlay.RootCapacity = cfg.RootCapacity
	cfg.Overlay.StatsInterval = cfg.StatsInterval
	if _, err := overlay.New(cfg.Overlay); err != nil {
		return nil, fmt.Errorf("tracker: overlay config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracker{
		cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registerer),
		streams: make(map[string]*streamState), ipConns: ipkey.NewCounter(cfg.MaxConnsPerIP, true),
		ctx: ctx, cancel: cancel,
	}
	t.nextID.Store(cfg.FirstPeerID)
	t.wg.Add(1)
	go t.reap()
	return t, nil
}

// Close disconnects every session and stops the tracker.
func (t *Tracker) Close() error {
	t.mu.Lock()
	t.closed = true
	var all []*session
	for _, st := range t.streams {
		st.mu.Lock()
		for _, s := range st.sessions {
			all = append(all, s)
		}
		st.mu.Unlock()
	}
	t.mu.Unlock()
	t.cancel()
	for _, s := range all {
		s.close("tracker shutting down")
	}
	t.wg.Wait()
	return nil
}

// reap drops sessions that stopped reporting, and runs each forest's
// capacity rebalancing.
func (t *Tracker) reap() {
	defer t.wg.Done()
	tick := time.NewTicker(t.cfg.StatsInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		now := t.cfg.Now()
		dead := now.Add(-3 * t.cfg.StatsInterval)
		// A viewer that missed its last report may have vanished: no new
		// children for it until it reports again (Forest.Alive), so that
		// after a mass departure orphans are not placed under parents
		// that are gone but not yet dropped.
		late := now.Add(-t.cfg.StatsInterval * 5 / 4)
		for _, st := range t.streamList() {
			var stale []*session
			st.mu.Lock()
			for _, s := range st.sessions {
				seen := s.lastSeen()
				if seen.Before(dead) {
					stale = append(stale, s)
				} else if seen.Before(late) && !s.isSeeder {
					_ = st.forest.Suspect(st.ov(s))
				}
			}
			changes := st.forest.Tick(now)
			st.applyLocked(changes)
			st.mu.Unlock()
			for _, s := range stale {
				t.log.Info("peer silent, dropping", "stream", st.name, "peer", s.id)
				s.close("no stats for three intervals")
			}
		}
	}
}

// Alive reports whether viewer id is joined now: the TURN relay keeps an
// expired credential of a live session working (turnserver.Config.Alive).
func (t *Tracker) Alive(id protocol.PeerID) bool {
	_, ok := t.viewers.Load(id)
	return ok
}

func (t *Tracker) streamList() []*streamState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*streamState, 0, len(t.streams))
	for _, st := range t.streams {
		out = append(out, st)
	}
	return out
}

// stream returns the state of stream name, creating it.
func (t *Tracker) stream(name string) (*streamState, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("tracker closed")
	}
	if st := t.streams[name]; st != nil {
		return st, nil
	}
	f, err := overlay.New(t.cfg.Overlay)
	if err != nil {
		return nil, err
	}
	st := &streamState{t: t, name: name, forest: f, sessions: make(map[protocol.PeerID]*session)}
	t.streams[name] = st
	return st, nil
}

// withForest runs f on a stream's forest under the stream's lock; false
// when the stream is unknown.
func (t *Tracker) withForest(stream string, f func(*overlay.Forest)) bool {
	t.mu.Lock()
	st := t.streams[stream]
	t.mu.Unlock()
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f(st.forest)
	return true
}

// Peers returns how many viewers a stream has (the seeder not counted).
func (t *Tracker) Peers(stream string) (n int) {
	t.withForest(stream, func(f *overlay.Forest) { n = f.Len() })
	return n
}

// capacity is the policy that sizes peers' child slots.
func (t *Tracker) capacity() Capacity {
	return Capacity{StreamKbps: t.cfg.StreamKbps, Stripes: t.cfg.Stripes, Headroom: t.cfg.Headroom}
}

// MaxDepth is the deepest tree of a stream's forest.
func (t *Tracker) MaxDepth(stream string) (d int) {
	t.withForest(stream, func(f *overlay.Forest) {
		for s := 0; s < f.Stripes(); s++ {
			d = max(d, f.MaxDepth(s))
		}
	})
	return d
}
