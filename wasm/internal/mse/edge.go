package mse

import (
	"math"
	"strconv"
	"time"
)

// Range is one buffered time range of the media element, in seconds.
type Range struct{ Start, End float64 }

// String is the range as fmt's %v writes it, for the wasm's log lines.
func (r Range) String() string {
	return "{" + strconv.FormatFloat(r.Start, 'g', -1, 64) + " " + strconv.FormatFloat(r.End, 'g', -1, 64) + "}"
}

// EdgeConfig tunes live-edge control. Zero values take the defaults.
type EdgeConfig struct {
	// Target is how far behind the newest buffered media playback aims to
	// run (default 1 s): enough to ride out a late chunk, small enough for
	// the ≤ 1.5 s behind-live target.
	Target time.Duration
	// Jump is how far behind playback may fall before it seeks back to
	// Target instead of catching up by speed (default 3 s).
	Jump time.Duration
	// MaxRate caps playbackRate while catching up (default 1.15: faster
	// speech starts to sound wrong).
	MaxRate float64
	// Settle is how long after the start playback seeks to Target when it
	// runs more than settleExcess behind it, rather than catching up by
	// speed (default 5 s): playback starts once StartBuffer is in, while
	// the peer engine is still bursting the media from the newest keyframe
	// to the live edge, and the burst leaves it up to a keyframe interval
	// behind, which took 20 s to catch up at 1.0x–1.1x (issue 22).
	Settle time.Duration
	// MinRate is the playbackRate while the buffer is well under Target
	// (default 0.95): playing a little slower rebuilds it without a stall,
	// as the peer engine's playout clock assumes.
	MinRate float64
	// StartBuffer is how much media must be buffered before playback starts
	// (default 300 ms).
	StartBuffer time.Duration
	// SeekCooldown spaces the seeks Edge asks for, so a seek that takes a
	// moment to complete is not asked for again (default 1 s).
	SeekCooldown time.Duration
	// SeekStuck is how long a seek may stay pending before Edge seeks
	// again, into the newest range (default 4 s; each further retry waits
	// twice as long). WebKitGTK's first seek, made before its pipeline ever
	// had data (currentTime 0, media from 0.046 s on), can stay pending
	// for good: the element then sits at the seek target with seeking
	// true, media buffered, and nothing else would act, since a pending
	// seek otherwise keeps Edge's hands off. A second seek completes. A
	// seek on a loaded machine takes up to ~5 s there, so a retry comes
	// no sooner than that.
	SeekStuck time.Duration
}

func (c *EdgeConfig) defaults() {
	if c.Target <= 0 {
		c.Target = time.Second
	}
	if c.Jump <= 0 {
		c.Jump = 3 * time.Second
	}
	if c.Jump < c.Target {
		c.Jump = c.Target
	}
	if c.MaxRate <= 1 {
		c.MaxRate = 1.15
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Second
	}
	if c.MinRate <= 0 || c.MinRate >= 1 {
		c.MinRate = 0.95
	}
	if c.StartBuffer <= 0 {
		c.StartBuffer = 300 * time.Millisecond
	}
	if c.SeekCooldown <= 0 {
		c.SeekCooldown = time.Second
	}
	if c.SeekStuck <= 0 {
		c.SeekStuck = 4 * time.Second
	}
}

// View is what the media element looks like at one moment.
type View struct {
	Now      time.Time
	Current  float64 // currentTime
	Buffered []Range // in order, as TimeRanges gives them
	Paused   bool
	Seeking  bool
	Rate     float64 // playbackRate now
}

// Action is what Edge wants done to the element.
type Action struct {
	Seek   bool
	SeekTo float64
	Rate   float64 // the playbackRate to set (set it only if it differs)
	Play   bool    // call play(): playback is starting
}

// Edge keeps playback near the live edge: it starts playback when enough
// is buffered, skips gaps in the buffer, speeds up gently when playback
// drifts behind, and seeks when it is far behind. It is not safe for
// concurrent use.
type Edge struct {
	cfg       EdgeConfig
	started   bool
	startedAt time.Time
	lastSeek  time.Time
	catching  bool
	slowing   bool
	gap       Gap // stalls at holes and stuck frames (gap.go)
	// seekingSince is when the element was first seen seeking (zero when
	// it is not); retries counts the seeks Edge made again since.
	seekingSince time.Time
	retries      int
}

// SetTarget changes Target (the peer engine adapts its playout delay to
// the mesh; the player follows it). It is kept between 100 ms and Jump.
func (e *Edge) SetTarget(d time.Duration) {
	e.cfg.Target = min(max(d, 100*time.Millisecond), e.cfg.Jump)
}

