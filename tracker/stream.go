package tracker

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// streamState is one stream's swarm: its forest, sessions and seeder.
// Everything in it is guarded by mu; the websocket writes it triggers go
// through each session's own queue, so mu is never held across I/O.
type streamState struct {
	t    *Tracker
	name string

	mu       sync.Mutex
	forest   *overlay.Forest
	sessions map[protocol.PeerID]*session // viewers and the seeder
	seeder   *session

	// streamKbps is the bitrate the seeder's engine measured (0 until
	// its first stats: the tracker's StreamKbps is assumed meanwhile).
	streamKbps int
	// joins and uploaders count joins and those that can upload
	// (Capacity.Initial).
	joins, uploaders int

	seederRTMP string // the current seeder's RTMP URL, for the stream manager
	publicKey  string // base64 Ed25519 of the current seeder
	pub        ed25519.PublicKey
	keys       []protocol.ContentKey
	originURL  string
	epoch      uint32
	live       bool

	// oldPubs are the seeder keys before pub (the newest last, at most
	// maxOldPubs): a chunk signed under one is genuine, not forged, while
	// peers switch keys.
	oldPubs []ed25519.PublicKey

	dash dashState // events and time series for the dashboard (dashboard.go)
}

// ov maps a session to its overlay node.
func (st *streamState) ov(s *session) overlay.PeerID {
	if s.isSeeder {
		return overlay.Root
	}
	return overlay.PeerID(s.id)
}

// pid maps an overlay node to the protocol peer id; 0 for the origin or a
// root without a connected seeder.
func (st *streamState) pid(id overlay.PeerID) protocol.PeerID {
	switch id {
	case overlay.Origin:
		return 0
	case overlay.Root:
		if st.seeder != nil {
			return st.seeder.id
		}
		return 0
	}
	return protocol.PeerID(id)
}

// kindOfLocked is what Assign.ParentKind says of overlay node id: the
// seeder for the root, an edge's kind for an edge, empty for a viewer or
// the origin.
func (st *streamState) kindOfLocked(id overlay.PeerID) protocol.ClientKind {
	switch id {
	case overlay.Origin:
		return ""
	case overlay.Root:
		return protocol.KindSeeder
	}
	if s := st.sessions[protocol.PeerID(id)]; s != nil && s.kind == protocol.KindRelay {
		return protocol.KindRelay
	}
	return ""
}

// applyLocked turns overlay changes into Assign messages for both ends.
func (st *streamState) applyLocked(changes []overlay.Change) {
	m := st.t.metrics
	for _, c := range changes {
		childID := protocol.PeerID(c.Child)
		child := st.sessions[childID]
		parentID := st.pid(c.Parent)
		if child != nil {
			if c.Added {
				depth, _ := st.forest.Depth(c.Child, c.Stripe)
				child.send(protocol.Assign{Stripe: c.Stripe, Parent: parentID, Depth: depth, ParentKind: st.kindOfLocked(c.Parent)})
			} else if parentID != 0 {
				child.send(protocol.Assign{Stripe: c.Stripe, Parent: parentID, Remove: true})
			}
		}
		if parent := st.sessions[parentID]; parentID != 0 && parent != nil {
			parent.send(protocol.Assign{Stripe: c.Stripe, Child: childID, Remove: !c.Added})
		}
		if c.Added {
			m.edges.Inc()
		}
	}
	st.noteChanges(changes)
}

// paired reports whether a and b are parent and child in some stripe.
func (st *streamState) pairedLocked(a, b *session) bool {
	oa, ob := st.ov(a), st.ov(b)
	for s := 0; s < st.forest.Stripes(); s++ {
		if p, err := st.forest.Parent(oa, s); err == nil && p == ob {
			return true
		}
		if p, err := st.forest.Parent(ob, s); err == nil && p == oa {
			return true
		}
	}
	return false
}

var errFull = errors.New("stream is full")

