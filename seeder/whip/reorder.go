package whip

import (
	"time"

	"github.com/pion/rtp"
)

// reorderSize is how many packets a track's reorder buffer holds: about
// 1.2 s of 8 Mbit/s video, far more than ReorderWait needs. A packet this
// far ahead of the next expected one flushes the buffer.
const reorderSize = 1024

// reorder puts one track's RTP packets back in sequence order. A packet is
// released as soon as everything before it has been; a gap is waited for
// (a NACKed retransmission may fill it) for at most wait, then declared
// lost. Duplicates and packets behind the release point are dropped. It is
// owned by the session goroutine.
type reorder struct {
	wait    time.Duration
	slots   [reorderSize]reorderSlot
	started bool
	next    uint64 // extended sequence number released next
	highest uint64 // highest extended sequence number seen
	count   int    // packets held
	// gapSince is when the gap at next was first seen (zero when the
	// release point is not blocked).
	gapSince time.Time

	lost, late uint64
}

type reorderSlot struct {
	ext uint64
	pkt *rtp.Packet
	at  time.Time
}

func newReorder(wait time.Duration) *reorder { return &reorder{wait: wait} }

// extend maps a 16-bit sequence number onto the 64-bit sequence of the
// stream, taking the nearer of the wraps around the highest seen so far.
func (r *reorder) extend(seq uint16) uint64 {
	if !r.started {
		r.started = true
		// Start one cycle up so that a slightly earlier packet still has
		// a representable number.
		r.highest = 1<<16 + uint64(seq)
		r.next = r.highest
		return r.highest
	}
	ext := uint64(int64(r.highest) + int64(int16(seq-uint16(r.highest))))
	if ext > r.highest {
		r.highest = ext
	}
	return ext
}

// push adds a packet that arrived at at; release gets, in order, every
// packet that can go now, with lost set when packets before it were
// given up.
func (r *reorder) push(p *rtp.Packet, at time.Time, release func(p *rtp.Packet, lost bool)) {
	ext := r.extend(p.SequenceNumber)
	switch {
	case ext < r.next:
		r.late++ // a duplicate, or a retransmission that came too late
		return
	case ext >= r.next+reorderSize:
		// Far ahead: what is held can never be completed in time.
		r.flush(release)
		r.lost += ext - r.next
		r.next = ext
		lostBefore := true
		r.store(ext, p, at)
		r.drain(at, func(p *rtp.Packet, lost bool) { release(p, lost || lostBefore); lostBefore = false })
		return
	}
	s := &r.slots[ext%reorderSize]
	if s.pkt != nil && s.ext == ext {
		r.late++ // duplicate of a held packet
		return
	}
	r.store(ext, p, at)
	r.drain(at, release)
}

func (r *reorder) store(ext uint64, p *rtp.Packet, at time.Time) {
	r.slots[ext%reorderSize] = reorderSlot{ext: ext, pkt: p, at: at}
	r.count++
}

// flush releases everything held, in order, each packet after a hole
// marked lost, and leaves the buffer empty with next just past the last
// packet released.
func (r *reorder) flush(release func(p *rtp.Packet, lost bool)) {
	for r.count > 0 {
		found := false
		for i := uint64(0); i < reorderSize; i++ {
			ext := r.next + i
			s := &r.slots[ext%reorderSize]
			if s.pkt == nil || s.ext != ext {
				continue
			}
			p := s.pkt
			*s = reorderSlot{}
			r.count--
			r.lost += i
			r.next = ext + 1
			release(p, i > 0)
			found = true
			break
		}
		if !found {
			break
		}
	}
	r.count = 0
	r.gapSince = time.Time{}
}

// tick releases what a gap older than wait was holding back.
func (r *reorder) tick(now time.Time, release func(p *rtp.Packet, lost bool)) {
	r.drain(now, release)
}

// deadline is when the current gap will be given up (zero: none).
func (r *reorder) deadline() time.Time {
	if r.gapSince.IsZero() {
		return time.Time{}
	}
	return r.gapSince.Add(r.wait)
}

func (r *reorder) drain(now time.Time, release func(p *rtp.Packet, lost bool)) {
	lostBefore := false
	for r.count > 0 {
		s := &r.slots[r.next%reorderSize]
		if s.pkt != nil && s.ext == r.next {
			p := s.pkt
			*s = reorderSlot{}
			r.count--
			r.next++
			r.gapSince = time.Time{}
			release(p, lostBefore)
			lostBefore = false
			continue
		}
		// Blocked by a gap at next.
		if r.gapSince.IsZero() {
			r.gapSince = r.oldestArrival()
		}
		if now.Sub(r.gapSince) < r.wait {
			return
		}
		// Give up on the gap: skip to the first held packet.
		for i := uint64(1); i < reorderSize; i++ {
			s := &r.slots[(r.next+i)%reorderSize]
			if s.pkt != nil && s.ext == r.next+i {
				r.lost += i
				r.next += i
				break
			}
		}
		r.gapSince = time.Time{}
		lostBefore = true
	}
	r.gapSince = time.Time{}
}

// oldestArrival is the arrival of the earliest held packet: the first
// moment the gap before it was known.
func (r *reorder) oldestArrival() time.Time {
	var t time.Time
	for i := uint64(1); i < reorderSize; i++ {
		s := &r.slots[(r.next+i)%reorderSize]
		if s.pkt != nil && s.ext == r.next+i && (t.IsZero() || s.at.Before(t)) {
			t = s.at
		}
	}
	return t
}
