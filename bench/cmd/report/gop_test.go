package main

import (
	"strings"
	"testing"

	"github.com/banyan-live/banyan/overlay"
)

func TestGOPTable(t *testing.T) {
	gop := func(label string, ms, win int64, f func(*run)) run {
		return mkRun(label, func(r *run) {
			r.GOPms, r.WindowMs = ms, win
			if f != nil {
				f(r)
			}
		})
	}
	runs := []run{
		mkRun("mesh-1k", func(r *run) { r.GOPms, r.WindowMs = 1000, 3000 }),
		gop("mesh-1k-gop8s", 8000, 9000, func(r *run) {
			r.Offload, r.StallRatio, r.JoinP50ms, r.JoinP95ms = 0.9706, 0.000155, 956, 1553
			r.JoinBytesP50, r.JoinBytesP95, r.JoinOriginBytesP50, r.JoinOriginBytesP95, r.JoinOriginShare = 508705, 1556814, 0, 700000, 0.192
			r.CatchupBytesP50, r.CatchupBytesP95, r.StartBehindP50ms, r.StartBehindP95ms = 2176120, 3000000, 4090, 8286
			r.OriginBytes, r.DuplicateShare, r.Revision = 386168440, 0.0468, "688d7e6861fe"
		}),
		gop("mesh-1k-gop1s", 1000, 3000, func(r *run) { r.Offload = 0.9805 }),
		gop("mesh-1k-gop2s", 2000, 3000, nil),
		gop("exp-mesh-1k-gop500ms", 500, 3000, nil),
		mkRun("mesh-1k-gop4s", nil), // no gop_ms: from before the field, left out
	}
	var b strings.Builder
	writeGOP(&b, runs)
	out := b.String()
	want := "| mesh-1k-gop8s | 688d7e6861fe | 8 | 9 | 97.06 % | 0.000155 | 956 / 1553 | 509 / 1557 | 0 / 700 (19.2 %) | 2176 / 3000 | 4090 / 8286 | 0.39 | 4.68 % |"
	if !strings.Contains(out, want) {
		t.Errorf("no row %q:\n%s", want, out)
	}
	var order []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, " | "); strings.HasPrefix(l, "| ") && len(f) > 1 && f[0] != "| run" && !strings.HasPrefix(l, "|---") {
			order = append(order, strings.TrimPrefix(f[0], "| "))
		}
	}
	if got := strings.Join(order, ","); got != "exp-mesh-1k-gop500ms,mesh-1k-gop1s,mesh-1k-gop2s,mesh-1k-gop8s" {
		t.Errorf("rows %s, want the sweep by GOP (not mesh-1k, not a run without gop_ms)", got)
	}
	b.Reset()
	writeGOP(&b, runs[:1])
	if b.Len() != 0 {
		t.Errorf("no sweep, yet a table:\n%s", b.String())
	}
}

func TestGOPBaseline(t *testing.T) {
	tests := []struct {
		name     string
		r        run
		baseline bool
	}{
		{"the reference run, GOP recorded", mkRun("mesh-1k", func(r *run) { r.GOPms = 1000 }), true},
		{"a sweep run at 8 s", mkRun("mesh-1k-gop8s", func(r *run) { r.GOPms = 8000 }), false},
		{"the sweep's 1 s run repeats mesh-1k", mkRun("mesh-1k-gop1s", func(r *run) { r.GOPms = 1000 }), false},
		{"a long GOP under another name", mkRun("mesh-1k-long", func(r *run) { r.GOPms = 4000 }), false},
	}
	for _, tt := range tests {
		if got := baseline(tt.r); got != tt.baseline {
			t.Errorf("%s: baseline = %v, want %v", tt.name, got, tt.baseline)
		}
	}
}

// TestGOPOutOfTargets: the sweep's runs make no rows in issue 16's targets
// (the K comparison, duplicates): those are for the 1 s reference stream.
func TestGOPOutOfTargets(t *testing.T) {
	k2 := mkRun("mesh-1k-k2", func(r *run) { r.Stripes, r.Offload, r.DuplicateShare = 2, 0.98, 0.01 })
	k4 := mkRun("mesh-1k", func(r *run) {
		r.Stripes, r.Offload, r.DuplicateShare, r.GOPms = overlay.DefaultStripes, 0.98, 0.01, 1000
	})
	g8 := mkRun("mesh-1k-gop8s", func(r *run) {
		r.Stripes, r.Offload, r.DuplicateShare, r.GOPms = overlay.DefaultStripes, 0.97, 0.05, 8000
	})
	g1 := mkRun("mesh-1k-gop1s", func(r *run) {
		r.Stripes, r.Offload, r.DuplicateShare, r.GOPms = overlay.DefaultStripes, 0.98, 0.01, 1000
	})
	var b strings.Builder
	writeShippedTargets(&b, []run{k2, k4, g8, g1}, nil)
	out := b.String()
	if strings.Contains(out, "gop") {
		t.Errorf("GOP sweep runs in the targets:\n%s", out)
	}
	if !strings.Contains(out, "| duplicate bytes ≤ 2 % of peer bytes | mesh-1k |") {
		t.Errorf("the reference run's rows are gone:\n%s", out)
	}
}
