package peer

import (
	"bytes"
	"slices"
	"time"

	"github.com/banyan-live/banyan/chunk"
)

// A parent is alive, for the silence check (checkSilent), only while it
// delivers: an unverified piece proves nothing, since anyone can label
// eight junk bytes with a chunk the child is waiting for (issue 18 #5).
// So liveness comes from verified progress only:
//
//   - a chunk that verifies with pieces from the stripe's parent among its
//     sources (creditVerified, at completion): every accepted piece of a
//     chunk that verifies is genuine, the parent's included;
//   - a duplicate piece of a chunk already verified whose bytes are that
//     chunk's (heldGenuine): a parent that is a little behind the repair
//     still feeds.
//
// Both count only for chunks near the live edge (Engine.recent), so old
// genuine chunks replayed do not count either.

// heldGenuine reports whether piece p of chunk k repeats bytes of a chunk
// already verified. No allocation: the piece's place in the sealed chunk
// follows from its size (every piece but the last has the common size).
func (e *Engine) heldGenuine(k key, p chunk.Piece) bool {
	en := e.win[k]
	if en == nil {
		return false
	}
	n, sealed := len(p.Data), en.sealed
	off := len(sealed) - n // the last piece
	if p.Index < p.Count-1 {
		off = int(p.Index) * n
	}
	return off >= 0 && off+n <= len(sealed) && bytes.Equal(sealed[off:off+n], p.Data)
}

// creditVerified marks the parents that sent pieces of chunk k, which just
// verified, as alive in the stripes k belongs to (every stripe for an init
// segment).
func (e *Engine) creditVerified(now time.Time, k key, pd *pending) {
	if pd == nil || len(pd.src) == 0 || !e.recent(k) {
		return
	}
	for s := range e.stripes {
		if k.seq != 0 && s != e.stripeOf(k.seq) {
			continue
		}
		st := &e.stripes[s]
		if p := st.parent; p != nil && slices.Contains(pd.src, p.id) {
			if !st.lastPiece.IsZero() && st.lastPiece.After(st.since) {
				st.credits.add(now.Sub(st.lastPiece))
			}
			st.lastPiece = now
		}
	}
}

// A parent killed or cut off stops delivering without a word, and its
// children used to wait SilentAfter (3 s) to report it: in a tree that is
// 3 s of every chunk below it going to repair or the origin. A quiet parent
// is asked instead: once it has been quiet for longer than its deliveries
// are ever apart (probeAfter) it is pinged, and pinged again after a wait
// (probeWait); if neither ping is answered it is reported silent at once.
// A parent that answers is alive but starved (its own parent failed, or
// its uplink is full): reporting it would move a child away from a parent
// that recovers, so it gets the full SilentAfter as before.

// Liveness probe bounds: a parent is never probed sooner than
// minProbeAfter (a chunk per stripe comes every K×250 ms, and a loaded
// parent sends a chunk's copies one after another), nor later than half of
// SilentAfter; a ping's answer is awaited for two round trips, at least
// minProbeWait (a busy event loop) and at most maxProbeWait, defProbeWait
// while no RTT is known.
const (
	minProbeAfter = 750 * time.Millisecond
	minProbeWait  = 200 * time.Millisecond
	maxProbeWait  = 750 * time.Millisecond
	defProbeWait  = 500 * time.Millisecond
)

// probeAfter is how long a parent may deliver nothing before it is probed:
// the learned gap between its verified deliveries (mean + 4 deviations),
// clamped to [minProbeAfter, silent/2]; silent/2 until learned.
func probeAfter(credits *delayStats, silent time.Duration) time.Duration {
	h, ok := credits.high()
	if !ok {
		return silent / 2
	}
	return min(max(h, minProbeAfter), max(silent/2, minProbeAfter))
}

// probeWait is how long a probe's ping is given to be answered.
func probeWait(rtt time.Duration, known bool) time.Duration {
	if !known {
		return defProbeWait
	}
	return min(max(2*rtt, minProbeWait), maxProbeWait)
}

// probe is one stripe's probe of its quiet parent.
type probe struct {
	start time.Time // first ping of this probe; zero while idle
	at    time.Time // last ping
	pings int
}

type probeAction int

const (
	probeIdle probeAction = iota // nothing to do
	probePing                    // send the parent a ping
	probeDead                    // report the parent silent
)

// step advances the probe at now, for a parent that last delivered at last,
// whose last answered ping was sent at answered.
func (p *probe) step(now, last, answered time.Time, after, wait time.Duration) probeAction {
	if now.Sub(last) < after {
		*p = probe{}
		return probeIdle
	}
	switch {
	case p.pings > 0 && !answered.Before(p.start):
		return probeIdle // alive: starved, not gone
	case p.pings == 0:
		p.start, p.at, p.pings = now, now, 1
		return probePing
	case now.Sub(p.at) < wait:
		return probeIdle
	case p.pings == 1:
		p.at, p.pings = now, 2
		return probePing
	}
	return probeDead
}
