package peer

import (
	"context"
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/protocol"
)

// ReportFlood is the report kind for a parent that sends more than the
// stream rate allows.
const ReportFlood = protocol.ReportFlood

// originPeer marks the origin as the source of a chunk.
const originPeer PeerID = 0

// Engine is one peer of the mesh: it receives pieces from its parents,
// forwards them cut-through to its children, verifies, repairs and plays
// chunks. It does no I/O and starts no goroutine except for blocking origin
// fetches. All methods are safe for concurrent use.
type Engine struct {
	cfg Config
	log Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	out      []func() // callbacks to run outside mu, in order
	draining bool

	stripes []stripe
	nbrs    map[PeerID]*nbr
	// subs holds subscriptions from neighbours not registered yet (the
	// child's link may open first on its side).
	subs map[PeerID]subscription

	asm  *chunk.Reassembler
	win  map[key]*entry
	fifo []fifoEnt // window entries in insertion order, for expiry
	pend map[key]*pending

	hasEpoch bool
	epoch    uint32
	newest   uint64 // newest verified sequence of epoch
	init     *entry // verified init segment of epoch
	// newestEnt is the entry of newest (nil until a media chunk).
	newestEnt *entry
	lastKey   uint64 // newest verified keyframe chunk of epoch (0: none)
	eos       uint64 // sequence of the end-of-stream chunk (0: none)
	floor     uint64 // lowest sequence of epoch still accepted

	// Playout.
	started bool
	// fallbackBase is the last live-edge estimate of a stripe whose parent
	// changed, used while no stripe has a fresh one (see dropParent).
	fallbackBase time.Time
	hasFallback  bool
	playhead     uint64 // next sequence to deliver
	ended        bool
	lastPlay     chunk.Header // last delivered chunk

	// Stream measurements.
	avgDur  time.Duration // mean chunk duration
	rate    float64       // stream bytes per second (Config.InitialRate before the first chunk)
	created time.Time
	firstAt time.Time // first verified chunk of the epoch
	// rateBytes and rateSecs are moving averages of the chunks' sealed
	// sizes and durations, both from 0: rate is their ratio, so the first
	// chunks weigh in full instead of Config.InitialRate decaying over a
	// dozen chunks (the seeder's first stats, 2 s in, said 3.5 Mbit/s for
	// a 1.5 Mbit/s stream; the tracker sizes every slot from it).
	rateBytes, rateSecs float64

	// Origin.
	originBusy int
	originQ    []key
	// originTime times rescue fetches (originLead).
	originTime delayStats
	delayed    []delayedReport
	liveBusy   bool
	liveAt     time.Time

	// up is the uplink scheduler (sched.go); play the adaptive playout
	// delay (timing.go).
	up   uplink
	play playout
	// clock is the playout clock deadlines are read from.
	clock playClock
	// ranks numbers children in attachment order (nbr.rank).
	ranks int

	slowReset time.Time
	pingAt    time.Time
	sweepAt   time.Time
	ctr       Counters
	st        statsState
	src       sourceState // bytes by sender kind (sources.go)
	ann       announce    // epochs the tracker announced (announce.go)
	prf       proofs      // delivery statements from parents (proof.go)
}

// New returns an engine for cfg. It starts nothing; the owner drives it with
// Tick and the transports with HandleMessage.
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, errs.Wrap("peer: new engine: ", err, "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	now := cfg.Clock()
	e := &Engine{
		cfg:     cfg,
		log:     LoggerWith(cfg.Logger, "stream", cfg.Stream),
		ctx:     ctx,
		cancel:  cancel,
		stripes: make([]stripe, cfg.Stripes),
		nbrs:    make(map[PeerID]*nbr),
		subs:    make(map[PeerID]subscription),
		// Completed chunks are recognised by the window itself, so the
		// reassembler only needs a short memory of them; HandleMessage's
		// contract lets it keep pieces as they came.
		asm:     chunk.NewReassembler(chunk.ReassemblerConfig{MaxChunks: cfg.MaxAhead, DoneMemory: 64, Retain: true, Join: cfg.Join}),
		win:     make(map[key]*entry),
		pend:    make(map[key]*pending),
		avgDur:  250 * time.Millisecond, // the seeder's default, until chunks tell
		rate:    cfg.InitialRate,
		created: now,
	}
	e.slowReset = now.Add(cfg.SlowPeriod)
	e.play = newPlayout(cfg.PlayoutDelay, cfg.QuietPlayoutDelay, cfg.MaxPlayoutDelay, now)
	e.st.last = now
	return e, nil
}

// Close stops the engine and waits for its origin fetches to return. Links
// are the transports' to close.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.out = nil
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// unlockAndFlush releases mu and runs queued callbacks in order. Only one
// goroutine drains at a time; a callback that re-enters the engine queues
// its own callbacks, which the draining loop then runs, so order holds and
// nothing deadlocks.
func (e *Engine) unlockAndFlush() {
	if !e.closed && (e.up.len() > 0 || e.up.inLinks > 0) {
		e.pump(e.cfg.Clock())
	}
	if e.draining || len(e.out) == 0 {
		e.mu.Unlock()
		return
	}
	e.draining = true
	for len(e.out) > 0 {
		batch := e.out
		e.out = nil
		e.mu.Unlock()
		for _, f := range batch {
			f()
		}
		e.mu.Lock()
	}
	e.draining = false
	e.mu.Unlock()
}