// join admits viewer s and assigns its parents.
func (st *streamState) join(s *session, j protocol.Join) error {
	t := st.t
	info := overlay.PeerInfo{
		ID: overlay.PeerID(s.id), NAT: natOf(j.NAT),
		Locality: j.Region, NoUpload: j.NoUpload,
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.joins++
	if !j.NoUpload {
		st.uploaders++
	}
	// Nothing is confirmed yet: a declared uplink earns at most
	// MaxUnconfirmed slots (Capacity.Confirm).
	info.Capacity = st.capacity().Confirm(0, st.capacity().Initial(j), 0)
	if st.forest.Len() >= t.cfg.MaxPeersPerStream {
		return errFull
	}
	start := time.Now()
	res, err := st.forest.Join(info)
	if err != nil {
		return err
	}
	t.metrics.assign.Observe(time.Since(start).Seconds())
	s.st, s.joined, s.capacity, s.noUpload = st, t.cfg.Now(), info.Capacity, j.NoUpload
	if j.ProofKey != "" {
		s.proofKey, _ = protocol.ParseProofKey(j.ProofKey) // validated by Decode
	}
	st.sessions[s.id] = s
	s.send(st.welcomeLocked(s))
	t.viewers.Store(s.id, struct{}{})
	s.refreshICE()
	st.event(Event{Kind: EventJoin, Peer: s.id, Detail: string(j.Kind)})
	st.applyLocked(res.Changes)
	t.metrics.joins.Inc()
	t.metrics.peers.WithLabelValues(st.name).Set(float64(st.forest.Len()))
	return nil
}

func (st *streamState) welcomeLocked(s *session) protocol.Welcome {
	w := protocol.Welcome{
		Peer: s.id, PublicKey: st.publicKey, Keys: st.keys, Stripes: st.forest.Stripes(),
		OriginURL: st.originURL, Epoch: st.epoch, Live: st.live,
		StatsMillis: int(st.t.cfg.StatsInterval / time.Millisecond),
	}
	if f := st.t.cfg.ICEServers; f != nil {
		w.ICEServers = f(s.id)
	}
	return w
}

func natOf(s string) overlay.NAT {
	switch s {
	case "open":
		return overlay.NATOpen
	case "cone":
		return overlay.NATCone
	case "symmetric":
		return overlay.NATSymmetric
	}
	return overlay.NATUnknown
}

// registerSeeder makes s the root of the stream, replacing an older seeder.
func (st *streamState) registerSeeder(s *session, h protocol.SeederHello) error {
	pub, err := base64.StdEncoding.DecodeString(h.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("seeder public key is not base64 Ed25519")
	}
	st.mu.Lock()
	old := st.seeder
	if old != nil {
		delete(st.sessions, old.id)
	}
	s.st, s.joined = st, st.t.cfg.Now()
	st.seeder = s
	st.sessions[s.id] = s
	st.rememberPubLocked(pub)
	st.publicKey, st.pub, st.keys = h.PublicKey, pub, h.Keys
	st.originURL, st.epoch, st.live = h.OriginURL, h.Epoch, h.Epoch != 0
	st.seederRTMP = h.RTMPURL
	st.event(Event{Kind: EventSeeder, Peer: s.id, Epoch: h.Epoch})
	s.send(st.welcomeLocked(s))
	st.broadcastKeysLocked()
	// Hand the root's children to the new seeder.
	var kids []overlay.PeerID
	for k := 0; k < st.forest.Stripes(); k++ {
		kids, _ = st.forest.Children(kids[:0], overlay.Root, k)
		for _, c := range kids {
			if child := st.sessions[protocol.PeerID(c)]; child != nil {
				child.send(protocol.Assign{Stripe: k, Parent: s.id, Depth: 1, ParentKind: protocol.KindSeeder})
			}
			s.send(protocol.Assign{Stripe: k, Child: protocol.PeerID(c)})
		}
	}
	st.mu.Unlock()
	if old != nil {
		old.close("replaced by a new seeder")
	}
	return nil
}

// updateFromSeeder takes a Keys message from the seeder: rotation, a new
// epoch, or the publish going live or ending.
func (st *streamState) updateFromSeeder(k protocol.Keys) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.noteKeys(k)
	st.keys, st.live = k.Keys, k.Live
	if k.Epoch != 0 {
		st.epoch = k.Epoch
	}
	st.broadcastKeysLocked()
}

func (st *streamState) broadcastKeysLocked() {
	msg := protocol.Keys{Keys: st.keys, PublicKey: st.publicKey, OriginURL: st.originURL, Epoch: st.epoch, Live: st.live}
	for _, s := range st.sessions {
		if !s.isSeeder {
			s.send(msg)
		}
	}
}

