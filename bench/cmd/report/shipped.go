package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/banyan-live/banyan/bench"
	"github.com/banyan-live/banyan/overlay"
)

// shipped is a run of the engine every viewer runs: the mem model with
// its own uplink mix, default timings, no headroom or upload scale set by
// the benchmark, and not an experiment (label exp-*).
func shipped(r run) bool {
	return r.Transport == bench.TransportMem && r.Mode == bench.ModeMesh && engine(r.Engine) == "default" &&
		(r.UploadScale == 0 || r.UploadScale == 1) && r.Headroom == 0 && !strings.HasPrefix(r.Label, "exp-")
}

// baseline is a shipped run at issue 16's reference point: the default K,
// 3 Mbit/s, the model's uplink mix, abrupt churn, a 1 s GOP, and not one
// of the GOP sweep (its own table; its 1 s run repeats mesh-1k).
func baseline(r run) bool {
	return shipped(r) && r.Stripes == overlay.DefaultStripes && r.BitrateBps == 3e6 && defaultMix(r) && r.ChurnMode != bench.ChurnClean &&
		defaultGOP(r) && !gopSweep(r)
}

func defaultMix(r run) bool { return r.NoUploadPct == 0 || r.NoUploadPct == bench.DefaultNoUploadPct }

// ceiling is the highest offload a run can reach: the seeder feeds its
// root children every stripe whatever the mesh does.
func ceiling(r run) float64 {
	rc := r.RootCapacity
	if rc == 0 {
		rc = 4 // runs before root_capacity was recorded: banyan up's default then
	}
	return 1 - float64(rc)/float64(r.Peers)
}

// churnShare is the run's churn as a share of its audience per minute.
func churnShare(r run) float64 { return r.ChurnPerMin / float64(r.Peers) }

func near(v, want float64) bool { return v > want-0.005 && v < want+0.005 }

// worstDepthP95 is the highest publish → play p95 over the tree's depths,
// and the depth where it is.
func worstDepthP95(r run) (float64, int) {
	worst, at := 0.0, 0
	for k, v := range r.LatencyP95msByDepth {
		d, err := strconv.Atoi(k)
		if err == nil && v > worst {
			worst, at = v, d
		}
	}
	return worst, at
}

