package peer

import (
	"slices"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// key names a chunk.
type key struct {
	epoch uint32
	seq   uint64
}

func (a key) less(b key) bool {
	return a.epoch < b.epoch || (a.epoch == b.epoch && a.seq < b.seq)
}

// entry is a verified chunk in the window.
type entry struct {
	k      key
	h      chunk.Header
	sealed []byte
	at     time.Time
	// plain is the opened payload waiting for delivery; opened says Open
	// succeeded (plain may legitimately be empty).
	plain  []byte
	opened bool
	// msgs are the chunk's piece messages, encoded on first need (root
	// publishing, catch-up bursts, repair answers).
	msgs [][]byte
}

// pieces returns the encoded piece messages of the chunk.
func (en *entry) pieces() [][]byte {
	if en.msgs == nil {
		en.msgs, _ = PieceMessages(en.sealed) // cannot fail for a verified chunk
	}
	return en.msgs
}

// PieceMessages splits a sealed chunk into the piece messages engines send
// for it (Config.Intern callers build shared ones with it).
func PieceMessages(sealed []byte) ([][]byte, error) {
	ps, err := chunk.Split(sealed, chunk.MaxMessageSize)
	if err != nil {
		return nil, err
	}
	msgs := make([][]byte, len(ps))
	for i, p := range ps {
		msgs[i] = chunk.AppendPiece(make([]byte, 0, chunk.PieceHeaderSize+len(p.Data)), p)
	}
	return msgs, nil
}

// pending is a chunk that is not (yet) verified: being reassembled, known
// to be missing, or being repaired.
type pending struct {
	k     key
	first time.Time // first accepted piece; zero if none yet
	last  time.Time // last accepted piece
	// feedLast is the last piece from the stripe's parent (its gaps teach
	// the stripe's gap limit).
	feedLast time.Time
	// feedHi is one past the highest piece index the parent sent, at
	// feedHiAt (a hole below it is a loss: see gapped).
	feedHi   uint16
	feedHiAt time.Time
	// feed says a piece came from the stripe's parent (the arrival time is
	// then a live-edge sample).
	feed bool
	// repaired: some piece came in answer to a want.
	repaired bool
	src      []PeerID // distinct senders of accepted pieces

	asked    PeerID // outstanding want, 0 if none
	askUntil time.Time
	// askHi is one past the highest piece a want for only some missing
	// pieces asked for (lostPieces); 0 when it asked for all of them.
	askHi uint16
	// tried lists everyone asked (their answers are accepted); a repair
	// round skips tried[round:], and a new round starts PeerTimeout after
	// the last one ran out of parents (roundEnd).
	tried    []PeerID
	round    int
	roundEnd time.Time

	originBusy  bool
	originAfter time.Time // retry an origin failure no sooner than this
	// fetchAt is when a rescue's origin fetch left (timeFetch: a fetch of
	// a chunk the origin already holds, so its time is the origin's, not
	// a long poll's): originDone times it for originLead.
	fetchAt   time.Time
	timeFetch bool
	// wholeFetch: a range answer did not complete it; fetch it whole.
	wholeFetch bool
	lost       bool // its deadline passed

	// urgent: repair without waiting for RepairDelay.
	urgent bool
	// repairing: its repair started (counted once in RepairWhy).
	repairing bool
	// bad: a version that failed verification was seen; only repair
	// sources may send pieces now. asmDone says the main reassembler
	// holds the chunk as done, so repairs go through retry.
	bad     bool
	asmDone bool
	retry   *chunk.Reassembler
	// notices lists neighbours that told us the chunk was bad upstream.
	notices []PeerID
	// accused is the peer a bad-chunk report is pending against.
	accused PeerID
}

// delayedReport is a bad-chunk report waiting BadGrace for a notice from
// the accused that it was fooled too.
type delayedReport struct {
	k  key
	r  protocol.Report
	at time.Time
}

func (pd *pending) addSrc(id PeerID) {
	if !slices.Contains(pd.src, id) && len(pd.src) < 8 {
		pd.src = append(pd.src, id)
	}
}

// nbr is one neighbour and its link.
type nbr struct {
	id   PeerID
	link Link
	// Stripe bitmasks: where it is our parent and our child; sub is where
	// it asked to be fed (subscribe) before AddChild.
	parentOf, childOf uint32
	sub               subscription

	in    bucket // what it may send us
	serve bucket // what we serve it on request

	bytesIn, bytesOut   uint64
	periodIn, periodOut uint64
	skips               int // chunks skipped this SlowPeriod
	skipsTotal          uint64
	lastReport          map[string]time.Time
	rtt                 [8]time.Duration
	nrtt                int
	rttMed              time.Duration // median of rtt (medianRTT)
	// answered is when the last ping it answered was sent (the liveness
	// probe).
	answered              time.Time
	notices               int // bad notices received this SlowPeriod
	lastPieceFromParent   time.Time
	bytesFromParentPeriod uint64
	// fedUpTo is the newest chunk it fed us a piece of (as our parent in
	// any stripe), at fedAt: it sends older chunks first, so it is done
	// with every chunk before that one (see gapped).
	fedUpTo key
	fedAt   time.Time
	// held is what its link held after the last pump (heldLink), for the
	// uplink's drain rate.
	held     int
	heldLink Link
	// rank is its attachment order among the children; relays is how
	// many viewers it feeds in each stripe, directly or not, as it told
	// us (msgRelay, downstream).
	// Both order a chunk's copies (sendRank).
	rank   int
	relays [protocol.MaxStripes]uint16
	// cancel holds the chunks it told us it has (or gave up on) while it
	// is our child: their queued pieces are dropped.
	cancel  [16]key
	ncancel int
	// holds is what it said it holds of each stripe it subscribed to
	// (burst and forward leave it out); sent what we sent it lately.
	holds [protocol.MaxStripes]held
	sent  sentLog
}

// subscription is a neighbour's subscribe messages that wait for AddChild:
// the stripes and what it holds of each.
type subscription struct {
	mask uint32
	held [protocol.MaxStripes]held
}

func (s *subscription) add(stripe int, h held) {
	s.mask |= 1 << stripe
	s.held[stripe] = h
}

// take removes stripe's subscription and reports whether there was one.
func (s *subscription) take(stripe int) (held, bool) {
	if s.mask&(1<<stripe) == 0 {
		return held{}, false
	}
	s.mask &^= 1 << stripe
	return s.held[stripe], true
}

// cancelled reports whether n told us it needs no more of chunk k.
func (n *nbr) cancelled(k key) bool {
	for i := range min(n.ncancel, len(n.cancel)) {
		if n.cancel[i] == k {
			return true
		}
	}
	return false
}

// uncancel forgets a cancel of k: the neighbour asked for the chunk again.
func (n *nbr) uncancel(k key) {
	for i := range min(n.ncancel, len(n.cancel)) {
		if n.cancel[i] == k {
			n.cancel[i] = noKey
		}
	}
}

// noKey names no chunk (a cleared cancel).
var noKey = key{^uint32(0), ^uint64(0)}

func (n *nbr) addCancel(k key) {
	if !n.cancelled(k) {
		n.cancel[n.ncancel%len(n.cancel)] = k
		n.ncancel++
	}
}

func (n *nbr) roles() uint32 { return n.parentOf | n.childOf }

func (n *nbr) addRTT(d time.Duration) {
	n.rtt[n.nrtt%len(n.rtt)] = d
	n.nrtt++
	c := min(n.nrtt, len(n.rtt))
	s := n.rtt // a copy: the samples keep their ring order
	slices.Sort(s[:c])
	n.rttMed = s[c/2]
}

// medianRTT is the median of the last RTT samples (every piece sent reads
// it, so it is kept, not computed).
func (n *nbr) medianRTT() (time.Duration, bool) {
	return n.rttMed, n.nrtt > 0
}

// bucket is a token bucket over the engine clock.
type bucket struct {
	tokens float64
	last   time.Time
	primed bool
}

func (b *bucket) take(now time.Time, n int, rate, capacity float64) bool {
	if !b.primed {
		b.tokens, b.primed = capacity, true
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(capacity, b.tokens+rate*dt)
	}
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// stripe is this peer's view of one stripe tree.
type stripe struct {
	parent *nbr
	// originFed: the tracker said no parent has room (or the parent never
	// connected): fetch this stripe's chunks from the origin.
	originFed bool
	since     time.Time // when the current parent was set
	lastPiece time.Time // last piece from the parent
	// newestFeed is the highest sequence the parent sent in this epoch.
	newestFeed uint64
	hasFeed    bool
	children   []*nbr
	// base holds recent live-edge samples (arrival minus media time) of
	// chunks that came from the parent; liveBase turns them into the
	// stripe's live-edge estimate.
	base   [16]time.Time
	nbase  int
	baseAt time.Time // first-piece arrival of the last sample
	// gap learns the parent's gaps between pieces of one chunk.
	gap delayStats
	// credits learns the gaps between the parent's verified deliveries
	// (creditVerified), for when a quiet parent is probed.
	credits delayStats
	probe   probe
}

// addBase adds the live-edge sample t of a chunk whose first piece came at
// at. Chunks that come closer together than minGap are a catch-up burst
// (old chunks sent back to back, each looking late): only the burst's last
// one, the freshest, stays a sample.
func (s *stripe) addBase(t, at time.Time, minGap time.Duration) {
	if s.nbase > 0 && at.Sub(s.baseAt) < minGap {
		s.base[(s.nbase-1)%len(s.base)] = t
	} else {
		s.base[s.nbase%len(s.base)] = t
		s.nbase++
	}
	s.baseAt = at
}

func (s *stripe) liveBase() (time.Time, bool) {
	return liveBase(s.base[:min(s.nbase, len(s.base))])
}

type fifoEnt struct {
	k  key
	at time.Time
}
