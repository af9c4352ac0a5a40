// Package node joins a peer engine to the mesh: it turns the tracker's
// signaling (welcome, assignments, relayed SDP and candidates, key updates)
// into WebRTC links and the engine's parents and children, and sends the
// engine's stats and reports back. The browser peer, the native peer and
// the seeder's root all run a Node; it builds for GOOS=js too and does no
// network I/O of its own beyond the links (the caller owns the tracker
// connection: see Client).
package node

import (
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// Config configures a Node.
type Config struct {
	Stream string
	// Root makes the node the seeder's root peer: it publishes and never
	// plays.
	Root bool
	// Send delivers a message to the tracker. It must not block for long.
	Send func(protocol.Message)
	// Origin is the HTTP fallback (nil for the root). OriginFor, when set,
	// builds it from the welcome's origin URL instead.
	Origin    peer.Origin
	OriginFor func(originURL string) peer.Origin
	// Player receives the opened stream (nil for relays and the root).
	Player peer.Player
	// API builds PeerConnections (nil: pion's default natively, the
	// browser's own in the wasm; tests pass rtc.LoopbackAPI()).
	API *rtc.API
	// RelayOnly makes every link go through TURN (rtc.Config.RelayOnly).
	RelayOnly bool
	// ProofKey is the key the engine signs delivery statements with
	// (peer.Config.ProofKey); its public half goes in Join.ProofKey. Run
	// makes one per session when it is nil; nil in New: no statements.
	ProofKey ed25519.PrivateKey
	// MaxUploadKbps is an operator's ceiling on the upload this peer
	// offers, in kbit/s (0: none): the engine never reports a measured
	// uplink above it (peer.Config.MaxUplinkKbps), and Run declares at
	// join at most the ceiling (DeclaredUpload), so the tracker gives the
	// peer no more child slots than it carries. Nothing is paced: the
	// tracker is told less, and assigns fewer children.
	MaxUploadKbps int
	// Engine lets the caller adjust the engine's configuration (timings).
	Engine func(*peer.Config)
	// OnState is told about lifecycle changes (may be nil): "waiting"
	// (admitted, no broadcast), "live", "ended", or an error code.
	OnState func(state string)
	// OnAssign is told about the node's position (may be nil).
	OnAssign func(a protocol.Assign)
	// WrapLink, when set, wraps every link before the engine sees it
	// (fault injection in tests: a parent that corrupts what it relays).
	WrapLink func(peer.Link) peer.Link
	// Decorate fills what only the caller knows (the player's buffer,
	// stalls, latency behind live) into each stats report. May be nil.
	Decorate func(*protocol.Stats)
	Logger   peer.Logger // default: none (a *slog.Logger natively)
	Clock    func() time.Time
	// Guard, when set, recovers panics in the WebRTC callbacks
	// (rtc.Config.Guard); the browser peer sets it, native ones crash.
	Guard *guard.Guard
}

// Node is one peer in the mesh. Feed it the tracker's messages with
// Handle, drive it with Tick, and Close it.
type Node struct {
	cfg Config
	log peer.Logger

	mu         sync.Mutex
	self       protocol.PeerID
	stripes    int
	pub        string // base64 public key the engine verifies with
	epoch      uint32 // newest epoch the tracker announced (Engine.AnnounceEpoch)
	keys       *chunk.Keyring
	ice        []protocol.ICEServer
	eng        *peer.Engine
	tr         *rtc.Transport
	nbrs       map[protocol.PeerID]*nbr
	dials      []protocol.PeerID // to dial once the lock is released
	closing    []*rtc.Link       // to close once the lock is released
	parent     []protocol.PeerID // per stripe, as assigned (0: origin)
	depth      []int
	statsEvery time.Duration
	lastStats  time.Time
	last       protocol.Stats
	closed     bool
	joinedAt   time.Time
	firstPlay  time.Time
	// lostAt[s] is when stripe s's parent link failed; the next parent
	// assigned for s closes the interval into reparents.
	lostAt    []time.Time
	reparents []time.Duration
	prev      []protocol.PeerID // per stripe: the parent a Remove took away
	changes   []ParentChange
	times     JoinTimes
}

// JoinTimes is when the node's first steps of a join happened (zero: not
// yet), for the browser viewer's join timeline.
type JoinTimes struct {
	Welcome        time.Time // the welcome
	ParentAssigned time.Time // the first peer parent assigned
	ParentOpen     time.Time // the first link to a parent open
	// DialStart and DialEnd bound the first dial (the browser's
	// RTCPeerConnection, its data channel and offer).
	DialStart, DialEnd time.Time
}

// Times returns the node's join times.
func (n *Node) Times() JoinTimes {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.times
}

// ParentChange is one replacement of a parent by the tracker.
type ParentChange struct {
	Stripe int             `json:"stripe"`
	From   protocol.PeerID `json:"from"`
	To     protocol.PeerID `json:"to"` // 0: the origin
	At     time.Time       `json:"at"`
}

// nbr is a neighbour: the link to it and what it is to us.
type nbr struct {
	id       protocol.PeerID
	link     *rtc.Link
	elink    peer.Link // what the engine sees: link, or WrapLink(link)
	open     bool
	dialing  bool
	parentOf uint32 // stripes where it is our parent
	childOf  uint32 // stripes where it is our child
	// src is what kind of sender it is as our parent (the tracker says
	// with each assignment), for the engine's bytes by source.
	src peer.Source
	// retryAt: a link to it failed to open while the tracker still pairs
	// us; the dialer tries again then, backoff doubling from
	// redialFirst to redialMax until a link opens.
	retryAt time.Time
	backoff time.Duration
}

// A link that failed to open is dialed again while the tracker keeps the
// pair: the tracker moves a child only within its report budget, and a
// child left assigned to a parent it never reached would stay on the
// origin. On a loaded machine links do time out.
const (
	redialFirst = time.Second
	redialMax   = 8 * time.Second
)

// New makes a Node; it becomes useful once the welcome arrives.
func New(cfg Config) (*Node, error) {
	if cfg.Send == nil {
		return nil, errors.New("node: Config.Send is required")
	}
	if !protocol.ValidStream(cfg.Stream) {
		return nil, errors.New("node: invalid stream name " + strconv.Quote(cfg.Stream))
	}
	if cfg.Logger == nil {
		cfg.Logger = peer.Discard
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	keys, _ := chunk.NewKeyring()
	return &Node{cfg: cfg, log: cfg.Logger, keys: keys, nbrs: make(map[protocol.PeerID]*nbr), statsEvery: 2 * time.Second}, nil
}

// Self is the peer id the tracker gave this node (0 before the welcome).
func (n *Node) Self() protocol.PeerID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.self
}

// Engine is the node's engine, nil until the stream's key is known.
func (n *Node) Engine() *peer.Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eng
}

