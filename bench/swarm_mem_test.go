package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
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

// TestGOPJoinCost: a 4 s GOP makes a joiner fetch more before it plays and
// start further behind live than a 1 s GOP (it starts at the newest
// keyframe, on average half a GOP old). Two short runs of 40 viewers
// joining over 8 s; identical runs (MemModel.GOP ignored) fail.
func TestGOPJoinCost(t *testing.T) {
	run := func(gop time.Duration) SwarmResult {
		t.Helper()
		cfg := SwarmConfig{Peers: 40, Duration: 12 * time.Second, Ramp: 8 * time.Second, Seed: 3}
		cfg.Mem.GOP = gop
		r, err := Swarm(context.Background(), cfg)
		if err != nil {
			t.Fatalf("GOP %v: %v", gop, err)
		}
		t.Logf("GOP %v (window %d ms): offload %.2f %%, stall %.5f, join p50/p95 %.0f/%.0f ms, join bytes p50/p95 %d/%d (origin share %.3f), catch-up p50/p95 %d/%d, start behind p50/p95 %.0f/%.0f ms",
			gop, r.WindowMs, 100*r.Offload, r.StallRatio, r.JoinP50ms, r.JoinP95ms, r.JoinBytesP50, r.JoinBytesP95, r.JoinOriginShare,
			r.CatchupBytesP50, r.CatchupBytesP95, r.StartBehindP50ms, r.StartBehindP95ms)
		if r.BadChunksPlayed != 0 || r.ChunksPlayed == 0 {
			t.Fatalf("GOP %v: %d chunks played, %d bad", gop, r.ChunksPlayed, r.BadChunksPlayed)
		}
		return r
	}
	g1, g4 := run(time.Second), run(4*time.Second)
	if g1.GOPms != 1000 || g1.WindowMs != 3000 || g4.GOPms != 4000 || g4.WindowMs != 5000 {
		t.Errorf("GOP/window %d/%d and %d/%d ms, want 1000/3000 and 4000/5000", g1.GOPms, g1.WindowMs, g4.GOPms, g4.WindowMs)
	}
	if g4.JoinBytesP50 <= g1.JoinBytesP50 || g4.JoinBytesP95 <= g1.JoinBytesP95 {
		t.Errorf("join bytes p50/p95: 4 s GOP %d/%d, 1 s GOP %d/%d: want more with the longer GOP",
			g4.JoinBytesP50, g4.JoinBytesP95, g1.JoinBytesP50, g1.JoinBytesP95)
	}
	if g4.StartBehindP50ms <= g1.StartBehindP50ms || g4.StartBehindP95ms <= g1.StartBehindP95ms {
		t.Errorf("start behind live p50/p95: 4 s GOP %.0f/%.0f ms, 1 s GOP %.0f/%.0f ms: want further behind with the longer GOP",
			g4.StartBehindP50ms, g4.StartBehindP95ms, g1.StartBehindP50ms, g1.StartBehindP95ms)
	}
	if g1.CatchupBytesP50 < g1.JoinBytesP50 || g4.CatchupBytesP50 < g4.JoinBytesP50 {
		t.Errorf("catch-up p50 below join bytes p50 (%d < %d or %d < %d): catching up comes after the start",
			g1.CatchupBytesP50, g1.JoinBytesP50, g4.CatchupBytesP50, g4.JoinBytesP50)
	}
}

