package mse

import "time"

// Gap controller tunables (hls.js's gap-controller uses the same ideas:
// a stall of a quarter second is real, a hole is skipped to a little past
// the next range's start, a stall with data ahead is nudged forward).
const (
	// gapStallAfter is how long currentTime must stand still while
	// playing before the controller acts.
	gapStallAfter = 250 * time.Millisecond
	// gapThin: with less than this buffered ahead of currentTime playback
	// is stopped at the end of its range, not stuck on data.
	gapThin = 0.5
	// gapSkipIn lands a skip this far inside the next range: some
	// decoders stop again at a range's very first frame.
	gapSkipIn = 0.05
	// gapNudgeAfter, gapNudgeStep, gapMaxNudges: a stall with data ahead
	// (a decoder stuck on a frame, a hole smaller than the range tolerance)
	// is nudged forward by step × nudges, a few times at most, then left to
	// Edge's jump. hls.js waits 2 s (highBufferWatchdogPeriod) too: a tab
	// short of CPU also stands still with data ahead, and a seek, which
	// decodes from the previous keyframe, costs it more.
	gapNudgeAfter = 2 * time.Second
	gapNudgeStep  = 0.1
	gapMaxNudges  = 3
)

// Gap watches for playback that stands still while it should advance, and
// says where to seek to get it going: over a hole to the next buffered
// range when currentTime stopped at the end of its range (chunks skipped
// after a loss, a new epoch placed a little further on), or a small nudge
// when it stopped with media ahead. Without it a small hole stalls until
// the buffer behind grows past Edge's jump threshold (~2 s). It is not
// safe for concurrent use.
type Gap struct {
	init   bool
	last   float64
	since  time.Time // when currentTime last moved (or Gap last acted)
	nudges int
	skips  uint64
}

// Reset restarts stall detection at now (after a seek).
func (g *Gap) Reset(now time.Time) {
	g.since = now
	g.init = false
}

// Skips is how many times Decide asked for a seek.
func (g *Gap) Skips() uint64 { return g.skips }

// Decide looks at v while playback should advance (started, not paused,
// not seeking) and returns where to seek, if anywhere.
func (g *Gap) Decide(v View) (float64, bool) {
	if v.Paused || v.Seeking || len(v.Buffered) == 0 {
		g.Reset(v.Now)
		return 0, false
	}
	if !g.init || v.Current != g.last {
		if g.init && v.Current > g.last {
			g.nudges = 0 // moving again
		}
		g.init, g.last, g.since = true, v.Current, v.Now
		return 0, false
	}
	stalled := v.Now.Sub(g.since)
	if stalled < gapStallAfter {
		return 0, false
	}
	ahead := Ahead(v)
	if ahead < gapThin {
		for _, r := range v.Buffered {
			if r.Start > v.Current && r.End-r.Start > gapSkipIn {
				return g.act(v.Now, r.Start+gapSkipIn)
			}
		}
		return 0, false // waiting for media: nothing to skip to
	}
	if stalled >= gapNudgeAfter && g.nudges < gapMaxNudges {
		g.nudges++
		return g.act(v.Now, v.Current+float64(g.nudges)*gapNudgeStep)
	}
	return 0, false
}

func (g *Gap) act(now time.Time, to float64) (float64, bool) {
	g.since = now
	g.skips++
	return to, true
}