// NewEdge returns an Edge with cfg's zero values defaulted.
func NewEdge(cfg EdgeConfig) *Edge {
	cfg.defaults()
	return &Edge{cfg: cfg}
}

// Config returns the configuration in effect.
func (e *Edge) Config() EdgeConfig { return e.cfg }

// Started reports whether Edge has started playback.
func (e *Edge) Started() bool { return e.started }

// Restart makes the next Decide start playback afresh (after the media
// source was rebuilt).
func (e *Edge) Restart() {
	e.started, e.catching, e.slowing = false, false, false
	e.startedAt = time.Time{}
	e.gap = Gap{}
	e.seekingSince, e.retries = time.Time{}, 0
}

// GapSkips is how many seeks the gap controller asked for.
func (e *Edge) GapSkips() uint64 { return e.gap.Skips() }

// Behind is how far currentTime is behind the end of the buffer, in
// seconds (0 with nothing buffered).
func Behind(v View) float64 {
	if len(v.Buffered) == 0 {
		return 0
	}
	return math.Max(0, v.Buffered[len(v.Buffered)-1].End-v.Current)
}

// Ahead is how much media is buffered from currentTime on without a gap.
func Ahead(v View) float64 {
	if i := rangeAt(v.Buffered, v.Current); i >= 0 {
		return v.Buffered[i].End - v.Current
	}
	return 0
}

// holeTolerance: a currentTime this close before a range counts as in it
// (decoders report times a frame short of the data).
const holeTolerance = 0.1

func rangeAt(rs []Range, t float64) int {
	for i, r := range rs {
		if t >= r.Start-holeTolerance && t < r.End {
			return i
		}
	}
	return -1
}

// Catching up: from catchFrom seconds over the target (more than the
// sawtooth of 250 ms chunks arriving, on average half a chunk), at
// playbackRate 1 + catchGain × the excess, up to MaxRate. While settling,
// a lag of more than settleExcess over the target is skipped by a seek.
const (
	catchFrom    = 0.3
	catchGain    = 0.3
	settleExcess = 0.5
)

// Decide looks at v and says what to do.
func (e *Edge) Decide(v View) Action {
	a := Action{Rate: v.Rate}
	if a.Rate <= 0 {
		a.Rate = 1
	}
	if len(v.Buffered) == 0 {
		return a
	}
	if v.Seeking {
		if to, ok := e.stuckSeek(v); ok {
			e.seek(&a, v.Now, to)
		}
		return a
	}
	e.seekingSince, e.retries = time.Time{}, 0
	last := v.Buffered[len(v.Buffered)-1]
	edge := last.End
	target := e.cfg.Target.Seconds()
	liveAt := math.Max(last.Start, edge-target)
	canSeek := v.Now.Sub(e.lastSeek) >= e.cfg.SeekCooldown

	if !e.started {
		if last.End-last.Start < e.cfg.StartBuffer.Seconds() {
			return a
		}
		e.started, e.startedAt = true, v.Now
		e.lastSeek = v.Now
		a.Seek, a.SeekTo, a.Play, a.Rate = true, liveAt, true, 1
		return a
	}

	behind := edge - v.Current
	in := rangeAt(v.Buffered, v.Current)
	settling := v.Now.Sub(e.startedAt) < e.cfg.Settle && !v.Paused
	switch {
	case behind > e.cfg.Jump.Seconds() && canSeek,
		settling && behind-target > settleExcess && canSeek && in >= 0:
		e.seek(&a, v.Now, liveAt)
		return a
	case in < 0 && canSeek:
		// In a hole (chunks skipped after a gap, or a new epoch's media
		// further on): jump to the next range that has media.
		for _, r := range v.Buffered {
			if r.Start > v.Current {
				e.seek(&a, v.Now, r.Start)
				return a
			}
		}
	}
	if to, ok := e.gap.Decide(v); ok {
		e.seek(&a, v.Now, to)
		return a
	}

	if v.Paused {
		e.catching, e.slowing = false, false
		a.Rate = 1
		return a
	}
	excess := behind - target
	ahead := 0.0
	if in >= 0 {
		ahead = v.Buffered[in].End - v.Current
	}
	switch {
	case ahead < 0.3:
		// Do not drain a thin buffer into a stall.
		e.catching = false
	case excess > catchFrom || (e.catching && excess > 0.05):
		e.catching = true
	default:
		e.catching = false
	}
	// Well under target (data came later than the schedule, or the
	// target grew): slow down until the buffer is back.
	e.slowing = !e.catching && (excess < -0.3 || (e.slowing && excess < -0.05))
	a.Rate = 1
	if e.slowing {
		a.Rate = e.cfg.MinRate
	}
	if e.catching {
		// Proportional: 0.25 s over target gives 1.08, 0.5 s and more
		// the cap. (At 0.1 per second over target, as before, a target
		// that dropped by 0.5 s took ~20 s to reach.)
		a.Rate = math.Min(e.cfg.MaxRate, 1+catchGain*excess)
		a.Rate = math.Round(a.Rate*100) / 100
		if a.Rate <= 1 {
			a.Rate = 1.01
		}
	}
	return a
}

