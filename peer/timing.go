package peer

import (
	"slices"
	"time"
)

// Timing policies: when a chunk is expected, when a partly received chunk
// has lost a piece, and how long playback waits for a late chunk. Each
// learns from what the peer measures, because the right values depend on
// things no default knows: how deep the peer sits, how loaded its parents'
// uplinks are, K and the bitrate.

// liveBase is a stripe's live-edge estimate from recent samples of
// (arrival of a chunk's first piece − its media time): their 90th
// percentile, as a jitter buffer sizes itself from a high percentile of
// recent delays. The minimum would treat ordinary queueing at a loaded
// parent as lateness and start repairs that load the mesh further.
func liveBase(samples []time.Time) (time.Time, bool) {
	n := len(samples)
	if n == 0 {
		return time.Time{}, false
	}
	// An insertion sort: a stripe keeps at most 16 samples, and
	// slices.SortFunc's instantiation for time.Time was 21 KB of the
	// browser's wasm (docs/wasm-size.md).
	s := slices.Clone(samples)
	for i := 1; i < n; i++ {
		for j := i; j > 0 && s[j].Before(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[(9*n+9)/10-1], true
}

// delayStats tracks a delay as TCP's RTT estimator does (EWMA of mean and
// mean deviation): the gaps between consecutive feed pieces of one chunk
// (a piece is taken for lost when the gap exceeds mean + 4 deviations,
// never sooner than the configured floor), and how long origin fetches
// take (originLead).
type delayStats struct {
	mean, dev time.Duration
	n         int
}

func (g *delayStats) add(d time.Duration) {
	if g.n == 0 {
		g.mean, g.dev = d, d/2
	} else {
		diff := d - g.mean
		if diff < 0 {
			diff = -diff
		}
		g.dev += (diff - g.dev) / 4
		g.mean += (d - g.mean) / 8
	}
	g.n++
}

// maxGap bounds the learned gap: a parent that pauses longer than this
// mid-chunk has lost the piece or stalled, whatever its history.
const maxGap = time.Second

// high is mean + 4 deviations, once there are enough samples.
func (g *delayStats) high() (time.Duration, bool) {
	if g.n < 4 {
		return 0, false
	}
	return g.mean + 4*g.dev, true
}

func (g *delayStats) limit(floor time.Duration) time.Duration {
	if h, ok := g.high(); ok {
		return min(max(floor, h), maxGap)
	}
	return floor
}

// Origin lead bounds: an origin (or CDN) answer is never counted on in less
// than minOriginLead, and one slower than maxOriginLead is no fallback
// worth waiting for; originSlack covers verifying and handing the chunk on.
const (
	minOriginLead = 100 * time.Millisecond
	maxOriginLead = 1500 * time.Millisecond
	originSlack   = 50 * time.Millisecond
)

// originLead is how long before its deadline a chunk the peers have not
// delivered is asked of the origin: long enough for the origin's answer,
// as measured on this peer's rescues (the configured lead until four were
// timed). A fixed lead either gives up on the mesh too early (a close CDN
// answers in 80 ms, and chunks still arriving from a parent were fetched
// twice) or too late (a distant one takes 600 ms).
func originLead(fetches *delayStats, def time.Duration) time.Duration {
	h, ok := fetches.high()
	if !ok {
		return def
	}
	return min(max(h+originSlack, minOriginLead), maxOriginLead)
}

// playout is the adaptive playout delay: how long after its expected
// arrival a chunk may still come before playback gives up on it. It starts
// at the floor, grows when chunks miss their deadline or come close to it,
// and shrinks slowly after a calm period, between floor and ceiling.
//
// The floor's margin pays for repairs: a lost piece takes a gap to notice,
// a round trip to a neighbour and perhaps the origin. A quiet path, whose
// parents delivered quietChunks chunks in a row whole, unrepaired and well
// before their deadlines, has needed none of it, so the target may go below
// the floor there, quietStep at a time down to low (glass-to-glass latency,
// issue 22: at depth 1 the floor was half of it). Any trouble ends the run;
// a chunk that needed a repair puts the target back at the floor at once
// (the playout clock follows by slowing down, as for any growth), and near
// misses and stalls grow it as usual.
type playout struct {
	target, floor, ceil time.Duration
	low                 time.Duration // the target's floor on a quiet path
	calm                time.Time     // last growth or shrink step
	quiet               int           // clean arrivals in a row
	quietSlack          time.Duration // the least slack among them
}

// Playout steps.
const (
	playoutStall  = 250 * time.Millisecond // added when a chunk missed its deadline
	playoutLate   = 50 * time.Millisecond  // added when one came within lateMargin of it
	lateMargin    = 200 * time.Millisecond
	playoutShrink = 50 * time.Millisecond // taken off per calmPeriod without either
	calmPeriod    = 5 * time.Second
	// quietChunks clean arrivals (4 s of 250 ms chunks) with at least
	// quietStep + lateMargin of slack each let the target drop by
	// quietStep: after the drop they would still have come lateMargin
	// early, so the drop does not turn them into near misses.
	quietChunks = 40
	quietStep   = 500 * time.Millisecond
)

func newPlayout(floor, low, ceil time.Duration, now time.Time) playout {
	return playout{target: floor, floor: floor, low: min(max(low, 0), floor), ceil: max(ceil, floor), calm: now}
}

// grow raises the target by d (up to the ceiling) and says by how much.
// The playout clock follows a raised target by slowing down; only a stall
// (the player waited) moves it at once.
func (p *playout) grow(now time.Time, d time.Duration) time.Duration {
	old := p.target
	p.target = min(p.target+d, p.ceil)
	p.calm = now
	p.quiet = 0
	return p.target - old
}

// stalled: a chunk missed its deadline. It returns the growth.
func (p *playout) stalled(now time.Time) time.Duration { return p.grow(now, playoutStall) }

// arrived notes a chunk that came slack before its deadline and returns
// the growth. clean says it came whole from the stripe's parent alone,
// without a repair.
func (p *playout) arrived(now time.Time, slack time.Duration, clean bool) time.Duration {
	if slack < lateMargin {
		return p.grow(now, playoutLate)
	}
	if !clean {
		// The path needed a repair: the floor's margin is for that.
		p.quiet = 0
		if p.target < p.floor {
			return p.grow(now, p.floor-p.target)
		}
		return 0
	}
	if p.quiet == 0 || slack < p.quietSlack {
		p.quietSlack = slack
	}
	p.quiet++
	if p.quiet >= quietChunks {
		if p.quietSlack >= quietStep+lateMargin && p.target > p.low {
			p.target = max(p.target-quietStep, p.low)
			p.calm = now
		}
		p.quiet = 0
	}
	return 0
}

// tick shrinks the target after a calm period.
func (p *playout) tick(now time.Time) {
	if now.Sub(p.calm) >= calmPeriod && p.target > p.floor {
		p.target = max(p.target-playoutShrink, p.floor)
		p.calm = now
	}
}

// held is how long the engine holds media for others (children's send
// queues, the window it accepts): what the configured floor allows even
// while its own target runs below it on a quiet path, since a child's
// path is not this peer's.
func (p *playout) held() time.Duration { return max(p.target, p.floor) }

// playClock is the player's schedule: chunk media time mt is due at
// base + mt. It models what a player does, not what would be convenient:
// it starts at the live-edge estimate plus the playout target; when it runs
// further behind than that (a new parent higher in the tree, the target
// shrinking) it catches up at catchUpRate, as a player does by playing a
// little faster; and it falls back only when playback waits (delay: a
// stall, or the target growing), never because data comes later. A chunk
// that comes later than the schedule has eaten into the buffer, and a
// stall is counted when it eats all of it.
type playClock struct {
	base time.Time
	at   time.Time // last follow
	set  bool
}

// catchUpRate is how fast the base may move earlier: 0.15 s per second, the
// player's fastest catch-up (playbackRate 1.15).
const catchUpRate = 0.15

// slowDownRate is how fast the base may move later when data runs later
// than the schedule: 0.05 s per second, a player at playbackRate 0.95
// rebuilding its buffer without a stall.
const slowDownRate = 0.05

// follow moves the base toward goal (live-edge estimate + target) at now.
func (c *playClock) follow(now, goal time.Time) {
	if !c.set {
		c.base, c.at, c.set = goal, now, true
		return
	}
	dt := now.Sub(c.at)
	c.at = now
	if goal.Before(c.base) {
		c.base = maxTime(goal, c.base.Add(-time.Duration(float64(dt)*catchUpRate)))
	} else {
		c.base = minTime(goal, c.base.Add(time.Duration(float64(dt)*slowDownRate)))
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// delay makes playback wait d: everything is due d later.
func (c *playClock) delay(d time.Duration) {
	if c.set && d > 0 {
		c.base = c.base.Add(d)
	}
}

func (c *playClock) reset() { *c = playClock{} }