// Depths is the node's depth in each stripe tree (0 where origin-fed).
func (n *Node) Depths() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int(nil), n.depth...)
}

func (n *Node) state(s string) {
	if n.cfg.OnState != nil {
		n.cfg.OnState(s)
	}
}

// Handle takes one message from the tracker.
func (n *Node) Handle(m protocol.Message) {
	switch m := m.(type) {
	case protocol.Welcome:
		n.welcome(m)
	case protocol.Keys:
		n.announce(m.Epoch)
		n.updateKeys(m.PublicKey, m.Keys, m.Live)
	case protocol.Assign:
		n.assign(m)
	case protocol.ICE:
		n.setICE(m.ICEServers)
	case protocol.Signal:
		n.mu.Lock()
		tr := n.tr
		n.mu.Unlock()
		if tr == nil {
			return
		}
		if err := tr.HandleSignal(m); err != nil {
			n.log.Debug("signal", "from", m.From, "err", err)
		}
	case protocol.Ended:
		n.state("ended")
	case protocol.Error:
		n.log.Warn("tracker error", "code", m.Code, "msg", m.Message)
		n.state("error:" + m.Code + ": " + m.Message)
	}
}

func (n *Node) welcome(w protocol.Welcome) {
	n.mu.Lock()
	n.self, n.stripes, n.ice = w.Peer, w.Stripes, w.ICEServers
	n.parent = make([]protocol.PeerID, w.Stripes)
	n.depth = make([]int, w.Stripes)
	n.lostAt = make([]time.Time, w.Stripes)
	n.prev = make([]protocol.PeerID, w.Stripes)
	n.joinedAt = n.cfg.Clock()
	if n.times.Welcome.IsZero() {
		n.times.Welcome = n.joinedAt
	}
	if w.StatsMillis > 0 {
		n.statsEvery = time.Duration(w.StatsMillis) * time.Millisecond
	}
	if n.cfg.Origin == nil && n.cfg.OriginFor != nil {
		n.cfg.Origin = n.cfg.OriginFor(w.OriginURL)
	}
	n.mu.Unlock()
	n.announce(w.Epoch)
	n.updateKeys(w.PublicKey, w.Keys, w.Live)
}