// stuckSeek says where to seek again when a pending seek has taken more
// than SeekStuck (doubled per retry, at most 8 times): the live target in
// the newest range, at least gapSkipIn inside it, not its very first
// frame.
func (e *Edge) stuckSeek(v View) (float64, bool) {
	if e.seekingSince.IsZero() {
		e.seekingSince = v.Now
		return 0, false
	}
	if !e.started || e.retries >= 8 || v.Now.Sub(e.seekingSince) < e.cfg.SeekStuck<<e.retries {
		return 0, false
	}
	last := v.Buffered[len(v.Buffered)-1]
	to := math.Max(last.End-e.cfg.Target.Seconds(), last.Start+gapSkipIn)
	if to >= last.End {
		return 0, false // too little buffered to land inside it
	}
	e.retries++
	e.seekingSince = v.Now
	return to, true
}

func (e *Edge) seek(a *Action, now time.Time, to float64) {
	e.lastSeek = now
	e.gap.Reset(now)
	e.catching, e.slowing = false, false
	a.Seek, a.SeekTo, a.Rate = true, to, 1
}

// Evict returns the range to remove so that nothing before keepFrom stays
// buffered: from the first buffered start to keepFrom. It asks only when at
// least minSpan seconds would go, so removals are few and large.
func Evict(buffered []Range, keepFrom, minSpan float64) (Range, bool) {
	if len(buffered) == 0 {
		return Range{}, false
	}
	r := Range{Start: buffered[0].Start, End: keepFrom}
	if r.End-r.Start < minSpan {
		return Range{}, false
	}
	return r, true
}

// KeepFrom is where the buffer worth keeping starts: keepBehind seconds
// behind currentTime while playing; while paused, also no more than
// pausedKeep seconds behind the live edge, since playback jumps back to
// the edge when it resumes and the buffer must not fill up meanwhile.
func KeepFrom(v View, keepBehind, pausedKeep float64) float64 {
	from := v.Current - keepBehind
	if v.Paused && len(v.Buffered) > 0 {
		from = math.Max(from, v.Buffered[len(v.Buffered)-1].End-pausedKeep)
	}
	return from
}

// StallMeter counts stalls: times when playback should advance (started,
// not paused by the user, not seeking, the stream live) but currentTime
// stands still for more than its threshold.
type StallMeter struct {
	// Threshold is how long currentTime may stand still before it counts
	// as a stall (default 500 ms: longer than two frames at any rate, and
	// than the gap between the timeupdate samples the glue takes).
	Threshold time.Duration

	init         bool
	lastTime     float64
	lastProgress time.Time
	stalled      bool
	since        time.Time
	count        int
	total        time.Duration
}

// Observe records currentTime at now. expecting says whether playback
// should be advancing.
func (m *StallMeter) Observe(now time.Time, current float64, expecting bool) {
	th := m.Threshold
	if th <= 0 {
		th = 500 * time.Millisecond
	}
	moved := !m.init || current != m.lastTime
	m.init = true
	m.lastTime = current
	if moved || !expecting {
		m.end(now)
		m.lastProgress = now
		return
	}
	if !m.stalled && now.Sub(m.lastProgress) > th {
		m.stalled = true
		m.since = m.lastProgress
		m.count++
	}
}

func (m *StallMeter) end(now time.Time) {
	if m.stalled {
		m.total += now.Sub(m.since)
		m.stalled = false
	}
}

// Stalled reports whether playback is stalled now.
func (m *StallMeter) Stalled() bool { return m.stalled }

// Count is the number of stalls so far.
func (m *StallMeter) Count() int { return m.count }

// Total is the time spent stalled so far, including a stall in progress.
func (m *StallMeter) Total(now time.Time) time.Duration {
	if m.stalled {
		return m.total + now.Sub(m.since)
	}
	return m.total
}
