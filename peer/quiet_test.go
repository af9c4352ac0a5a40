package peer_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/peer/memnet"
)

// TestQuietPlayout: engines on a clean path run their playout target below
// PlayoutDelay (1 s), at QuietPlayoutDelay (500 ms), with nothing missed
// and nothing asked of the origin; on a lossy path, where chunks need
// repairs, they keep the floor (glass-to-glass latency, issue 22).
func TestQuietPlayout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		loss      float64
		wantQuiet bool
	}{
		{"clean path", 0, true},
		{"2% of messages lost", 0.02, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := newSwarm(t, memnet.Config{Seed: 7, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, UploadBps: 50e6, Loss: tc.loss}, 2, 60_000, nil)
			defer sw.close()
			twoStripeTree(sw)
			const last = 120 // 30 s
			sw.publish(last)
			sw.net.RunFor((last - 4) * 250 * time.Millisecond)
			quiet, peers := 0, 0
			for id, e := range sw.engines {
				if id == rootID {
					continue
				}
				peers++
				st := e.Stats()
				if st.PlayoutMS < 1000 {
					quiet++
				}
				if tc.wantQuiet && st.PlayoutMS != 500 {
					t.Errorf("peer %d: playout target %d ms, want 500", id, st.PlayoutMS)
				}
				if c := e.Counters(); c.Stalls != 0 {
					t.Errorf("peer %d stalled: %+v", id, c)
				}
			}
			if !tc.wantQuiet && quiet > peers/10 {
				t.Errorf("%d of %d peers below the floor on a lossy path", quiet, peers)
			}
			if tc.wantQuiet && sw.origin.Requests != 0 {
				t.Errorf("origin served %d requests, want 0", sw.origin.Requests)
			}
			t.Logf("%d of %d peers below the floor, origin requests %d", quiet, peers, sw.origin.Requests)
		})
	}
}
