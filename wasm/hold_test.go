//go:build js && wasm

package main

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

func TestSignalHold(t *testing.T) {
	t0 := time.Unix(1000, 0)
	offer := protocol.Signal{From: 2, SDP: &protocol.SDP{Type: "offer", SDP: "v=0"}}
	cand := protocol.Signal{From: 2, Candidate: []byte(`{"candidate":"c"}`)}
	type step struct {
		at      time.Duration
		msg     protocol.Message // held or not (want hold)
		hold    bool
		started bool // release at this step with this playback state
		release int  // messages released
	}
	for _, tc := range []struct {
		name  string
		start bool
		steps []step
	}{
		{"no session: nothing held", false, []step{{at: 0, msg: offer}}},
		{"held until playback starts", true, []step{
			{at: 0, msg: offer, hold: true},
			{at: 100 * time.Millisecond, msg: cand, hold: true},
			{at: 200 * time.Millisecond, release: 0},
			{at: 300 * time.Millisecond, started: true, release: 2},
			{at: 310 * time.Millisecond, msg: cand}, // the hold is over
		}},
		{"held at most holdMax from the first", true, []step{
			{at: 0, msg: offer, hold: true},
			{at: 400 * time.Millisecond, msg: cand, hold: true},
			{at: holdMax - time.Millisecond, release: 0},
			{at: holdMax, release: 2},
		}},
		{"other messages pass", true, []step{
			{at: 0, msg: protocol.Assign{Stripe: 1, Parent: 2}},
			{at: 0, msg: protocol.Keys{}},
			{at: time.Hour, release: 0}, // nothing held: nothing to time out
			{at: time.Hour, started: true, release: 0},
			{at: time.Hour, msg: offer}, // started ended the hold
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h signalHold
			if tc.start {
				h.start()
			}
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.msg != nil {
					if got := h.hold(s.msg, now); got != s.hold {
						t.Fatalf("step %d: hold(%T) = %v, want %v", i, s.msg, got, s.hold)
					}
					continue
				}
				if got := h.release(now, s.started); len(got) != s.release {
					t.Fatalf("step %d: released %d, want %d", i, len(got), s.release)
				} else if len(got) == 2 && got[0].(protocol.Signal).SDP == nil {
					t.Fatalf("step %d: released out of order: %v", i, got)
				}
			}
		})
	}
}