// leave removes s and re-parents its orphans.
func (st *streamState) leave(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sessions[s.id] != s {
		return
	}
	delete(st.sessions, s.id)
	st.noteLeave(s)
	if s.isSeeder {
		st.seeder, st.live = nil, false
		st.broadcastKeysLocked()
		// The root's children fall back to the origin until a seeder returns.
		var kids []overlay.PeerID
		for k := 0; k < st.forest.Stripes(); k++ {
			kids, _ = st.forest.Children(kids[:0], overlay.Root, k)
			for _, c := range kids {
				if child := st.sessions[protocol.PeerID(c)]; child != nil {
					child.send(protocol.Assign{Stripe: k, Parent: 0})
				}
			}
		}
		return
	}
	changes, err := st.forest.Leave(overlay.PeerID(s.id))
	if err != nil {
		return
	}
	st.applyLocked(changes)
	st.t.metrics.leaves.Inc()
	st.t.metrics.peers.WithLabelValues(st.name).Set(float64(st.forest.Len()))
}

// relay forwards a signal between paired peers.
func (st *streamState) relay(from *session, sig protocol.Signal) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	to := st.sessions[sig.To]
	if to == nil || to == from || !st.pairedLocked(from, to) {
		return errNotPaired
	}
	sig.From, sig.To = from.id, 0
	to.send(sig)
	return nil
}

var errNotPaired = errors.New("signal to a peer that is not your parent or child")

// ReportMoveBurst and ReportMoveEvery cap how often a peer's own
// reports move it to a new parent (issue 18 #8): each move shows it a new
// parent's address, so unbounded moves would let one viewer harvest the
// addresses of the swarm. The reporter stays where it is until its
// budget refills. Past the cap a report is ignored whole (a demotion's
// shedding could move the reporter too); a false bad-chunk report still
// costs its strike.
const (
	ReportMoveBurst = 4
	ReportMoveEvery = 30 * time.Second
)

// report handles a child's complaint about a parent (or a parent's about a
// slow child).
func (st *streamState) report(from *session, r protocol.Report) {
	st.mu.Lock()
	defer st.mu.Unlock()
	accused := st.sessions[r.Peer]
	if accused == nil || !st.pairedLocked(from, accused) {
		return
	}
	m := st.t.metrics
	m.reports.WithLabelValues(r.Kind).Inc()
	switch r.Kind {
	case protocol.ReportSlow:
		// The parent cannot feed this child: move the child.
		if changes, err := st.forest.ReportBadParent(overlay.PeerID(r.Peer), r.Stripe); err == nil {
			st.applyLocked(changes)
		}
		return
	case protocol.ReportBadChunk:
		// Only a child can have received bad bytes from the accused: a
		// report about anyone but its own parent in that stripe is junk,
		// and costs a strike like a false one.
		if p, err := st.forest.Parent(st.ov(from), r.Stripe); err != nil || p != st.ov(accused) {
			st.strikeLocked(from, "bad-chunk report about a peer that is not its parent")
			return
		}
		if st.pub != nil {
			if st.genuineLocked(r.Chunk) {
				// The chunk is genuine: the accuser lied.
				st.strikeLocked(from, "genuine chunk reported as bad")
				return
			}
			if st.provedLocked(accused, from, r) {
				return // evicted on the accused's own signature
			}
		}
		// The bytes fail to verify, but nothing proves the accused sent
		// them: the accuser may have made them up (issue 18 #2). So no
		// eviction, however many children say so (they may be one
		// person's sybils): the accused is demoted (each child counts once
		// per DemoteHold) and the child moves. A forger's children all
		// leave it and its slots shrink to none; an honest parent loses
		// half its slots per distinct liar, for DemoteHold.
		st.t.log.Info("bad chunk reported without proof: demoting the parent, moving the child", "stream", st.name, "parent", r.Peer, "child", from.id)
	}
	// Past its move budget a report does nothing: not even the demotion,
	// whose shedding could move the reporter all the same.
	if from.reportMoves == nil {
		from.reportMoves = rate.NewLimiter(rate.Every(ReportMoveEvery), ReportMoveBurst)
	}
	if !from.reportMoves.AllowN(st.t.cfg.Now(), 1) {
		m.reportMovesCapped.Inc()
		return
	}
	if r.Kind == protocol.ReportSilent || r.Kind == protocol.ReportFlood || r.Kind == protocol.ReportBadChunk {
		st.demoteLocked(accused, from, r.Kind, r.Stripe)
	}
	if (r.Kind == protocol.ReportSilent || r.Kind == protocol.ReportNoConn) && !accused.isSeeder {
		// It may be gone: no new children for it until its next stats,
		// or every orphan lands in the slots its children just freed.
		_ = st.forest.Suspect(overlay.PeerID(accused.id))
	}
	// Whatever the verdict on the parent, move the child away from it; from
	// a parent that may be gone, to one heard from since it went quiet.
	move := st.forest.ReportBadParent
	if (r.Kind == protocol.ReportSilent || r.Kind == protocol.ReportNoConn) && !accused.isSeeder {
		now := st.t.cfg.Now()
		move = func(child overlay.PeerID, s int) ([]overlay.Change, error) {
			return st.forest.ReportGoneParent(child, s, now)
		}
	}
	if changes, err := move(overlay.PeerID(from.id), r.Stripe); err == nil {
		st.applyLocked(changes)
		m.reparents.Inc()
	}
}