func (e *Engine) queue(f func()) {
	if !e.closed {
		e.out = append(e.out, f)
	}
}

func (e *Engine) stripeOf(seq uint64) int { return int(seq % uint64(len(e.stripes))) }

// ---- topology ----

func (e *Engine) attach(id PeerID, l Link) *nbr {
	n := e.nbrs[id]
	if n == nil {
		n = &nbr{id: id, link: l, lastReport: make(map[string]time.Time)}
		n.sub = e.subs[id]
		delete(e.subs, id)
		e.nbrs[id] = n
	}
	n.link = l // a reconnect replaces the link; messages on the old one are ignored
	return n
}

func (e *Engine) detachIfIdle(n *nbr) {
	if n.roles() == 0 {
		delete(e.nbrs, n.id)
	}
}

func checkStripe(s, k int) error {
	if s < 0 || s >= k {
		return errors.New("peer: stripe " + strconv.Itoa(s) + " out of range 0.." + strconv.Itoa(k-1))
	}
	return nil
}

// SetParent makes id, reached over l, this peer's parent in stripe s. id 0
// (l nil) means what protocol.Assign means by parent 0: no peer has room,
// take the stripe from the origin until told otherwise.
func (e *Engine) SetParent(s int, id PeerID, l Link) error {
	if err := checkStripe(s, len(e.stripes)); err != nil {
		return err
	}
	if id != 0 && l == nil {
		return errors.New("peer: set parent: nil link")
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	st := &e.stripes[s]
	e.dropParent(s)
	st.originFed = id == 0
	st.since = e.cfg.Clock()
	if id == 0 {
		return nil
	}
	n := e.attach(id, l)
	n.parentOf |= 1 << s
	st.parent = n
	// Ask for the init segment and the current GOP of this stripe, less
	// what we hold (a re-parented child holds all of it).
	if err := l.Send(appendSub(nil, s, e.holding(s))); err != nil {
		e.log.Debug("peer: subscribe", "parent", id, "stripe", s, "err", err)
	}
	if len(st.children) > 0 {
		e.tellRelay(s)
	}
	return nil
}

// ClearParent removes stripe s's parent; until SetParent, the stripe's
// chunks come from repair (other parents, then the origin).
func (e *Engine) ClearParent(s int) error {
	if err := checkStripe(s, len(e.stripes)); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	e.dropParent(s)
	e.stripes[s].originFed = false
	return nil
}

func (e *Engine) dropParent(s int) {
	st := &e.stripes[s]
	if st.parent == nil {
		return
	}
	st.parent.parentOf &^= 1 << s
	e.detachIfIdle(st.parent)
	st.parent = nil
	st.hasFeed = false
	// The new parent may sit at another depth, so its arrivals start a
	// fresh live-edge estimate; keep the old one as a fallback meanwhile,
	// or a peer with one stripe would lose all sense of time (no
	// deadlines, no repair, no origin fetches) until a chunk arrives.
	if b, ok := st.liveBase(); ok {
		e.fallbackBase, e.hasFallback = b, true
	}
	st.nbase = 0
}

// ParentFailed tells the engine that the link to stripe s's parent id could
// not be established or died: it reports no_connection and takes the stripe
// from the origin until SetParent.
func (e *Engine) ParentFailed(s int, id PeerID) {
	if checkStripe(s, len(e.stripes)) != nil {
		return
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	st := &e.stripes[s]
	if st.parent != nil && st.parent.id == id {
		e.dropParent(s)
		st.originFed = true
	}
	e.reportLocked(e.cfg.Clock(), protocol.Report{Kind: protocol.ReportNoConn, Peer: id, Stripe: s}, nil)
}

// AddChild makes id, reached over l, a child in stripe s: pieces of the
// stripe are forwarded to it from now on.
func (e *Engine) AddChild(s int, id PeerID, l Link) error {
	if err := checkStripe(s, len(e.stripes)); err != nil {
		return err
	}
	if id == 0 || l == nil {
		return errors.New("peer: add child: no id or link")
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	n := e.attach(id, l)
	if n.childOf == 0 {
		e.ranks++
		n.rank = e.ranks
	}
	if n.childOf&(1<<s) == 0 {
		n.childOf |= 1 << s
		e.stripes[s].children = append(e.stripes[s].children, n)
		e.tellRelay(s)
	}
	if h, ok := n.sub.take(s); ok {
		e.burst(n, s, h)
	}
	return nil
}

// RemoveChild stops forwarding stripe s to id.
func (e *Engine) RemoveChild(s int, id PeerID) error {
	if err := checkStripe(s, len(e.stripes)); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	n := e.nbrs[id]
	if n == nil || n.childOf&(1<<s) == 0 {
		return nil
	}
	n.childOf &^= 1 << s
	n.holds[s] = held{}
	st := &e.stripes[s]
	st.children = slices.DeleteFunc(st.children, func(c *nbr) bool { return c == n })
	e.tellRelay(s)
	e.detachIfIdle(n)
	return nil
}

// RemovePeer drops every role of id (its link died or it left).
func (e *Engine) RemovePeer(id PeerID) {
	e.mu.Lock()
	defer e.unlockAndFlush()
	n := e.nbrs[id]
	if n == nil {
		return
	}
	for s := range e.stripes {
		if n.parentOf&(1<<s) != 0 {
			e.dropParent(s)
		}
		if n.childOf&(1<<s) != 0 {
			st := &e.stripes[s]
			st.children = slices.DeleteFunc(st.children, func(c *nbr) bool { return c == n })
			e.tellRelay(s)
		}
	}
	delete(e.nbrs, id)
}

// burst sends a new child the init segment and the stripe's chunks since the
// newest keyframe, so it can start playing at once, less what it said it
// holds (h).
func (e *Engine) burst(n *nbr, s int, h held) {
	if !e.hasEpoch {
		return
	}
	now := e.cfg.Clock()
	n.holds[s] = h
	if e.init != nil && !h.has(e.init.k) {
		e.queueAll(now, classBurst, n, e.init)
	}
	if e.lastKey == 0 {
		return
	}
	for seq := e.lastKey; seq <= e.newest; seq++ {
		k := key{e.epoch, seq}
		if e.stripeOf(seq) != s || h.has(k) {
			continue
		}
		if en := e.win[k]; en != nil {
			e.queueAll(now, classBurst, n, en)
		}
	}
}

// holding says what a subscribe to stripe s's new parent leaves out of its
// burst: the init segment if we hold it, and the stripe's chunks before the
// first one at or after the playhead that we do not hold (nothing before
// the playhead is of use any more).
func (e *Engine) holding(s int) held {
	if !e.hasEpoch || e.cfg.Root {
		return held{}
	}
	h := held{ok: true, init: e.init != nil, epoch: e.epoch}
	if !e.started {
		return h // from 0: the whole burst
	}
	seq := e.playhead
	for ; seq <= e.newest; seq++ {
		if _, ok := e.win[key{e.epoch, seq}]; !ok && e.stripeOf(seq) == s {
			break
		}
	}
	h.from = seq
	return h
}

// queueAll queues every piece of en for n.
func (e *Engine) queueAll(now time.Time, c sendClass, n *nbr, en *entry) {
	for _, m := range en.pieces() {
		e.send(now, c, en.k, n, m)
	}
}

func (e *Engine) countUp(n *nbr, b int) {
	n.bytesOut += uint64(b)
	n.periodOut += uint64(b)
	e.st.bytesUp += uint64(b)
}

// ---- input ----

// HandleMessage takes one data channel message that arrived from neighbour
// from over link l. The engine may keep msg and forward it to other links;
// the transport must not modify it afterwards. Messages from unknown
// neighbours or over a replaced link are ignored.
func (e *Engine) HandleMessage(from PeerID, l Link, msg []byte) {
	if len(msg) == 0 {
		return
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	if e.closed {
		return
	}
	now := e.cfg.Clock()
	n := e.nbrs[from]
	if n == nil || n.link != l {
		if msg[0] == msgSub && (n == nil) && len(e.subs) < 256 {
			if s, h, err := parseSub(msg, len(e.stripes)); err == nil {
				sub := e.subs[from]
				sub.add(s, h)
				e.subs[from] = sub
			}
		}
		e.ctr.Unknown++
		return
	}
	n.bytesIn += uint64(len(msg))
	n.periodIn += uint64(len(msg))
	if !n.in.take(now, len(msg), e.cfg.FloodFactor*e.rate, 10*e.rate+4*chunk.MaxMessageSize) {
		e.ctr.Flooded++
		// A flooding parent is reported (the tracker moves us away); a
		// child has no business sending much at all and is just dropped.
		if n.parentOf != 0 {
			e.reportLocked(now, protocol.Report{Kind: ReportFlood, Peer: n.id, Stripe: bits.TrailingZeros32(n.parentOf)}, n)
		}
		return
	}
	switch msg[0] {
	case msgPiece:
		e.onPiece(now, n, msg)
	case msgWant:
		e.onWant(now, n, msg)
	case msgNope:
		e.onNope(now, n, msg)
	case msgSub:
		if s, h, err := parseSub(msg, len(e.stripes)); err == nil {
			if n.childOf&(1<<s) != 0 {
				e.burst(n, s, h)
			} else {
				n.sub.add(s, h)
			}
		} else {
			e.ctr.Malformed++
		}
	case msgBad:
		e.onBad(now, n, msg)
	case msgHave:
		e.onHave(n, msg)
	case msgProof:
		e.onProof(n, msg)
	case msgRelay:
		if s, c, err := parseRelay(msg, len(e.stripes)); err == nil {
			e.onRelay(n, s, c)
		} else {
			e.ctr.Malformed++
		}
	case msgPing:
		if tok, err := parsePing(msg, msgPing); err == nil {
			_ = l.Send(appendPing(nil, msgPong, tok))
		} else {
			e.ctr.Malformed++
		}
	case msgPong:
		if tok, err := parsePing(msg, msgPong); err == nil {
			sent := time.Unix(0, int64(tok))
			if rtt := now.Sub(sent); rtt >= 0 && rtt < 30*time.Second {
				n.addRTT(rtt)
				if sent.After(n.answered) {
					n.answered = sent
				}
			}
		} else {
			e.ctr.Malformed++
		}
	default:
		e.ctr.Malformed++
	}
}

// accepts reports whether seq of epoch is inside the window a piece may
// belong to: not older than the window floor, not absurdly far ahead.
func (e *Engine) accepts(k key) bool {
	if !e.hasEpoch || k.epoch > e.epoch {
		return true // a new epoch; the reassembler bounds what it holds
	}
	if k.epoch < e.epoch || k.seq < e.floor {
		return false
	}
	if e.newest == 0 {
		// No media chunk of this epoch yet (a joiner holding at most the
		// init): the parents' catch-up burst may start anywhere. The
		// reassembler bounds what it holds.
		return true
	}
	return k.seq <= e.newest+uint64(e.cfg.MaxAhead)
}

// recent reports whether chunk k is close enough to the live edge that a
// parent sending it is still feeding us: at most twice the playout delay
// (in chunks, and never less than two rounds of the stripes) behind the
// newest verified chunk, or of a newer epoch.
func (e *Engine) recent(k key) bool {
	if !e.hasEpoch || k.epoch > e.epoch {
		return e.announced(k.epoch)
	}
	if k.epoch < e.epoch {
		return false
	}
	slack := uint64(max(2*int64(e.play.held()/max(e.avgDur, 10*time.Millisecond)), 2*int64(len(e.stripes))))
	return k.seq+slack >= e.newest
}

func (e *Engine) onPiece(now time.Time, n *nbr, msg []byte) {
	if e.cfg.Root {
		e.ctr.Unsolicited++
		return
	}
	p, err := chunk.ParsePiece(msg)
	if err != nil {
		e.ctr.Malformed++
		return
	}
	k := key{p.Epoch, p.Seq}
	s := e.stripeOf(p.Seq)
	feed := n.parentOf&(1<<s) != 0 || (p.Seq == 0 && n.parentOf != 0)
	if feed && e.ctr.FirstPieceAt.IsZero() {
		e.ctr.FirstPieceAt = now
	}
	pd := e.pend[k]
	repair := pd != nil && (pd.asked == n.id || slices.Contains(pd.tried, n.id))
	if !feed && !repair {
		if _, ok := e.win[k]; ok {
			// A repair answer that came after the chunk completed
			// elsewhere, or a former parent's last pieces: received
			// twice all the same (the sender's wasted upload).
			e.ctr.Duplicate++
			e.st.bytesDup += uint64(len(msg))
			return
		}
		e.ctr.Unsolicited++
		return
	}
	if feed && e.recent(k) && e.heldGenuine(k, p) {
		// A genuine duplicate of a recent chunk shows the parent is alive
		// and forwarding; other pieces count once their chunk verifies
		// (liveness.go): a parent that replays old chunks, sends junk, or
		// whose pieces trickle in seconds late is as good as silent.
		e.stripes[s].lastPiece = now
	}
	if !e.accepts(k) {
		e.ctr.Stale++
		return
	}
	if _, ok := e.win[k]; ok {
		e.ctr.Duplicate++
		e.st.bytesDup += uint64(len(msg))
		return
	}
	if pd != nil && pd.bad && !repair {
		e.ctr.Unsolicited++ // the feed already sent a forged version
		return
	}
	asm := e.asm
	if pd != nil && pd.asmDone {
		if pd.retry == nil {
			pd.retry = chunk.NewReassembler(chunk.ReassemblerConfig{MaxChunks: 1, DoneMemory: 1, Retain: true, Join: e.cfg.Join})
		}
		asm = pd.retry
	}
	sealed, fresh, err := asm.Add(p)
	if err != nil {
		switch {
		case errors.Is(err, chunk.ErrStale):
			e.ctr.Stale++
		default:
			// Pieces that do not fit together: someone lies. Start the
			// chunk over; repair fetches a consistent copy.
			e.ctr.Malformed++
			asm.Forget(k.epoch, k.seq)
			if pd != nil {
				pd.urgent = true
			}
		}
		return
	}
	if !fresh {
		e.ctr.Duplicate++
		e.st.bytesDup += uint64(len(msg))
		return
	}
	if pd == nil {
		pd = e.pendOf(k)
	}
	if pd.first.IsZero() {
		pd.first = now
	}
	pd.last = now
	pd.addSrc(n.id)
	if repair && (!feed || pd.asked == n.id) {
		pd.repaired = true
	}
	if repair && pd.asked == n.id {
		// It is answering: give it PeerTimeout from each piece, not from
		// the request, or a long answer is asked again elsewhere.
		pd.askUntil = now.Add(e.cfg.PeerTimeout)
	}
	if feed && !pd.feedLast.IsZero() {
		e.stripes[s].gap.add(now.Sub(pd.feedLast))
	}
	e.countIn(n, len(p.Data))
	if feed {
		pd.feed, pd.feedLast = true, now
		if p.Index >= pd.feedHi {
			pd.feedHi, pd.feedHiAt = p.Index+1, now
		}
		st := &e.stripes[s]
		if p.Seq > 0 && k.epoch == e.epoch && (!st.hasFeed || p.Seq > st.newestFeed) {
			st.newestFeed, st.hasFeed = p.Seq, true
		}
		if n.fedUpTo.less(k) {
			n.fedUpTo, n.fedAt = k, now
		}
	}
	if !pd.bad {
		e.forward(now, k, msg)
	}
	if sealed != nil {
		if asm == e.asm {
			pd.asmDone = true // its later pieces are duplicates to e.asm now
		}
		e.complete(now, k, sealed, pd, n.id)
	}
}

func (e *Engine) countIn(n *nbr, b int) {
	e.src.count(n, b)
	if n == nil {
		e.st.bytesOrigin += uint64(b)
		return
	}
	if n.link.Path() == PathTURN {
		e.st.bytesTURN += uint64(b)
	} else {
		e.st.bytesP2P += uint64(b)
	}
}

// forward queues msg, a piece of chunk k, for the children that carry it:
// the stripe's children, or every child for an init segment. The uplink
// scheduler sends it in its turn (sched.go).
func (e *Engine) forward(now time.Time, k key, msg []byte) {
	if k.seq == 0 {
		var seen uint32 // children are few; dedupe by stripe membership
		for s := range e.stripes {
			for _, c := range e.stripes[s].children {
				if c.childOf&seen == 0 && !c.cancelled(k) && !c.holds[s].has(k) {
					e.send(now, classFeed, k, c, msg)
				}
			}
			seen |= 1 << s
		}
		return
	}
	s := e.stripeOf(k.seq)
	for _, c := range e.stripes[s].children {
		if !c.cancelled(k) && !c.holds[s].has(k) {
			e.send(now, classFeed, k, c, msg)
		}
	}
}

// send queues a piece message for n in class c.
func (e *Engine) send(now time.Time, c sendClass, k key, n *nbr, msg []byte) {
	e.up.push(outMsg{class: c, k: k, rank: sendRank(n, e.stripeOf(k.seq)), idx: pieceIndex(msg), to: n, link: n.link, msg: msg, at: now})
}

// pump hands queued messages to the links, in the scheduler's order, while
// the links hold less than the budget (sched.go).
func (e *Engine) pump(now time.Time) {
	u := &e.up
	budget := u.budget()
	linkCap := u.linkCap()
	// What waits for the shared uplink: a link backed up by its own path
	// (a slow child) counts up to linkCap, or it would hold back the rest.
	// Drain counts every byte that left (a link above its cap drained
	// through the uplink all the same); only the budget is capped.
	in, drained := 0, 0
	for _, n := range e.nbrs {
		b := n.link.Buffered()
		if n.heldLink == n.link {
			drained += max(n.held-b, 0) // links that came or went do not count
		}
		in += min(b, linkCap)
	}
	u.observe(now, in, drained)
	var aside []outMsg
	for u.len() > 0 && in < budget {
		m := u.pop()
		if why := e.dropReason(now, &m); why != keepMsg {
			e.dropQueued(now, &m, why)
			continue
		}
		if b := m.link.Buffered(); b > linkCap {
			// This child's own path is the bottleneck: the others go on.
			aside = append(aside, m)
			continue
		}
		if err := m.link.Send(m.msg); err != nil {
			if errors.Is(err, ErrBackpressure) {
				e.dropQueued(now, &m, dropBackpressure)
			} else {
				e.ctr.SendErrors++ // closed: its transport tells us soon
				e.dropQueued(now, &m, dropGone)
			}
			continue
		}
		in += len(m.msg)
		if m.class != classRepair {
			rtt, ok := m.to.medianRTT()
			if !ok {
				rtt = budgetTime
			}
			m.to.sent.add(m.k, m.idx, now, m.link.Buffered(), u.rate, rtt)
		}
		e.countUp(m.to, len(m.msg))
	}
	for _, m := range aside {
		u.requeue(m)
	}
	u.inLinks = in
	for _, n := range e.nbrs {
		n.held, n.heldLink = n.link.Buffered(), n.link
	}
}

// Why a queued message is dropped instead of sent.
type dropWhy uint8

const (
	keepMsg          dropWhy = iota
	dropGone                 // the neighbour left, changed link or role
	dropHave                 // the child has the chunk (or gave up on it)
	dropLate                 // queued past its useful life
	dropBackpressure         // the link refused it
)

func (e *Engine) dropReason(now time.Time, m *outMsg) dropWhy {
	n := m.to
	if e.nbrs[n.id] != n || n.link != m.link {
		return dropGone
	}
	age := now.Sub(m.at)
	switch m.class {
	case classRepair:
		// The requester moves on after PeerTimeout without progress, and
		// tells us when it got the chunk elsewhere.
		if n.cancelled(m.k) {
			return dropHave
		}
		if age > 2*e.cfg.PeerTimeout {
			return dropLate
		}
		return keepMsg
	case classFeed:
		if m.k.seq != 0 && n.childOf&(1<<e.stripeOf(m.k.seq)) == 0 {
			return dropGone
		}
	}
	if n.cancelled(m.k) {
		return dropHave
	}
	if m.k.seq != 0 && age > e.play.held() {
		return dropLate
	}
	return keepMsg
}

// dropQueued drops a queued message. A child that misses a piece of a chunk
// misses the rest of it too (it repairs the whole chunk elsewhere); when
// its own link was the bottleneck it counts as slow.
func (e *Engine) dropQueued(now time.Time, m *outMsg, why dropWhy) {
	e.up.dropped[why] += uint64(len(m.msg))
	e.ctr.QueueDropped++
	if m.class == classRepair || why == dropGone || why == dropHave {
		return
	}
	c := m.to
	c.addCancel(m.k)
	if why == dropLate && c.link.Buffered() <= e.up.linkCap() {
		return // our uplink was the bottleneck, not the child
	}
	e.ctr.Skips++
	c.skips++
	c.skipsTotal++
	if c.skips >= e.cfg.SlowSkips {
		c.skips = 0
		s := e.stripeOf(m.k.seq)
		for i := range e.stripes {
			if c.childOf&(1<<i) != 0 {
				s = i
				break
			}
		}
		e.reportLocked(now, protocol.Report{Kind: protocol.ReportSlow, Peer: c.id, Stripe: s}, c)
	}
}

func (e *Engine) pendOf(k key) *pending {
	pd := e.pend[k]
	if pd == nil {
		pd = &pending{k: k}
		e.pend[k] = pd
	}
	return pd
}

// complete handles a reassembled (or fetched) chunk: verify, keep, play.
// src is the neighbour that sent the last piece (0 for the origin).
func (e *Engine) complete(now time.Time, k key, sealed []byte, pd *pending, src PeerID) {
	var (
		h      chunk.Header
		plain  []byte
		opened bool
		err    error
	)
	if e.wouldPlay(k) {
		h, plain, err = chunk.Open(e.cfg.PublicKey, e.cfg.Stream, e.cfg.Keys, sealed)
		opened = err == nil
		if errors.Is(err, chunk.ErrUnknownKey) || errors.Is(err, chunk.ErrDecrypt) {
			// Authentic but not decryptable yet (key rotation in flight):
			// keep it, delivery tries again.
			h, err = chunk.ParseHeader(sealed)
		}
	} else {
		h, err = e.cfg.Verify(sealed)
	}
	if err == nil && (h.Epoch != k.epoch || h.Seq != k.seq) {
		err = errs.Wrap("", chunk.ErrMalformed, ": chunk says epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10))
	}
	if err != nil {
		e.badChunk(now, pd, sealed, err)
		return
	}
	en := &entry{k: k, h: h, sealed: sealed, at: now, plain: plain, opened: opened}
	if e.ctr.FirstChunkAt.IsZero() {
		e.ctr.FirstChunkAt, e.ctr.FirstFromOrigin = now, src == originPeer
	}
	if pd.repaired {
		e.ctr.RepairedPeer++
	}
	e.sendHave(k, pd, src)
	e.sendProofs(k, sealed)
	e.creditVerified(now, k, pd)
	e.keep(now, en, pd)
}

// sendHave tells whoever may still be sending chunk k to stop: the
// stripe's parent when the last piece came from someone else (a repair,
// the origin) or the chunk was given up (src originPeer), and every
// neighbour asked to repair it but the one that completed it (a repair
// answer still queued behind its feed, or one that timed out and is still
// coming). Whatever of it they still have queued for us would be wasted
// upload.
func (e *Engine) sendHave(k key, pd *pending, src PeerID) {
	if e.cfg.Root {
		return
	}
	var told PeerID
	if k.seq != 0 {
		if p := e.stripes[e.stripeOf(k.seq)].parent; p != nil && p.id != src {
			_ = p.link.Send(appendRef(nil, msgHave, k))
			told = p.id
		}
	}
	if pd == nil {
		return
	}
	for _, id := range repairSources(pd) {
		if id == src || id == told {
			continue
		}
		if n := e.nbrs[id]; n != nil {
			_ = n.link.Send(appendRef(nil, msgHave, k))
		}
	}
}

// onHave: a neighbour needs no more of a chunk (it is our child, or asked
// us to repair it).
func (e *Engine) onHave(n *nbr, msg []byte) {
	k, err := parseRef(msg, msgHave)
	if err != nil {
		e.ctr.Malformed++
		return
	}
	n.addCancel(k)
}

func (e *Engine) wouldPlay(k key) bool {
	if e.cfg.Root || e.cfg.Player == nil || e.cfg.Keys == nil {
		return false
	}
	if e.hasEpoch && k.epoch < e.epoch {
		return false
	}
	if k.seq == 0 || !e.started || k.epoch > e.epoch {
		return true
	}
	return k.seq >= e.playhead
}

// badChunk drops a chunk that failed verification. It was already forwarded
// cut-through, so the children are told not to blame us; the sender is
// reported unless it told us first that it was fooled too.
func (e *Engine) badChunk(now time.Time, pd *pending, sealed []byte, cause error) {
	e.ctr.BadChunks++
	e.log.Warn("peer: chunk failed verification", "epoch", pd.k.epoch, "seq", pd.k.seq, "from", errs.List(pd.src), "err", cause)
	e.noticeChildren(pd)
	pd.bad, pd.urgent = true, true
	if pd.retry != nil {
		pd.retry = nil // a fresh one for the next attempt
	}
	if len(pd.src) == 1 && pd.src[0] != originPeer && pd.accused == 0 {
		culprit := pd.src[0]
		if !slices.Contains(pd.notices, culprit) {
			pd.accused = culprit
			r := protocol.Report{Kind: protocol.ReportBadChunk, Peer: culprit, Stripe: e.stripeOf(pd.k.seq), Chunk: sealed}
			e.delayed = append(e.delayed, delayedReport{k: pd.k, r: r, at: now.Add(e.cfg.BadGrace)})
		}
	}
	pd.src, pd.first, pd.feed = nil, time.Time{}, false
	if pd.asked != 0 {
		pd.tried = append(pd.tried, pd.asked)
		pd.asked = 0
	}
	// Repair at once, from someone else than whoever sent this.
	e.repairChunk(now, pd)
}

// noticeChildren tells children that got pieces of pd's chunk from us that
// it was forged upstream, and drops what of it is still queued for them.
func (e *Engine) noticeChildren(pd *pending) {
	msg := appendRef(nil, msgBad, pd.k)
	var seen uint32
	for s := range e.stripes {
		if pd.k.seq != 0 && s != e.stripeOf(pd.k.seq) {
			continue
		}
		for _, c := range e.stripes[s].children {
			if c.childOf&seen == 0 {
				c.addCancel(pd.k)
				_ = c.link.Send(msg)
			}
		}
		seen |= 1 << s
	}
}

func (e *Engine) onBad(now time.Time, n *nbr, msg []byte) {
	k, err := parseRef(msg, msgBad)
	if err != nil {
		e.ctr.Malformed++
		return
	}
	// Only a source of the chunk may say it was bad: a notice from anyone
	// else would let a child divert us from our parent.
	s := e.stripeOf(k.seq)
	source := n.parentOf&(1<<s) != 0 || (k.seq == 0 && n.parentOf != 0)
	if pd := e.pend[k]; pd != nil && (pd.asked == n.id || slices.Contains(pd.tried, n.id)) {
		source = true
	}
	if !source {
		e.ctr.Unsolicited++
		return
	}
	e.delayed = slices.DeleteFunc(e.delayed, func(d delayedReport) bool { return d.k == k && d.r.Peer == n.id })
	if _, ok := e.win[k]; ok || !e.accepts(k) {
		return // we hold a verified copy: the notice is moot
	}
	n.notices++
	e.ctr.Notices++
	pd := e.pendOf(k)
	if !slices.Contains(pd.notices, n.id) {
		pd.notices = append(pd.notices, n.id)
	}
	// It was fooled too; whoever fooled it is reported further up.
	e.delayed = slices.DeleteFunc(e.delayed, func(d delayedReport) bool { return d.k == k && d.r.Peer == n.id })
	if !pd.bad {
		// The pieces still coming from this sender are garbage: drop what
		// we have, pass the notice on, and repair from someone else.
		e.asm.Forget(k.epoch, k.seq)
		if slices.Contains(pd.src, n.id) {
			e.noticeChildren(pd)
		}
		pd.bad, pd.urgent = true, true
		pd.src, pd.first, pd.feed = nil, time.Time{}, false
		if pd.asked == n.id {
			pd.tried = append(pd.tried, n.id)
			pd.asked = 0
		}
		e.repairChunk(now, pd)
	}
}

// keep stores a verified chunk, updates what the stream looks like and plays
// what became playable.
func (e *Engine) keep(now time.Time, en *entry, pd *pending) {
	k, h := en.k, en.h
	if e.hasEpoch && k.epoch < e.epoch {
		delete(e.pend, k)
		return
	}
	if e.holdUnannounced(now, en) {
		return
	}
	if !e.hasEpoch || k.epoch > e.epoch {
		e.newEpoch(now, k.epoch)
	}
	if e.cfg.Intern != nil {
		en.sealed, en.msgs = e.cfg.Intern(h, en.sealed)
	}
	e.win[k] = en
	e.fifo = append(e.fifo, fifoEnt{k, now})
	// Drop any partial copy (the chunk may have come from the origin).
	e.asm.Forget(k.epoch, k.seq)
	delete(e.pend, k)
	if e.firstAt.IsZero() {
		e.firstAt = now
	}
	if h.IsInit() {
		e.init = en
	} else {
		if k.seq > e.newest || e.newestEnt == nil {
			e.newest, e.newestEnt = k.seq, en
		}
		if h.Flags&chunk.FlagKeyframe != 0 && k.seq > e.lastKey {
			e.lastKey = k.seq
		}
		if h.Flags&chunk.FlagEndOfStream != 0 {
			e.eos = k.seq
		}
		if h.Duration > 0 {
			d := time.Duration(h.Duration) * time.Microsecond
			e.avgDur = (7*e.avgDur + d) / 8
			e.rateBytes = e.rateBytes*7/8 + float64(len(en.sealed))/8
			e.rateSecs = e.rateSecs*7/8 + d.Seconds()/8
			e.rate = max(e.rateBytes/e.rateSecs, 64<<10)
		}
		if e.started && k.seq >= e.playhead {
			if due, ok := e.deadline(k.seq); ok {
				clean := pd != nil && pd.feed && !pd.repaired && len(pd.src) == 1
				e.play.arrived(now, due.Sub(now), clean)
			}
		}
		// A stripe's chunks come K chunk durations apart when live.
		burstGap := time.Duration(len(e.stripes)) * e.avgDur / 2
		if pd != nil && pd.feed && !pd.first.IsZero() {
			e.stripes[e.stripeOf(k.seq)].addBase(pd.first.Add(-time.Duration(h.MediaTime)*time.Microsecond), pd.first, burstGap)
		} else if e.cfg.Root {
			e.stripes[e.stripeOf(k.seq)].addBase(now.Add(-time.Duration(h.MediaTime)*time.Microsecond), now, burstGap)
		}
		e.moveFloor()
	}
	e.ctr.Verified++
	e.advance(now)
}

func (e *Engine) newEpoch(now time.Time, epoch uint32) {
	if e.hasEpoch {
		e.log.Info("peer: new epoch", "from", e.epoch, "to", epoch)
	}
	e.hasEpoch, e.epoch = true, epoch
	e.newest, e.lastKey, e.eos, e.floor = 0, 0, 0, 0
	e.init, e.newestEnt = nil, nil
	e.started, e.ended, e.playhead = false, false, 0
	e.firstAt = time.Time{}
	for i := range e.stripes {
		e.stripes[i].nbase = 0
		e.stripes[i].hasFeed = false
	}
	e.hasFallback = false
	e.clock.reset()
	for k := range e.pend {
		if k.epoch < epoch {
			delete(e.pend, k)
		}
	}
	e.asm.Expire(epoch, 0)
}

// windowChunks is how many chunks Window holds at the measured duration.
func (e *Engine) windowChunks() uint64 {
	n := int64(e.cfg.Window / max(e.avgDur, 10*time.Millisecond))
	return uint64(min(max(n, 16), 4096))
}

func (e *Engine) moveFloor() {
	w := e.windowChunks()
	if e.newest > w && e.newest-w > e.floor {
		e.floor = e.newest - w
		e.asm.Expire(e.epoch, e.floor)
	}
}

// ---- playout ----

// advance delivers every chunk that is next in line.
func (e *Engine) advance(now time.Time) {
	if e.cfg.Root || !e.hasEpoch || e.ended {
		return
	}
	if !e.started {
		if e.init == nil || e.lastKey == 0 {
			return
		}
		e.started = true
		e.playhead = e.lastKey
		e.ctr.StartedAt = now
		// The schedule starts with playback.
		e.clock.reset()
		e.followClock(now)
		e.log.Debug("peer: playback starts", "epoch", e.epoch, "seq", e.playhead, "newest", e.newest, "waited", now.Sub(e.created))
		if e.cfg.Player != nil {
			plain, ok := e.openEntry(e.init)
			if ok {
				epoch, p := e.epoch, e.cfg.Player
				e.queue(func() { p.Init(epoch, plain) })
			}
		}
	}
	for {
		k := key{e.epoch, e.playhead}
		en := e.win[k]
		if en == nil {
			if pd := e.pend[k]; pd != nil && pd.lost {
				e.playhead++
				continue
			}
			return
		}
		e.playhead++
		e.lastPlay = en.h
		e.ctr.Played++
		if e.cfg.Player != nil {
			plain, ok := e.openEntry(en)
			if ok {
				h, p := en.h, e.cfg.Player
				e.queue(func() { p.Chunk(h, plain) })
			} else {
				e.ctr.Undecryptable++
			}
		}
		en.plain = nil
		if en.h.Flags&chunk.FlagEndOfStream != 0 {
			e.ended = true
			return
		}
	}
}

// openEntry returns the payload of en for the player.
func (e *Engine) openEntry(en *entry) ([]byte, bool) {
	if e.cfg.Keys == nil {
		return nil, true
	}
	if en.opened {
		return en.plain, true
	}
	_, plain, err := chunk.Open(e.cfg.PublicKey, e.cfg.Stream, e.cfg.Keys, en.sealed)
	if err != nil {
		e.log.Warn("peer: cannot open chunk", "epoch", en.k.epoch, "seq", en.k.seq, "err", err)
		return nil, false
	}
	return plain, true
}

// ---- Publish (root) ----

// Publish injects a sealed chunk at the root: it is verified, kept for
// repairs and catch-up, and sent to the children of its stripe (an init
// segment to every child).
func (e *Engine) Publish(sealed []byte) error {
	h, err := e.cfg.Verify(sealed)
	if err != nil {
		return errs.Wrap("peer: publish: ", err, "")
	}
	e.mu.Lock()
	defer e.unlockAndFlush()
	if e.closed {
		return errors.New("peer: publish: engine closed")
	}
	k := key{h.Epoch, h.Seq}
	if e.hasEpoch && (k.epoch < e.epoch || (k.epoch == e.epoch && k.seq != 0 && k.seq <= e.newest && e.win[k] != nil)) {
		return errors.New("peer: publish epoch " + strconv.FormatUint(uint64(k.epoch), 10) + " seq " + strconv.FormatUint(k.seq, 10) + ": not after epoch " + strconv.FormatUint(uint64(e.epoch), 10) + " seq " + strconv.FormatUint(e.newest, 10))
	}
	now := e.cfg.Clock()
	en := &entry{k: k, h: h, sealed: sealed, at: now}
	e.keep(now, en, nil)
	for _, m := range en.pieces() {
		e.forward(now, k, m)
	}
	return nil
}

// tellRelay tells stripe s's parent how many viewers we feed in s,
// directly or through our children (downstream), so that it sends us each
// chunk before its children with smaller subtrees.
func (e *Engine) tellRelay(s int) {
	st := &e.stripes[s]
	if st.parent == nil || e.cfg.Root {
		return
	}
	_ = st.parent.link.Send(appendRelay(nil, s, downstream(st.children, s)))
}

// onRelay records how many viewers n feeds in stripe s and re-ranks what
// is queued for it. The count reaches our own parent with the next notice
// (at the latest the ping's repeat), not at once: during a re-parenting a
// stripe may briefly hold a cycle, and notices passed on at once would
// circle it.
func (e *Engine) onRelay(n *nbr, s, children int) {
	c := uint16(min(children, 1<<16-1))
	if n.relays[s] == c {
		return
	}
	n.relays[s] = c
	e.up.rerank(n, func(k key) bool { return e.stripeOf(k.seq) == s }, sendRank(n, s))
}
