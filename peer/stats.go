package peer

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// Counters are the engine's event counts since New, for tests, logs and
// metrics.
type Counters struct {
	Verified       uint64 // chunks verified and kept
	Played         uint64 // chunks delivered in order (to the Player, if any)
	Stalls         uint64 // chunks whose deadline passed without them
	BadChunks      uint64 // chunks that failed verification
	ProofsSent     uint64 // delivery statements signed for children (proof.go)
	Notices        uint64 // "forged upstream" notices received
	Reports        uint64 // reports sent to the tracker
	Skips          uint64 // chunks skipped for a child over its high-water mark
	SendErrors     uint64 // sends that failed for another reason
	BurstCut       uint64 // catch-up bursts cut short by backpressure
	Duplicate      uint64 // pieces already held
	Stale          uint64 // pieces outside the window
	Unsolicited    uint64 // pieces from a neighbour that is not their source
	Unknown        uint64 // messages from unknown neighbours or stale links
	Malformed      uint64 // messages that did not parse or fit together
	Flooded        uint64 // messages dropped over a neighbour's rate budget
	WantsSent      uint64
	WantTimeouts   uint64
	Nopes          uint64 // "do not have it" answers received
	WantsServed    uint64
	WantsRefused   uint64 // over a neighbour's serving budget
	RepairedPeer   uint64 // chunks completed from another parent
	RepairedOrigin uint64 // chunks fetched from the origin
	OriginFetches  uint64
	OriginErrors   uint64
	OriginStarts   uint64 // starts from the origin's live edge
	// OriginWhy counts origin requests by cause: start, origin-fed
	// stripe, deadline near (OriginLead), no parent left to ask.
	OriginWhy [4]uint64
	// RepairWhy counts chunks whose repair started, by cause: late, a
	// gap in its pieces, skipped by the parent, other (no parent, forged),
	// a hole below a later piece.
	RepairWhy [5]uint64
	// MissWhy counts chunks that missed their deadline by where their
	// repair stood: an origin fetch in flight, an origin fetch that
	// failed, never sent to the origin with some pieces, with none.
	MissWhy       [4]uint64
	Undecryptable uint64 // authentic chunks the keyring could not open
	QueueDropped  uint64 // queued messages dropped unsent (child has it, too late, gone)
	// StartedAt is when playback started (zero until it does).
	StartedAt time.Time
	// The first steps of a join, for the browser viewer's join timeline
	// (zero until they happen): the first piece from a parent, the first
	// request for the origin's live edge before playback started, the
	// first verified chunk and whether the origin sent it.
	FirstPieceAt, OriginLiveAt, FirstChunkAt time.Time
	FirstFromOrigin                          bool
}

type statsState struct {
	bytesP2P, bytesTURN, bytesOrigin, bytesUp uint64
	bytesDup                                  uint64 // pieces received twice
	stalledMS                                 int64
	last                                      time.Time
	lastUp                                    uint64
}

// Counters returns a snapshot of the event counts.
func (e *Engine) Counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctr
}

// Traffic is what an engine has moved since New, in bytes, and how long
// its playback has stalled.
type Traffic struct {
	P2P, TURN, Origin uint64 // received by path: WebRTC direct (any sender, the seeder too), WebRTC over TURN, HTTP origin; Sources splits by sender
	Up                uint64 // sent to children and repair requesters
	StalledMS         int64
	// Dup is received bytes that were already held (wasted upload of
	// whoever sent them); Unsent is bytes this engine queued for its
	// children or requesters and dropped unsent (they had the chunk, it
	// was too late, they left).
	Dup, Unsent uint64
	// UnsentWhy splits Unsent: gone, have, late, backpressure (dropWhy).
	UnsentWhy [4]uint64
}

// Traffic returns the running totals. Unlike Stats it has no side effect,
// so anyone besides the tracker report (benchmarks, summaries) reads this.
func (e *Engine) Traffic() Traffic {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Traffic{P2P: e.st.bytesP2P, TURN: e.st.bytesTURN, Origin: e.st.bytesOrigin, Up: e.st.bytesUp, StalledMS: e.st.stalledMS,
		Dup: e.st.bytesDup, Unsent: e.up.unsent(), UnsentWhy: [4]uint64(e.up.dropped[1:])}
}

