package peer

import (
	"encoding/binary"
	"time"

	"github.com/banyan-live/banyan/chunk"
)

// The uplink scheduler: what a peer sends, in which order, and how fast.
//
// A home uplink is the scarce resource of the mesh. Handing every piece to
// the links the moment it is ready fills their buffers (a WebRTC data
// channel takes megabytes) and turns the uplink into one long FIFO: a child
// sees its pieces interleaved with every other child's, a repair answer
// queues behind seconds of feed, and bytes that nobody will use any more
// (a chunk the child already repaired, a chunk past its deadline) still go
// out. So the engine keeps its own queue and hands the links only what the
// uplink drains in a short time (the budget); everything else waits where
// it can still be reordered or dropped:
//
//   - feed (and pieces a child lost on the way and asks for again), then
//     catch-up bursts, then repair answers (repair is served from spare
//     upload only);
//   - within a class, older chunks first (they are closer to their
//     deadlines), then children in rank order (those that forward the
//     stripe first, most viewers below first, as each tells us with a relay
//     notice; then attachment order: sendRank), then pieces in index
//     order (whatever order they arrived in): a chunk goes to one child
//     after the other instead of piece-interleaved, which halves the mean
//     completion time and lets the relaying children forward sooner;
//   - a queued piece is dropped when its child (or a neighbour whose
//     repair request it answers) said it has the chunk (a "have" notice),
//     when it waited past its useful life, or when the child is gone;
//   - what a child holds is never sent to it: a subscribe says what it
//     holds (held), and a child asking again for pieces gets only those
//     neither queued nor on their way to it (sentLog).
//
// The budget follows the measured drain rate of the links (bytes that left
// them per second while they were never empty), so the engine also knows
// its uplink's capacity: Stats reports it and the tracker sizes the peer's
// child slots from it.

// sendClass orders the scheduler's queue: lower first.
type sendClass uint8

const (
	classFeed   sendClass = iota // live pieces to children (and the init segment)
	classBurst                   // a new child's catch-up
	classRepair                  // answers to wants
)

// outMsg is one queued message.
type outMsg struct {
	class sendClass
	k     key
	rank  int    // the child's rank (feed, burst): lower first
	idx   uint16 // piece index: a child's pieces go in order
	to    *nbr
	link  Link // the link it was queued for; a replaced link drops it
	msg   []byte
	at    time.Time // enqueued
	ord   uint64    // enqueue order: ties keep it
}

