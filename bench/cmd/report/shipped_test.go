package main

import (
	"strings"
	"testing"

	"github.com/banyan-live/banyan/bench"
	"github.com/banyan-live/banyan/overlay"
)

func mkRun(label string, f func(*run)) run {
	r := run{Label: label}
	r.Transport, r.Mode, r.Engine = bench.TransportMem, bench.ModeMesh, "default"
	r.Peers, r.Stripes, r.BitrateBps, r.Seed, r.DurationS = 1000, overlay.DefaultStripes, 3e6, 1, 40
	r.ChurnPerMin, r.ChurnMode = 100, bench.ChurnAbrupt
	if f != nil {
		f(&r)
	}
	return r
}

func TestShippedSelection(t *testing.T) {
	tests := []struct {
		name              string
		r                 run
		shipped, baseline bool
	}{
		{"the reference run", mkRun("mesh-1k", nil), true, true},
		{"an experiment", mkRun("exp-mesh-1k", nil), false, false},
		{"tuned engine", mkRun("mesh-1k-tuned", func(r *run) { r.Engine = "gap=300ms" }), false, false},
		{"benchmark headroom", mkRun("mesh-1k-h40", func(r *run) { r.Headroom = 0.4 }), false, false},
		{"K=2 is shipped, not the baseline", mkRun("mesh-1k-k2", func(r *run) { r.Stripes = 2 }), true, false},
		{"harsher mix", mkRun("mesh-1k-noupload40", func(r *run) { r.NoUploadPct = 40 }), true, false},
		{"the default mix named", mkRun("mesh-1k", func(r *run) { r.NoUploadPct = bench.DefaultNoUploadPct }), true, true},
		{"webrtc", mkRun("webrtc-50", func(r *run) { r.Transport = bench.TransportWebRTC }), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shipped(tt.r); got != tt.shipped {
				t.Errorf("shipped = %v, want %v", got, tt.shipped)
			}
			if got := baseline(tt.r); got != tt.baseline {
				t.Errorf("baseline = %v, want %v", got, tt.baseline)
			}
		})
	}
}

func TestShippedTargetsRows(t *testing.T) {
	k2 := mkRun("mesh-10k-k2", func(r *run) {
		r.Peers, r.ChurnPerMin, r.Stripes, r.Offload, r.StallRatio = 10000, 1000, 2, 0.9476, 0.000006
	})
	k4 := mkRun("mesh-10k", func(r *run) {
		r.Peers, r.ChurnPerMin, r.Stripes, r.Offload, r.StallRatio = 10000, 1000, 4, 0.95, 0
		r.LatencyP95msByDepth = map[string]float64{"1": 900, "7": 2400, "3": 1200}
	})
	rtc := mkRun("webrtc-50", func(r *run) { r.Transport, r.Peers, r.Offload, r.HopLatencyP50ms = bench.TransportWebRTC, 50, 0.9, 30 })
	old := mkRun("webrtc-50", func(r *run) {
		r.Transport, r.Peers, r.Offload, r.HopLatencyP50ms = bench.TransportWebRTC, 50, 0.9031, 22.3
	})
	var b strings.Builder
	writeShippedTargets(&b, []run{k2, k4, rtc}, []run{old})
	out := b.String()
	for _, want := range []string{
		"| offload ≥ 99.0 %, 10 %/min churn, 10k and 100k | mesh-10k | – | 95.00 %",
		"worst 2400 ms at depth 7",
		"| K = 4 no worse than K = 2 (offload, stalls) | mesh-10k | – | K=4 95.00 %, stall 0.000000; K=2 (mesh-10k-k2) 94.76 %, stall 0.000006 | yes |",
		// 30 ms against 22.3 ms is more than 20 % slower: a regression.
		"hop p50 30.0 ms; before (webrtc-50, –) 90.31 % (98.2 % of 92.0 %), hop p50 22.3 ms | **no** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCeiling(t *testing.T) {
	tests := []struct {
		name string
		r    run
		want float64
	}{
		{"recorded root capacity", mkRun("webrtc-50", func(r *run) { r.Peers, r.RootCapacity = 50, 8 }), 0.84},
		{"older runs: banyan up's 4", mkRun("webrtc-50", func(r *run) { r.Peers = 50 }), 0.92},
	}
	for _, tt := range tests {
		if got := ceiling(tt.r); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("%s: ceiling %v, want %v", tt.name, got, tt.want)
		}
	}
}