// announce passes the tracker's current epoch to the engine (and keeps it
// for an engine made later): the engine moves to a higher epoch only once
// the tracker has announced it, so a replayed chunk of an old, higher
// epoch cannot switch it (issue 18 #4).
func (n *Node) announce(epoch uint32) {
	if epoch == 0 {
		return
	}
	n.mu.Lock()
	n.epoch = max(n.epoch, epoch)
	eng := n.eng
	n.mu.Unlock()
	if eng != nil {
		eng.AnnounceEpoch(epoch)
	}
}

// setICE takes fresh ICE servers from the tracker (short-lived TURN
// credentials, re-minted while the session lives): the links dialed or
// accepted from now on use them. Without this a viewer's credentials
// expired minutes after its welcome and every later TURN link failed.
func (n *Node) setICE(servers []protocol.ICEServer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ice = servers
	if n.tr != nil {
		n.tr.SetICEServers(servers)
	}
}

// updateKeys adds content keys and (re)builds the engine when the stream's
// signing key becomes known or changes (a new seeder).
func (n *Node) updateKeys(pubB64 string, keys []protocol.ContentKey, live bool) {
	for _, k := range keys {
		mk, err := chunk.ParseMasterKey(k.ID, k.Key, k.Salt)
		if err != nil {
			n.log.Warn("bad content key from tracker", "err", err)
			continue
		}
		if old, ok := n.keys.Get(mk.ID); ok && old.Equal(mk) {
			continue
		}
		n.keys.Remove(mk.ID)
		if err := n.keys.Add(mk); err != nil {
			n.log.Warn("content key", "err", err)
		}
	}
	n.mu.Lock()
	defer n.flush()
	if pubB64 != "" && pubB64 != n.pub && n.self != 0 {
		if err := n.startEngineLocked(pubB64); err != nil {
			n.mu.Unlock()
			n.log.Error("start engine", "err", err)
			n.state("error:internal: " + err.Error())
			return
		}
	}
	n.mu.Unlock()
	if live {
		n.state("live")
	} else {
		n.state("waiting")
	}
}