// before is the scheduler's order.
func (a *outMsg) before(b *outMsg) bool {
	if a.class != b.class {
		return a.class < b.class
	}
	if a.k != b.k {
		return a.k.less(b.k)
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	if a.idx != b.idx {
		// Pieces reordered on the way in must not stay reordered: a
		// child takes a hole below a later piece for a loss.
		return a.idx < b.idx
	}
	return a.ord < b.ord
}

// outHeap is a binary min-heap of messages by before. Values, not
// pointers: a simulation queues millions of them.
type outHeap []outMsg

func (h *outHeap) push(m outMsg) {
	*h = append(*h, m)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(&q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *outHeap) pop() outMsg {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = outMsg{}
	*h = q[:last]
	h.down(0)
	return top
}

// down restores the heap below i.
func (h *outHeap) down(i int) {
	q := *h
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].before(&q[m]) {
			m = l
		}
		if r < len(q) && q[r].before(&q[m]) {
			m = r
		}
		if m == i {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// fix restores the heap after ranks changed anywhere in it.
func (h *outHeap) fix() {
	for i := len(*h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// pieceIndex is the index of a piece message (chunk.AppendPiece's layout).
func pieceIndex(msg []byte) uint16 {
	if len(msg) < chunk.PieceHeaderSize || msg[0] != msgPiece {
		return 0
	}
	return binary.BigEndian.Uint16(msg[14:])
}

// Scheduler limits. The budget is how long the links' buffers may take to
// drain at the measured rate: long enough that the uplink does not idle
// between two pumps (the engine pumps on every message and every Tick),
// short enough that what is in the links is still worth sending.
const (
	budgetTime = 100 * time.Millisecond
	// minBudget holds a few pieces whatever the rate.
	minBudget = 64 << 10
	// minLinkCap is the least one link may hold: two pieces.
	minLinkCap = 32 << 10
	// maxBudget stays well under a data channel's high-water mark.
	maxBudget = 768 << 10
	// rateWindow is how long one rate sample takes.
	rateWindow = 500 * time.Millisecond
	// rateBuckets one-second buckets hold the samples' maxima.
	rateBuckets = 10
	// backlogFloor is the least the links must hold at a pump for the
	// uplink to count as backed up: a whole piece. Less is a have notice
	// or a ping written just before the pump, or a piece's tail, which a
	// hidden tab (that pumps only as pieces arrive) shows at every pump
	// though its links drain in a few milliseconds.
	backlogFloor = chunk.MaxMessageSize
)

type rateBucket struct {
	sec int64 // Unix second
	max float64
}

// sample records a rate sample (bytes/s) at now and recomputes rate.
func (u *uplink) sample(now time.Time, r float64) {
	sec := now.Unix()
	b := &u.buckets[sec%rateBuckets]
	if b.sec != sec {
		*b = rateBucket{sec: sec}
	}
	b.max = max(b.max, r)
	u.rate = 0
	for _, b := range u.buckets {
		if sec-b.sec < rateBuckets {
			u.rate = max(u.rate, b.max)
		}
	}
}

// uplink is the scheduler's state: the queue and the drain-rate estimate.
type uplink struct {
	q      outHeap
	queued int // bytes in q
	ord    uint64

	// Drain-rate measurement: inLinks is what the links held after the
	// previous pump; winBytes/winTime accumulate drain over one sample
	// window (see observe).
	inLinks  int
	lastPump time.Time
	winBytes int
	winTime  time.Duration
	winBusy  bool // the links never ran empty in this window
	// busyBytes/busyTime: drain over the intervals that began with bytes
	// in the links, the part of the window the uplink had work.
	busyBytes int
	busyTime  time.Duration
	// rate is the uplink's estimated capacity in bytes/s (0 until
	// measured): the largest sample of the last rateBuckets seconds, as
	// BBR keeps a windowed maximum of delivery rate. A sample taken while
	// only a slow child's link was backed up reads low; the maximum
	// ignores it, and an uplink that got slower shows after the window.
	rate    float64
	buckets [rateBuckets]rateBucket
	// busyAt is the last sample from a backed-up uplink: within the
	// window, rate is a measurement; otherwise only a lower bound.
	busyAt time.Time
	// waste counts bytes dropped from the queue (never sent).
	// dropped counts bytes dropped from the queue unsent, by dropWhy.
	dropped [5]uint64
}

func (u *uplink) len() int { return len(u.q) }

func (u *uplink) unsent() (n uint64) {
	for _, b := range u.dropped {
		n += b
	}
	return n
}

func (u *uplink) push(m outMsg) {
	u.ord++
	m.ord = u.ord
	u.requeue(m)
}

// requeue puts back a message that was popped, keeping its place.
func (u *uplink) requeue(m outMsg) {
	u.queued += len(m.msg)
	u.q.push(m)
}

// has reports whether a child whose subscribe said h holds chunk k, so the
// catch-up burst leaves it out: the init segment of its epoch if it said
// so, and the chunks of its epoch before from.
func (h held) has(k key) bool {
	if !h.ok || k.epoch != h.epoch {
		return false
	}
	if k.seq == 0 {
		return h.init
	}
	return k.seq < h.from
}

// downstream is how many viewers a peer whose stripe-s children are
// children feeds there, directly or through them: each child and what its
// relay notice says it feeds. A parent ranks its copies by it (sendRank):
// a copy's delay is the delay of every viewer below it, and at 10k viewers
// the children of a tree's top peers feed anywhere from a handful to
// hundreds, which the count of their own children did not tell apart.
func downstream(children []*nbr, s int) int {
	n := 0
	for _, c := range children {
		n += 1 + int(c.relays[s])
	}
	return n
}

// sendRank orders n's copy of a stripe-s chunk among its siblings' copies:
// children that forward the stripe first, those feeding more viewers
// (downstream) before those feeding fewer (a relay's copy is the first hop
// of every copy below it), then attachment order.
func sendRank(n *nbr, s int) int {
	return (1<<16-1-int(n.relays[s]))<<32 | n.rank
}

// sentLog remembers the last pieces handed to one neighbour's link, and
// when they should have arrived: a child that asks again for a piece still
// on its way (it took a late, out-of-order forward for a loss) is not sent
// it twice.
type sentLog struct {
	ents [32]sentPiece
	n    int
}

type sentPiece struct {
	k   key
	idx uint16
	due int64 // Unix nanoseconds by which it should have arrived
}

// add records piece idx of k, handed to the link at now behind ahead
// bytes, at the uplink's rate (bytes/s, 0: unknown) and rtt.
func (l *sentLog) add(k key, idx uint16, now time.Time, ahead int, rate float64, rtt time.Duration) {
	drain := budgetTime
	if rate > 0 {
		drain = time.Duration(float64(ahead) / rate * float64(time.Second))
	}
	l.ents[l.n%len(l.ents)] = sentPiece{k: k, idx: idx, due: now.Add(drain + rtt).UnixNano()}
	l.n++
}

// onTheWay reports whether piece idx of k was handed to the link and may
// not have arrived yet: a request for it crossed it.
func (l *sentLog) onTheWay(k key, idx uint16, now time.Time) bool {
	t := now.UnixNano()
	for i := range min(l.n, len(l.ents)) {
		if e := &l.ents[i]; e.k == k && e.idx == idx && e.due > t {
			return true
		}
	}
	return false
}

// queuedPieces marks which of chunk k's n pieces wait in the queue for to,
// as feed or burst: a child asking for pieces again gets those in their
// turn, not twice.
func (u *uplink) queuedPieces(to *nbr, k key, n int) []bool {
	q := make([]bool, n)
	for i := range u.q {
		if m := &u.q[i]; m.to == to && m.k == k && m.class != classRepair && int(m.idx) < n {
			q[m.idx] = true
		}
	}
	return q
}

// rerank gives the queued messages for to whose chunk match accepts a new
// rank: all of them at once, so its own pieces never overtake each other.
func (u *uplink) rerank(to *nbr, match func(key) bool, rank int) {
	changed := false
	for i := range u.q {
		if m := &u.q[i]; m.to == to && match(m.k) && m.rank != rank {
			m.rank, changed = rank, true
		}
	}
	if changed {
		u.q.fix()
	}
}

func (u *uplink) pop() outMsg {
	m := u.q.pop()
	u.queued -= len(m.msg)
	return m
}

// linkCap is how many bytes one link may hold: half the budget, so one
// child whose own path is slow cannot take the whole uplink's turn.
func (u *uplink) linkCap() int { return max(u.budget()/2, minLinkCap) }

// budget is how many bytes the links may hold.
func (u *uplink) budget() int {
	b := int(u.rate * budgetTime.Seconds())
	return min(max(b, minBudget), maxBudget)
}

// observe updates the drain-rate estimate at a pump: the links held
// u.inLinks bytes after the previous pump, hold inLinks now, and drained
// bytes left them meanwhile (counted per link, so a link that closed with
// bytes in it does not read as drained).
//
// Links report a message as buffered until all of it has left, so drain
// comes in whole messages: over a short interval it reads far above or
// below the rate. Samples are therefore taken over rateWindow, less one
// message (the one whose sending began before the window), which errs low.
// A window in which the links never ran empty measures the uplink; any
// other is a lower bound (what went out is at most what it carries): the
// drain over the intervals between pumps that began with bytes in the
// links, which errs low by the part of each such interval after the links
// ran dry. The window's average alone read a 77 Mbit/s uplink feeding two
// children as 1.3 Mbit/s, and its slots never grew (a peer's slots grow
// from measurements, or by one a report while all are used).
func (u *uplink) observe(now time.Time, inLinks, drained int) {
	if u.lastPump.IsZero() {
		u.lastPump = now
		return
	}
	dt := now.Sub(u.lastPump)
	u.lastPump = now
	if dt <= 0 {
		return
	}
	if u.winTime == 0 {
		u.winBusy = u.inLinks >= backlogFloor
	}
	u.winBytes += drained
	u.winTime += dt
	u.winBusy = u.winBusy && inLinks >= backlogFloor
	if u.inLinks > 0 {
		u.busyBytes += drained
		u.busyTime += dt
	}
	if u.winTime < rateWindow {
		return
	}
	if b := u.winBytes - chunk.MaxMessageSize; b > 0 {
		r := float64(b) / u.winTime.Seconds()
		if bb := u.busyBytes - chunk.MaxMessageSize; bb > 0 && u.busyTime > 0 {
			// What left while there was work: a bound far closer to the
			// uplink than the window's average when it idles between
			// chunks.
			r = max(r, float64(bb)/u.busyTime.Seconds())
		}
		u.sample(now, r)
		if u.winBusy {
			u.busyAt = now
		}
	}
	u.winBytes, u.winTime, u.busyBytes, u.busyTime = 0, 0, 0, 0
}

// measured says rate comes from a backed-up uplink within the window, not
// only from lower bounds.
func (u *uplink) measured(now time.Time) bool {
	return !u.busyAt.IsZero() && now.Sub(u.busyAt) < rateBuckets*time.Second
}

// backlog is how long the queue takes to drain at the measured rate (0
// when the rate is unknown).
func (u *uplink) backlog() time.Duration {
	if u.rate <= 0 {
		return 0
	}
	return time.Duration(float64(u.queued+u.inLinks) / u.rate * float64(time.Second))
}