// Stats returns the periodic report for the tracker. Rates (upload, parent
// kbps) are measured since the previous call, so call it once per period.
func (e *Engine) Stats() protocol.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Clock()
	dt := now.Sub(e.st.last).Seconds()
	kbps := func(b uint64) int {
		if dt <= 0 {
			return 0
		}
		return int(float64(b) * 8 / 1000 / dt)
	}
	// The uplink as measured, under the operator's ceiling
	// (Config.MaxUplinkKbps).
	uplink, busy := int(e.up.rate*8/1000), e.up.measured(now)
	if c := e.cfg.MaxUplinkKbps; c > 0 && uplink >= c {
		uplink, busy = c, true
	}
	s := protocol.Stats{
		BytesP2P:    e.st.bytesP2P,
		BytesTURN:   e.st.bytesTURN,
		BytesOrigin: e.st.bytesOrigin,
		BytesSeeder: e.src.seeder,
		BytesEdge:   e.src.edges,
		BytesUp:     e.st.bytesUp,
		UploadKbps:  kbps(e.st.bytesUp - e.st.lastUp),
		UplinkKbps:  uplink,
		UplinkBusy:  busy,
		PlayoutMS:   int(e.play.target.Milliseconds()),
		StreamKbps:  e.streamKbps(),
		DupBytes:    e.st.bytesDup,
		Stalls:      int(e.ctr.Stalls),
		StalledMS:   int(e.st.stalledMS),
		Epoch:       e.epoch,
		LastSeq:     e.newest,
	}
	e.st.lastUp = e.st.bytesUp
	e.st.last = now
	// Buffer: media time delivered beyond the current playback position
	// (the playout clock).
	if e.started && e.lastPlay.Seq > 0 {
		if due, ok := e.deadline(e.lastPlay.Seq); ok {
			due = due.Add(time.Duration(e.lastPlay.Duration) * time.Microsecond)
			s.BufferMS = max(0, int(due.Sub(now).Milliseconds()))
		}
		// Behind live: the newest chunk's end minus the playback
		// position, that is the buffer plus what is held but not played.
		s.BehindLiveMS = s.BufferMS
		if en := e.newestEnt; en != nil && en.h.MediaTime+uint64(en.h.Duration) > e.lastPlay.MediaTime+uint64(e.lastPlay.Duration) {
			s.BehindLiveMS += int((en.h.MediaTime + uint64(en.h.Duration) - e.lastPlay.MediaTime - uint64(e.lastPlay.Duration)) / 1000)
		}
	}
	var rtts []time.Duration
	for i := range e.stripes {
		p := e.stripes[i].parent
		if p == nil {
			continue
		}
		path := p.link.Path()
		if p.bytesIn == 0 {
			path = "connecting"
		}
		s.Parents = append(s.Parents, protocol.ParentHealth{Stripe: i, Parent: p.id, Kbps: kbps(p.periodIn), Path: path})
		if r, ok := p.medianRTT(); ok {
			rtts = append(rtts, r/2)
		}
	}
	for _, n := range e.nbrs {
		if n.childOf != 0 {
			s.Children++
		}
	}
	for _, n := range e.nbrs {
		n.periodIn, n.periodOut = 0, 0
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		s.HopLatencyMS = int(rtts[len(rtts)/2].Milliseconds())
	}
	return s
}

// streamKbps is the measured stream bitrate (0 before the first chunk).
func (e *Engine) streamKbps() int {
	if e.newestEnt == nil {
		return 0
	}
	return int(e.rate * 8 / 1000)
}

// ChildStats is what a parent sees of one child.
type ChildStats struct {
	Peer     PeerID
	Stripes  uint32 // bitmask of stripes it is our child in
	BytesUp  uint64 // sent to it since it attached
	Skips    uint64 // chunks skipped for it (backpressure)
	Buffered int    // bytes queued on its link now
}

// Children lists the current children, by peer id.
func (e *Engine) Children() []ChildStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ChildStats
	for _, n := range e.nbrs {
		if n.childOf != 0 {
			out = append(out, ChildStats{Peer: n.id, Stripes: n.childOf, BytesUp: n.bytesOut, Skips: n.skipsTotal, Buffered: n.link.Buffered()})
		}
	}
	slices.SortFunc(out, func(a, b ChildStats) int { return cmpID(a.Peer, b.Peer) })
	return out
}

func cmpID(a, b PeerID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// VerifyCache verifies chunks once for many engines in one process: a
// simulation of thousands of peers would otherwise spend most of its time
// checking the same signatures. It remembers the SHA-256 of chunks that
// verified, so it is as strong as verifying each copy. Use it as
// Config.Verify; it is safe for concurrent use.
type VerifyCache struct {
	verify func([]byte) (chunk.Header, error)
	mu     sync.Mutex
	ok     map[[32]byte]chunk.Header
	ring   [][32]byte
	next   int
}

// NewVerifyCache remembers up to size verified chunks of stream.
func NewVerifyCache(pub []byte, stream string, size int) *VerifyCache {
	size = max(size, 1)
	return &VerifyCache{
		verify: func(b []byte) (chunk.Header, error) { return chunk.Verify(pub, stream, b) },
		ok:     make(map[[32]byte]chunk.Header, size),
		ring:   make([][32]byte, size),
	}
}

// Verify is a drop-in for chunk.Verify.
func (c *VerifyCache) Verify(sealed []byte) (chunk.Header, error) {
	sum := sha256.Sum256(sealed)
	c.mu.Lock()
	h, ok := c.ok[sum]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	h, err := c.verify(sealed)
	if err != nil {
		return h, err
	}
	c.mu.Lock()
	if _, dup := c.ok[sum]; !dup {
		delete(c.ok, c.ring[c.next])
		c.ring[c.next] = sum
		c.next = (c.next + 1) % len(c.ring)
		c.ok[sum] = h
	}
	c.mu.Unlock()
	return h, nil
}

// PlayoutBase is the playout clock once playing: media time mt plays at
// base + mt. A benchmark compares it with the broadcaster's clock to say
// how far behind live the viewer watches.
func (e *Engine) PlayoutBase() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock.base, e.started && e.clock.set
}