// writeShippedTargets compares the shipped-default runs with issue 16's
// targets; prev holds earlier results (the webrtc baseline).
func writeShippedTargets(w io.Writer, runs, prev []run) {
	fmt.Fprintf(w, "## Targets (issue 16: the shipped defaults)\n\n")
	fmt.Fprintf(w, "Only runs of the engine that ships (default timings, the tracker's own slots, the model's uplink mix; no `exp-` label). Revision is the commit the benchmark binary was built from.\n\n")
	fmt.Fprintf(w, "| target | run | revision | measured | met |\n|---|---|---|---|---|\n")
	row := func(target string, r run, measured string, ok bool) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", target, r.Label, rev(r), measured, yes(ok))
	}
	var base, all []run
	for _, r := range runs {
		// The GOP sweep has its own table (writeGOP): targets are for the
		// reference stream's 1 s GOP.
		if shipped(r) && defaultGOP(r) && !gopSweep(r) {
			all = append(all, r)
			if baseline(r) {
				base = append(base, r)
			}
		}
	}
	sort.SliceStable(base, func(i, j int) bool { return base[i].Peers > base[j].Peers })
	churn10 := func(r run) bool { return near(churnShare(r), 0.10) && r.Kill == 0 }
	for _, r := range base {
		if !churn10(r) {
			continue
		}
		scale := "10k and 100k"
		if r.Peers < 10000 {
			scale = "at " + strconv.Itoa(r.Peers/1000) + "k (a reference: the target is for 10k and 100k)"
		}
		row("offload ≥ 99.0 %, 10 %/min churn, "+scale, r, fmt.Sprintf("%s (after the ramp %s)", pct(r.Offload, 2), pct(r.OffloadAfterRamp, 2)), r.Offload >= 0.99)
		row("stall ratio ≤ 0.0005, "+scale, r, fmt.Sprintf("%.6f (%d viewers stalled)", r.StallRatio, r.StalledPeers), r.StallRatio <= 0.0005)
		worst, at := worstDepthP95(r)
		row("publish → play p95 ≤ 1.5 s at every depth, "+scale, r, fmt.Sprintf("worst %.0f ms at depth %d (all %.0f ms; behind live p95 %.0f ms)", worst, at, r.LatencyP95ms, r.BehindLiveP95ms), worst <= 1500)
		join := r.JoinLateP95ms
		if join == 0 {
			join = r.JoinP95ms
		}
		row("join p95 ≤ 1.5 s, "+scale, r, fmt.Sprintf("%.0f ms after the ramp (ramp joiners included %.0f ms)", join, r.JoinP95ms), join <= 1500)
	}
	// K = 4 against K = 2 at the same audience, seed, churn and bitrate.
	for _, r4 := range all {
		if r4.Stripes != 4 || r4.BitrateBps != 3e6 || !defaultMix(r4) {
			continue
		}
		for _, r2 := range all {
			if r2.Stripes == 2 && r2.BitrateBps == r4.BitrateBps && defaultMix(r2) && r2.Peers == r4.Peers && r2.Seed == r4.Seed && r2.ChurnPerMin == r4.ChurnPerMin && r2.Kill == r4.Kill && r2.DurationS == r4.DurationS {
				row("K = 4 no worse than K = 2 (offload, stalls)", r4,
					fmt.Sprintf("K=4 %s, stall %.6f; K=2 (%s) %s, stall %.6f", pct(r4.Offload, 2), r4.StallRatio, r2.Label, pct(r2.Offload, 2), r2.StallRatio),
					r4.Offload >= r2.Offload-0.001 && r4.StallRatio <= r2.StallRatio+0.0001)
			}
		}
	}
	for _, r := range all {
		if r.BitrateBps == 6e6 && defaultMix(r) && r.Kill == 0 {
			row(fmt.Sprintf("6 Mbit/s: offload ≥ 97 %%, stall ratio ≤ 0.001 (K = %d)", r.Stripes), r, fmt.Sprintf("%s, stall %.6f", pct(r.Offload, 2), r.StallRatio), r.Offload >= 0.97 && r.StallRatio <= 0.001)
		}
	}
	for _, r := range base {
		if near(churnShare(r), 0.30) && r.Kill == 0 {
			row("30 %/min churn: offload ≥ 97 %", r, fmt.Sprintf("%s, stall %.6f", pct(r.Offload, 2), r.StallRatio), r.Offload >= 0.97)
		}
	}
	for _, r := range base {
		if r.Kill >= 0.3 {
			row("30 % killed at once: ≥ 99.5 % of survivors stall-free, re-parent p95 ≤ 1 s", r,
				fmt.Sprintf("%s of %d stall-free; re-parent p95 %.0f ms (detect p95 %.0f ms)", pct(r.KillStallFree, 2), r.KillSurvivors, r.ReparentP95ms, r.DetectP95ms),
				r.KillStallFree >= 0.995 && r.ReparentP95ms <= 1000)
		}
	}
	for _, r := range all {
		row("duplicate bytes ≤ 2 % of peer bytes", r, pct(r.DuplicateShare, 2), r.DuplicateShare <= 0.02)
	}
	for _, r := range all {
		if r.NoUploadPct > bench.DefaultNoUploadPct {
			// No collapse: the mesh still carries most bytes and nobody
			// stalls for long. The issue asks for figures; this is the line
			// drawn under them.
			row(fmt.Sprintf("harsher mix (%d %% cannot upload): figures, no collapse (stall ≤ 0.001, offload ≥ 80 %%)", r.NoUploadPct), r,
				fmt.Sprintf("%s, stall %.6f", pct(r.Offload, 2), r.StallRatio), r.StallRatio <= 0.001 && r.Offload >= 0.8)
		}
	}
	for _, r := range runs {
		if r.Transport != bench.TransportWebRTC {
			continue
		}
		i := slices.IndexFunc(prev, func(p run) bool { return p.Transport == bench.TransportWebRTC && p.Peers == r.Peers })
		if i < 0 {
			row(fmt.Sprintf("webrtc at %d peers: no regression", r.Peers), r,
				fmt.Sprintf("%s, hop p50 %.1f ms (no earlier run at %d peers to compare)", pct(r.Offload, 2), r.HopLatencyP50ms, r.Peers), false)
			continue
		}
		// Offload is judged against each run's ceiling: a seeder feeding
		// more root children (root capacity 8 since 2026-12-04, 4 before)
		// leaves the mesh less to carry at 30–50 peers.
		p := prev[i]
		rs, ps := r.Offload/ceiling(r), p.Offload/ceiling(p)
		row(fmt.Sprintf("webrtc at %d peers: no regression in offload or hop latency", r.Peers), r,
			fmt.Sprintf("%s (%s of its ceiling %s), hop p50 %.1f ms; before (%s, %s) %s (%s of %s), hop p50 %.1f ms",
				pct(r.Offload, 2), pct(rs, 1), pct(ceiling(r), 1), r.HopLatencyP50ms, p.Label, rev(p), pct(p.Offload, 2), pct(ps, 1), pct(ceiling(p), 1), p.HopLatencyP50ms),
			rs >= ps-0.01 && r.HopLatencyP50ms <= p.HopLatencyP50ms*1.2)
	}
}

// writeNetns puts each network-namespace run beside the model's run at
// the same audience and root capacity (labels netns-N-limited-rcC and
// mem-N-rcC).
func writeNetns(w io.Writer, runs []run) {
	var ns []run
	for _, r := range runs {
		if r.Transport == bench.TransportNetns {
			ns = append(ns, r)
		}
	}
	if len(ns) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Real links beside the model\n\nNative `banyan peer`s in network namespaces, uplinks limited with `tc tbf` to draws from the model's mix (or unlimited), against the mem model at the same N and root capacity.\n\n")
	fmt.Fprintf(w, "| run | revision | peers | offload | stall ratio | origin GB | model run | model offload | model stall |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range ns {
		model := "–"
		mo, ms := "–", "–"
		rc := r.Label[strings.LastIndex(r.Label, "-")+1:]
		want := fmt.Sprintf("mem-%d-%s", r.Peers, rc)
		if i := slices.IndexFunc(runs, func(m run) bool { return m.Label == want }); i >= 0 {
			model, mo, ms = want, pct(runs[i].Offload, 1), fmt.Sprintf("%.4f", runs[i].StallRatio)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.4f | %.2f | %s | %s | %s |\n", r.Label, rev(r), r.Peers, pct(r.Offload, 1), r.StallRatio, gb(r.OriginBytes), model, mo, ms)
	}
}

func rev(r run) string {
	if r.Revision == "" {
		return "–"
	}
	return r.Revision
}
