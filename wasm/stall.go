//go:build js && wasm

package main

import (
	"time"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/wasm/internal/health"
)

// stallWatch is what the viewer keeps to say honestly why playback stands
// still (issue 21): when bytes last arrived, and how late the tab's timers
// run. Guarded by viewer.mu.
type stallWatch struct {
	bytes    uint64
	bytesAt  time.Time
	lastTick time.Time
	lag      time.Duration // the largest timer lateness lately
	lagAt    time.Time
	cause    string // the last stall's cause, for the stats panel
}

// tickPeriod is the viewer's timer period (tick).
const tickPeriod = 50 * time.Millisecond

// noteTick records how late a timer tick came: a tab short of CPU (or
// throttled in the background) runs them late.
func (w *stallWatch) noteTick(now time.Time) {
	if !w.lastTick.IsZero() {
		late := now.Sub(w.lastTick) - tickPeriod
		if late >= w.lag || now.Sub(w.lagAt) > 3*time.Second {
			w.lag, w.lagAt = max(late, 0), now
		}
	}
	w.lastTick = now
}

// stalledLocked names the state when no chunk has played for a while
// although the broadcast is live: buffering with its cause, or
// reconnecting when every parent is gone.
func (w *stallWatch) stalledLocked(now time.Time, n *node.Node, eng *peer.Engine) (sourceState, string) {
	in := health.Input{SinceBytes: -1, TimerLag: w.lag}
	if total := eng.Sources().Total(); total != w.bytes {
		w.bytes, w.bytesAt = total, now
	}
	if !w.bytesAt.IsZero() {
		in.SinceBytes = now.Sub(w.bytesAt)
	}
	for _, p := range n.LastStats().Parents {
		if p.Parent != 0 {
			in.Parents++
		}
	}
	for _, d := range n.Depths() {
		if d == 0 {
			in.OriginFed++
		}
	}
	in.OriginFed = max(0, in.OriginFed-in.Parents) // depths lag the stats report
	state, why := health.Stalled(in)
	w.cause = why
	if state == health.Reconnecting {
		return sourceFailing, why
	}
	return sourceLate, why
}

// starvedLocked is the cause of a stall while data flows, when the tab
// itself is the cause ("" otherwise).
func (w *stallWatch) starvedLocked() string {
	if w.lag < health.StarvedLag {
		return ""
	}
	_, why := health.Stalled(health.Input{TimerLag: w.lag})
	w.cause = why
	return why
}
