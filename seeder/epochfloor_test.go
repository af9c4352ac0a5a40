package seeder_test

import (
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/seeder"
)

// TestEpochFloorAcrossSeeders: two seeders of a cluster take a stream
// from each other within one second. With the shared floor (the last
// epoch any of them used) the second starts above the first; without it
// both use the same clock second and their chunk URLs would collide.
func TestEpochFloorAcrossSeeders(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, shared := range []bool{false, true} {
		var mu sync.Mutex
		floor := map[string]uint32{}
		cfg := func(clk *clock) seeder.Config {
			c := seeder.Config{Now: clk.Now, KeyRotation: -1}
			if shared {
				c.EpochFloor = func(stream string) uint32 { mu.Lock(); defer mu.Unlock(); return floor[stream] }
			}
			return c
		}
		epochOf := func(s *seeder.Seeder, c *capture, clk *clock) uint32 {
			p, err := s.StartPublish("cam", "rtmp", true, 0, func() {})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.VideoConfig(media.VideoConfig{SPS: testSPS, PPS: testPPS}); err != nil {
				t.Fatal(err)
			}
			feedVideo(t, p, clk, start, 0, 1)
			p.End(nil)
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, e := range c.events {
				if e.Kind == seeder.EpochStarted {
					mu.Lock()
					floor["cam"] = max(floor["cam"], e.Epoch) // what the cluster member writes
					mu.Unlock()
					return e.Epoch
				}
			}
			t.Fatal("no epoch started")
			return 0
		}
		clkA, clkB := &clock{t: start}, &clock{t: start}
		a, ca, _ := newSeeder(t, cfg(clkA))
		b, cb, _ := newSeeder(t, cfg(clkB))
		ea := epochOf(a, ca, clkA)
		eb := epochOf(b, cb, clkB)
		if shared && eb <= ea {
			t.Errorf("with the floor: seeder B's epoch %d is not above A's %d", eb, ea)
		}
		if !shared && eb != ea {
			t.Errorf("without the floor the epochs differ (%d, %d): the test no longer shows the collision", ea, eb)
		}
	}
}