func (n *Node) startEngineLocked(pubB64 string) error {
	pub, err := base64.StdEncoding.DecodeString(pubB64)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("stream public key is not base64 Ed25519")
	}
	if n.eng != nil {
		n.eng.Close()
	}
	cfg := peer.Config{
		Stream: n.cfg.Stream, PublicKey: pub, Stripes: n.stripes, Root: n.cfg.Root,
		Origin: n.cfg.Origin, Player: n.cfg.Player, Clock: n.cfg.Clock, Logger: n.log,
		Report: func(r protocol.Report) { n.cfg.Send(r) },
	}
	if !n.cfg.Root {
		cfg.Keys, cfg.ProofKey = n.keys, n.cfg.ProofKey
		cfg.MaxUplinkKbps = max(n.cfg.MaxUploadKbps, 0)
	}
	if n.cfg.Engine != nil {
		n.cfg.Engine(&cfg)
	}
	eng, err := peer.New(cfg)
	if err != nil {
		return err
	}
	n.eng, n.pub = eng, pubB64
	if n.epoch != 0 && !n.cfg.Root {
		eng.AnnounceEpoch(n.epoch)
	}
	if n.tr == nil {
		n.tr, err = rtc.New(rtc.Config{
			Self: n.self, ICEServers: n.ice, API: n.cfg.API, RelayOnly: n.cfg.RelayOnly, Logger: n.log,
			Signal:    func(s protocol.Signal) { n.cfg.Send(s) },
			Accept:    n.accept,
			OnOpen:    n.onOpen,
			OnMessage: n.onMessage,
			OnClose:   n.onClose,
			Guard:     n.cfg.Guard,
		})
		if err != nil {
			return err
		}
	}
	// Neighbours assigned before the engine existed: connect or attach.
	for _, nb := range n.nbrs {
		n.connectLocked(nb)
	}
	for s, p := range n.parent {
		if p == 0 && !n.cfg.Root {
			eng.SetParent(s, 0, nil)
		}
	}
	return nil
}

func (n *Node) accept(remote protocol.PeerID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	nb := n.nbrs[remote]
	return nb != nil && (nb.parentOf|nb.childOf) != 0
}

// assign applies one overlay edge.
func (n *Node) assign(a protocol.Assign) {
	if n.cfg.OnAssign != nil {
		n.cfg.OnAssign(a)
	}
	n.mu.Lock()
	defer n.flush()
	defer n.mu.Unlock()
	if a.Stripe >= n.stripes {
		return
	}
	bit := uint32(1) << a.Stripe
	switch {
	case a.Child != 0:
		nb := n.nbrLocked(a.Child)
		if a.Remove {
			nb.childOf &^= bit
			if n.eng != nil {
				n.eng.RemoveChild(a.Stripe, a.Child)
			}
		} else {
			nb.childOf |= bit
			n.connectLocked(nb)
		}
		n.dropIdleLocked(nb)
	case a.Remove:
		if n.parent[a.Stripe] != a.Parent {
			return
		}
		n.parent[a.Stripe], n.prev[a.Stripe] = 0, a.Parent
		if nb := n.nbrs[a.Parent]; nb != nil {
			nb.parentOf &^= bit
			n.dropIdleLocked(nb)
		}
		if n.eng != nil {
			n.eng.ClearParent(a.Stripe)
		}
	default:
		if old := n.parent[a.Stripe]; old != 0 && old != a.Parent {
			if nb := n.nbrs[old]; nb != nil {
				nb.parentOf &^= bit
				n.dropIdleLocked(nb)
			}
		}
		if from := cmp.Or(n.parent[a.Stripe], n.prev[a.Stripe]); from != 0 && from != a.Parent && len(n.changes) < 1024 {
			n.changes = append(n.changes, ParentChange{Stripe: a.Stripe, From: from, To: a.Parent, At: n.cfg.Clock()})
		}
		n.prev[a.Stripe] = 0
		if lost := n.lostAt[a.Stripe]; !lost.IsZero() && a.Parent != n.parent[a.Stripe] {
			n.reparents = append(n.reparents, n.cfg.Clock().Sub(lost))
			n.lostAt[a.Stripe] = time.Time{}
		}
		n.parent[a.Stripe], n.depth[a.Stripe] = a.Parent, a.Depth
		if a.Parent == 0 {
			// No parent has room: the origin feeds this stripe for now.
			if n.eng != nil {
				n.eng.SetParent(a.Stripe, 0, nil)
			}
			return
		}
		if n.times.ParentAssigned.IsZero() {
			n.times.ParentAssigned = n.cfg.Clock()
		}
		nb := n.nbrLocked(a.Parent)
		nb.parentOf |= bit
		nb.src = peer.SourceOf(a.ParentKind)
		if nb.open && n.eng != nil {
			n.eng.SetSource(nb.id, nb.src)
			n.eng.SetParent(a.Stripe, nb.id, nb.elink)
		} else {
			n.connectLocked(nb)
		}
	}
}

