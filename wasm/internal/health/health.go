// Package health decides what the browser viewer says when playback stands
// still while the broadcast is live (issue 21): late data and a tab short
// of CPU are "buffering", with the cause; "reconnecting" is only for a
// viewer that lost every parent (the tracker's loss the caller handles).
// It is plain Go so it is tested natively; the wasm viewer feeds it.
package health

import (
	"strconv"
	"time"
)

// States, as the page names them.
const (
	Buffering    = "buffering"
	Reconnecting = "reconnecting"
)

// Input is what the viewer knows when no chunk has played for a while.
type Input struct {
	// Parents is how many peer parents it has (linked or connecting);
	// OriginFed how many stripes the origin feeds for lack of a parent.
	Parents, OriginFed int
	// SinceBytes is how long ago bytes last arrived from any source
	// (negative: never).
	SinceBytes time.Duration
	// TimerLag is how late the tab's timers ran lately: a busy or
	// throttled tab delivers data late however healthy the mesh is.
	TimerLag time.Duration
}

// StarvedLag is the timer lateness from which the tab itself is the cause.
const StarvedLag = 250 * time.Millisecond

// recent is how fresh bytes must be to count as still arriving.
const recent = 3 * time.Second

// Stalled names the state and its cause.
func Stalled(in Input) (state, reason string) {
	switch {
	case in.TimerLag >= StarvedLag:
		return Buffering, "this tab is short of CPU (a busy machine, or a tab in the background): its timers run " + strconv.FormatInt(in.TimerLag.Milliseconds(), 10) + " ms late"
	case in.SinceBytes >= 0 && in.SinceBytes < recent:
		return Buffering, "data is arriving late" + from(in)
	case in.Parents > 0:
		return Buffering, plural(in.Parents, "parent") + " connected, no data for " + strconv.FormatFloat(seconds(in.SinceBytes), 'f', 0, 64) + " s"
	case in.OriginFed > 0:
		return Buffering, "waiting for the origin"
	}
	return Reconnecting, "lost every parent; waiting for new ones"
}

func from(in Input) string {
	switch {
	case in.Parents > 0 && in.OriginFed > 0:
		return " (from " + plural(in.Parents, "parent") + " and the origin)"
	case in.Parents > 0:
		return " (from " + plural(in.Parents, "parent") + ")"
	case in.OriginFed > 0:
		return " (from the origin)"
	}
	return ""
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return strconv.Itoa(n) + " " + s + "s"
}

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}