// strikeLocked counts a false or misdirected bad-chunk report; the third
// evicts the reporter.
func (st *streamState) strikeLocked(from *session, why string) {
	from.strikes++
	st.t.metrics.falseReports.Inc()
	st.t.log.Info("bad-chunk report refused", "stream", st.name, "peer", from.id, "why", why, "strikes", from.strikes)
	if from.strikes >= 3 {
		st.t.log.Warn("evicting peer for false bad-chunk reports", "stream", st.name, "peer", from.id)
		st.event(Event{Kind: EventEvict, Peer: from.id, Detail: "false bad-chunk reports"})
		from.evict("false bad-chunk reports")
	}
}

// demoteLocked lowers the capacity of a parent a child reported as silent
// or flooding (Demote): a peer that promised more upload than it delivers
// (a capacity liar, or just an optimist) stops attracting new children and
// sheds some of the ones it has; one two children lost at once sheds all.
// A silent parent whose own stats show it overloaded keeps what its
// uplink carries (Capacity.Overloaded); one its own stats show unfed in
// that stripe keeps everything (Capacity.Starved).
func (st *streamState) demoteLocked(accused, from *session, kind string, stripe int) {
	if accused.isSeeder {
		return
	}
	now := st.t.cfg.Now()
	if accused.complaints == nil {
		accused.complaints = make(map[protocol.PeerID]time.Time)
	}
	c, ok := st.capacity().Complaint(accused.complaints, from.id, kind, stripe, accused.capacity, st.slotsUsed(accused.id), accused.stats, now)
	if !ok {
		return
	}
	accused.demotedUntil = now.Add(DemoteHold)
	if changes, err := st.forest.UpdateCapacity(overlay.PeerID(accused.id), c, now); err == nil {
		accused.capacity = c
		st.applyLocked(changes)
		st.t.metrics.demotions.Inc()
	}
}

// stats records a peer's report and sizes its capacity from what its
// engine measured (Capacity): proven bandwidth moves strong peers up, a
// measured uplink below the slots it holds sheds children.
func (st *streamState) stats(s *session, stats protocol.Stats) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.noteStats(s, stats)
	s.stats = stats
	if s.isSeeder {
		if stats.StreamKbps > 0 {
			st.streamKbps = stats.StreamKbps
		}
		return
	}
	st.forest.Heard(overlay.PeerID(s.id), st.t.cfg.Now())
	if changes, err := st.forest.Alive(overlay.PeerID(s.id)); err == nil {
		st.applyLocked(changes)
	}
	if s.noUpload {
		return
	}
	now := st.t.cfg.Now()
	c := st.capacity().Update(s.capacity, st.slotsUsed(s.id), stats, !now.Before(s.demotedUntil))
	if c = st.capacity().Confirm(s.capacity, c, st.confirmedLocked(s.id)); c != s.capacity {
		s.capacity = c
		if changes, err := st.forest.UpdateCapacity(overlay.PeerID(s.id), c, now); err == nil {
			st.applyLocked(changes)
		}
	}
}

// capacity is the slot policy at the stream's bitrate. Callers hold st.mu.
func (st *streamState) capacity() Capacity {
	c := st.t.capacity()
	if st.streamKbps > 0 {
		c.StreamKbps = st.streamKbps
	}
	c.Joins, c.Uploaders = st.joins, st.uploaders
	return c
}

// slotsUsed is how many children id feeds in the stripe it is interior in.
func (st *streamState) slotsUsed(id protocol.PeerID) int {
	s, err := st.forest.Interior(overlay.PeerID(id))
	if err != nil || s < 0 {
		return 0
	}
	c, _ := st.forest.Children(nil, overlay.PeerID(id), s)
	return len(c)
}