func (n *Node) nbrLocked(id protocol.PeerID) *nbr {
	nb := n.nbrs[id]
	if nb == nil {
		nb = &nbr{id: id}
		n.nbrs[id] = nb
	}
	return nb
}

// connectLocked makes sure a link to nb exists or is coming: of two paired
// peers the one with the lower id dials (rtc resolves the rare glare).
func (n *Node) connectLocked(nb *nbr) {
	if nb.open {
		n.attachLocked(nb)
		return
	}
	if nb.link != nil || nb.dialing || n.tr == nil || n.self > nb.id {
		return
	}
	nb.dialing = true
	n.dials = append(n.dials, nb.id)
}

// flush dials and closes links outside the lock: rtc reports a failed
// dial or a closed link through OnClose, which takes the lock.
func (n *Node) flush() {
	n.mu.Lock()
	dials, closing, tr := n.dials, n.closing, n.tr
	n.dials, n.closing = nil, nil
	n.mu.Unlock()
	for _, l := range closing {
		l.Close()
	}
	for _, id := range dials {
		start := n.cfg.Clock()
		l, err := tr.Dial(id)
		n.mu.Lock()
		if n.times.DialStart.IsZero() {
			n.times.DialStart, n.times.DialEnd = start, n.cfg.Clock()
		}
		if nb := n.nbrs[id]; nb != nil {
			nb.dialing = false
			if err == nil && nb.link == nil {
				nb.link = l
			}
		}
		n.mu.Unlock()
		if err != nil {
			n.log.Warn("dial", "peer", id, "err", err)
		}
	}
}

// attachLocked tells the engine about every role of an open neighbour.
func (n *Node) attachLocked(nb *nbr) {
	if n.eng == nil || !nb.open {
		return
	}
	for s := 0; s < n.stripes; s++ {
		bit := uint32(1) << s
		if nb.parentOf&bit != 0 {
			n.eng.SetSource(nb.id, nb.src)
			n.eng.SetParent(s, nb.id, nb.elink)
		}
		if nb.childOf&bit != 0 {
			n.eng.AddChild(s, nb.id, nb.elink)
		}
	}
}

// dropIdleLocked closes the link to a neighbour we no longer need.
func (n *Node) dropIdleLocked(nb *nbr) {
	if nb.parentOf|nb.childOf != 0 {
		return
	}
	delete(n.nbrs, nb.id)
	if n.eng != nil {
		n.eng.RemovePeer(nb.id)
	}
	if nb.link != nil {
		n.closing = append(n.closing, nb.link)
	}
}

func (n *Node) onOpen(l *rtc.Link) {
	n.mu.Lock()
	defer n.flush()
	defer n.mu.Unlock()
	nb := n.nbrs[l.Remote()]
	if nb == nil || (nb.parentOf|nb.childOf) == 0 {
		n.closing = append(n.closing, l)
		return
	}
	nb.link, nb.open = l, true
	nb.retryAt, nb.backoff = time.Time{}, 0
	if nb.parentOf != 0 && n.times.ParentOpen.IsZero() {
		n.times.ParentOpen = n.cfg.Clock()
	}
	nb.elink = peer.Link(l)
	if n.cfg.WrapLink != nil {
		nb.elink = n.cfg.WrapLink(l)
	}
	n.attachLocked(nb)
}

func (n *Node) onMessage(l *rtc.Link, msg []byte) {
	n.mu.Lock()
	eng := n.eng
	var el peer.Link = l
	if nb := n.nbrs[l.Remote()]; nb != nil && nb.link == l && nb.elink != nil {
		el = nb.elink
	}
	n.mu.Unlock()
	if eng != nil {
		eng.HandleMessage(l.Remote(), el, msg)
	}
}