// TestGOPDefaults: the GOP defaults to 1 s, the window to max(3 s, GOP +
// 1 s) unless set; bad GOPs are refused.
func TestGOPDefaults(t *testing.T) {
	for _, tc := range []struct {
		gop, window, wantGOP, wantWindow time.Duration
	}{
		{0, 0, time.Second, 3 * time.Second},
		{2 * time.Second, 0, 2 * time.Second, 3 * time.Second},
		{4 * time.Second, 0, 4 * time.Second, 5 * time.Second},
		{8 * time.Second, 0, 8 * time.Second, 9 * time.Second},
		{8 * time.Second, 3 * time.Second, 8 * time.Second, 3 * time.Second}, // an explicit window wins
		{250 * time.Millisecond, 0, 250 * time.Millisecond, 3 * time.Second},
	} {
		m := MemModel{GOP: tc.gop, Window: tc.window}
		if err := m.setDefaults(); err != nil {
			t.Fatalf("GOP %v: %v", tc.gop, err)
		}
		if m.GOP != tc.wantGOP || m.Window != tc.wantWindow {
			t.Errorf("GOP %v window %v: got %v / %v, want %v / %v", tc.gop, tc.window, m.GOP, m.Window, tc.wantGOP, tc.wantWindow)
		}
	}
	for _, bad := range []time.Duration{-time.Second, ChunkDuration + ChunkDuration/5, MaxGOP + ChunkDuration} {
		m := MemModel{GOP: bad}
		if err := m.setDefaults(); err == nil || !strings.Contains(err.Error(), "multiple of the "+ChunkDuration.String()+" chunk") {
			t.Errorf("GOP %v: error %v, want a clear refusal", bad, err)
		}
	}
	cfg := SwarmConfig{Transport: TransportWebRTC}
	cfg.Mem.GOP = 2 * time.Second
	if err := cfg.setDefaults(); err == nil || !strings.Contains(err.Error(), "mem model setting") {
		t.Errorf("GOP with webrtc: error %v, want a refusal", err)
	}
}

// TestSynthGOP: the source puts a keyframe on chunk 1 and every GOP after,
// the origin's live edge names the newest, and the mean chunk size stays at
// the bitrate whatever the GOP.
func TestSynthGOP(t *testing.T) {
	for _, g := range []uint64{1, 4, 32} {
		src, err := newSynthSource(1, 3e6, 1.5, g)
		if err != nil {
			t.Fatal(err)
		}
		var total int
		for seq := uint64(0); seq <= 4*g; seq++ {
			if _, err := src.seal(seq); err != nil {
				t.Fatal(err)
			}
			if seq == 0 {
				continue
			}
			total += len(src.sealed[seq])
			kf := src.hdr[seq].Flags&chunk.FlagKeyframe != 0
			if want := (seq-1)%g == 0; kf != want {
				t.Errorf("GOP %d chunks: chunk %d keyframe %v, want %v", g, seq, kf, want)
			}
		}
		mean := float64(total) / float64(4*g)
		if want := 3e6 / 8 * chunkDur.Seconds(); math.Abs(mean-want) > 0.01*want {
			t.Errorf("GOP %d chunks: mean chunk %.0f B, want %.0f", g, mean, want)
		}
	}
}

func TestQuantileU64(t *testing.T) {
	v := []uint64{50, 10, 40, 20, 30}
	for _, tc := range []struct {
		q    float64
		want uint64
	}{{0, 10}, {0.2, 10}, {0.5, 30}, {0.95, 50}, {1, 50}} {
		if got := quantileU64(v, tc.q); got != tc.want {
			t.Errorf("q %v: %d, want %d", tc.q, got, tc.want)
		}
	}
	if v[0] != 50 {
		t.Error("quantileU64 sorted its input")
	}
	if quantileU64(nil, 0.5) != 0 {
		t.Error("empty: want 0")
	}
}

func TestJoinCostFill(t *testing.T) {
	var j joinCost
	j.started(peer.Traffic{P2P: 300, TURN: 100}, 500*time.Millisecond)
	j.started(peer.Traffic{P2P: 100, Origin: 500}, 1500*time.Millisecond)
	j.caughtUp(peer.Traffic{P2P: 900, TURN: 100})
	var r SwarmResult
	j.fill(&r)
	if r.JoinBytesP50 != 400 || r.JoinBytesP95 != 600 || r.JoinOriginBytesP50 != 0 || r.JoinOriginBytesP95 != 500 {
		t.Errorf("join bytes %d/%d, origin %d/%d; want 400/600, 0/500", r.JoinBytesP50, r.JoinBytesP95, r.JoinOriginBytesP50, r.JoinOriginBytesP95)
	}
	// The behind histogram is exact within 0.2 %.
	if r.JoinOriginShare != 0.5 || r.CatchupBytesP50 != 1000 || math.Abs(r.StartBehindP50ms-500) > 1 || math.Abs(r.StartBehindP95ms-1500) > 3 {
		t.Errorf("origin share %v, catch-up %d, behind %v/%v; want 0.5, 1000, 500/1500", r.JoinOriginShare, r.CatchupBytesP50, r.StartBehindP50ms, r.StartBehindP95ms)
	}
}
