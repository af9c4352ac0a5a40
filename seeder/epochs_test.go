package seeder_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/store"
)

// TestEpochsReservedAcrossRestart (issue 18 #4, seeder side): a seeder
// publishes, stops; a new one on the same store starts with its clock an
// hour behind. Its epochs must still be above the old ones, or a relay
// holding an old chunk of a higher epoch could switch viewers to it.
// Without Config.ReserveEpochs (before the fix) the new publish started
// at the clock's Unix seconds, an hour of epochs below the old ones.
func TestEpochsReservedAcrossRestart(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Unix(1_800_000_000, 0)
	run := func(start time.Time, takeOver bool) (lo, hi uint32) {
		t.Helper()
		clk := &clock{t: start}
		s, c, _ := newSeeder(t, seeder.Config{Now: clk.Now, ReserveEpochs: st.ReserveEpochs})
		p, err := s.StartPublish("cam", "rtmp", true, 0, func() {})
		if err != nil {
			t.Fatal(err)
		}
		config := func(p *seeder.Publish) {
			if err := p.VideoConfig(media.VideoConfig{SPS: testSPS, PPS: testPPS}); err != nil {
				t.Fatal(err)
			}
		}
		config(p)
		feedVideo(t, p, clk, start, 0, 2)
		if takeOver { // a reconnect: a new epoch within the same seeder
			p2, err := s.StartPublish("cam", "rtmp", true, 0, func() {})
			if err != nil {
				t.Fatal(err)
			}
			p.End(nil)
			config(p2)
			feedVideo(t, p2, clk, start, 2, 2)
			p = p2
		}
		p.End(nil)
		s.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		lo = ^uint32(0)
		for _, e := range c.chunks {
			lo, hi = min(lo, e.Epoch), max(hi, e.Epoch)
		}
		if len(c.chunks) == 0 {
			t.Fatal("no chunks")
		}
		return lo, hi
	}
	_, hi1 := run(t0, true)
	lo2, _ := run(t0.Add(-time.Hour), false)
	if lo2 <= hi1 {
		t.Fatalf("after a restart with the clock an hour back the epochs start at %d, not above the old %d", lo2, hi1)
	}
}