func (n *Node) onClose(l *rtc.Link, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nb := n.nbrs[l.Remote()]
	if nb == nil || (nb.link != nil && nb.link != l) {
		return
	}
	nb.link, nb.elink, nb.open = nil, nil, false
	if n.eng == nil {
		return
	}
	n.eng.RemovePeer(nb.id)
	for s := 0; s < n.stripes; s++ {
		if nb.parentOf&(1<<s) != 0 {
			// The origin covers while the tracker finds another parent.
			n.eng.ParentFailed(s, nb.id)
			if n.lostAt[s].IsZero() {
				n.lostAt[s] = n.cfg.Clock()
			}
		}
	}
	if errors.Is(err, rtc.ErrConnectTimeout) {
		n.log.Info("neighbour did not connect in time", "peer", nb.id)
		if (nb.parentOf|nb.childOf) != 0 && n.self < nb.id && !n.closed {
			nb.backoff = min(max(2*nb.backoff, redialFirst), redialMax)
			nb.retryAt = n.cfg.Clock().Add(nb.backoff)
		}
	}
}

// redialDueLocked dials the neighbours whose retry is due and that are
// still paired with us.
func (n *Node) redialDueLocked(now time.Time) {
	for _, nb := range n.nbrs {
		if nb.retryAt.IsZero() || now.Before(nb.retryAt) {
			continue
		}
		nb.retryAt = time.Time{}
		if (nb.parentOf|nb.childOf) != 0 && nb.link == nil {
			n.log.Info("dialing a neighbour again", "peer", nb.id, "after", nb.backoff)
			n.connectLocked(nb)
		}
	}
}

// Tick drives the engine's timers and the periodic stats; call it every
// 50 ms or so.
func (n *Node) Tick(now time.Time) {
	n.mu.Lock()
	n.redialDueLocked(now)
	n.mu.Unlock()
	n.flush()
	n.mu.Lock()
	eng := n.eng
	due := eng != nil && now.Sub(n.lastStats) >= n.statsEvery
	if due {
		n.lastStats = now
	}
	n.mu.Unlock()
	if eng == nil {
		if now.Sub(n.lastStats) >= n.statsEvery {
			n.mu.Lock()
			n.lastStats = now
			n.mu.Unlock()
			n.cfg.Send(protocol.Stats{}) // the heartbeat, before there is anything to say
		}
		return
	}
	eng.Tick(now)
	if due {
		st := eng.Stats()
		if n.cfg.Decorate != nil {
			n.cfg.Decorate(&st)
		}
		n.mu.Lock()
		n.last = st
		n.mu.Unlock()
		n.cfg.Send(st)
	}
}

// Publish feeds a sealed chunk into the mesh (root only).
func (n *Node) Publish(sealed []byte) error {
	n.mu.Lock()
	eng := n.eng
	n.mu.Unlock()
	if eng == nil {
		return errors.New("node: not registered with the tracker yet")
	}
	return eng.Publish(sealed)
}

// Reparents lists how long each lost parent took to be replaced: from the
// link to it failing to the tracker assigning a new parent in that stripe.
func (n *Node) Reparents() []time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Duration(nil), n.reparents...)
}

// ParentChanges lists the parents the tracker replaced, with when.
func (n *Node) ParentChanges() []ParentChange {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ParentChange(nil), n.changes...)
}

// LastStats is the most recent stats report (the engine's Stats resets its
// period counters, so readers other than the tracker use this copy).
func (n *Node) LastStats() protocol.Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last
}

// Close ends every link and the engine.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	eng, tr := n.eng, n.tr
	n.mu.Unlock()
	if tr != nil {
		tr.Close()
	}
	if eng != nil {
		eng.Close()
	}
	return nil
}

// DeclaredUpload is the upload capacity a join declares (Join.UploadKbps)
// under a ceiling of maxKbps (Config.MaxUploadKbps, 0: none): the smaller
// of the two, the ceiling when nothing is declared.
func DeclaredUpload(declared, maxKbps int) int {
	if maxKbps <= 0 || (declared > 0 && declared <= maxKbps) {
		return declared
	}
	return maxKbps
}
