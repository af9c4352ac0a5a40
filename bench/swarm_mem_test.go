package bench

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestDeadline: a vanished viewer is dropped by the reaper 4–7.5 s after
// its death with the tracker's 2 s stats interval (last stats up to 2 s
// before the death, 3 intervals of silence, a reaper pass every 1 s).
func TestDeadline(t *testing.T) {
	cfg := SwarmConfig{Peers: 1, Duration: time.Minute}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Mem.setDefaults(); err != nil {
		t.Fatal(err)
	}
	s, err := newMemSim(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := s.newPeer()
	p.welcome = s.t0.Add(1234 * time.Millisecond)
	lo, hi := time.Hour, time.Duration(0)
	for ms := 3000; ms < 20000; ms += 7 {
		death := s.t0.Add(time.Duration(ms) * time.Millisecond)
		d := s.deadline(p, death).Sub(death)
		lo, hi = min(lo, d), max(hi, d)
		if at := s.deadline(p, death).Sub(s.t0); at%(time.Second) != 0 {
			t.Fatalf("detection at %v, not on a reaper pass", at)
		}
	}
	if lo < 4*time.Second || hi > 7500*time.Millisecond || hi-lo < time.Second {
		t.Errorf("detection delay in [%v, %v], want within [4 s, 7.5 s] and spread", lo, hi)
	}
}

// TestUploadMix: at the defaults the upload mix gives the overlay's
// SampleCapacity mix: 20 % 0 slots, 30 % 1–2, 40 % 3–6, 10 % 10+ (±
// rounding at the band edges).
func TestUploadMix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var zero, low, mid, high int
	const n = 100000
	for range n {
		c := int(sampleUpload(r, DefaultNoUploadPct) * 0.8 / 1.5e6)
		switch {
		case c == 0:
			zero++
		case c <= 2:
			low++
		case c <= 6:
			mid++
		case c >= 10:
			high++
		}
	}
	for _, tc := range []struct {
		name     string
		got      int
		min, max float64
	}{{"0", zero, 0.19, 0.21}, {"1–2", low, 0.29, 0.35}, {"3–6", mid, 0.33, 0.41}, {"10+", high, 0.095, 0.105}} {
		if f := float64(tc.got) / n; f < tc.min || f > tc.max {
			t.Errorf("%s slots: %.3f of viewers, want %.2f–%.2f", tc.name, f, tc.min, tc.max)
		}
	}
}
