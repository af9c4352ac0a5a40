package main

import (
	"fmt"
	"io"
	"regexp"
	"sort"
)

// gopLabel names the keyframe-interval sweep's runs: mesh-1k-gop1s,
// mesh-1k-gop8s, … (bench/results/commands.txt).
var gopLabel = regexp.MustCompile(`-gop[0-9]+(\.[0-9]+)?m?s$`)

// gopSweep is a run of the keyframe-interval sweep: labelled as one and
// with its GOP recorded (runs before gop_ms existed have none).
func gopSweep(r run) bool { return gopLabel.MatchString(r.Label) && r.GOPms > 0 }

// defaultGOP: the run's stream had the model's default 1 s keyframe
// interval (runs before gop_ms was recorded all did).
func defaultGOP(r run) bool { return r.GOPms == 0 || r.GOPms == 1000 }

// writeGOP puts the keyframe-interval sweep side by side, shortest GOP
// first: what a joiner fetches before it plays and how far behind live it
// starts, against offload and stalls.
func writeGOP(w io.Writer, runs []run) {
	var g []run
	for _, r := range runs {
		if gopSweep(r) {
			g = append(g, r)
		}
	}
	if len(g) == 0 {
		return
	}
	sort.SliceStable(g, func(i, j int) bool {
		if g[i].Peers != g[j].Peers {
			return g[i].Peers < g[j].Peers
		}
		return g[i].GOPms < g[j].GOPms
	})
	fmt.Fprintf(w, "\n## Keyframe interval (GOP)\n\nA joiner starts playing at the newest keyframe: the longer the GOP, the more it fetches before it plays and the further behind live it starts. The engines' window is max(3 s, GOP + 1 s) so their parents still hold that keyframe. Join kB = received (peers and origin, duplicates included) from join to the first chunk played; origin = the origin's part (share: of all viewers' join bytes); catch-up kB = received from join until the first chunk published after playback started is played; start behind = age of the first chunk played when it plays.\n\n")
	fmt.Fprintf(w, "| run | revision | GOP s | window s | offload | stall ratio | join p50/p95 ms | join kB p50/p95 | join origin kB p50/p95 (share) | catch-up kB p50/p95 | start behind p50/p95 ms | origin GB | duplicates |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range g {
		fmt.Fprintf(w, "| %s | %s | %g | %g | %s | %.6f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f (%s) | %.0f / %.0f | %.0f / %.0f | %.2f | %s |\n",
			r.Label, rev(r), float64(r.GOPms)/1000, float64(r.WindowMs)/1000, pct(r.Offload, 2), r.StallRatio,
			r.JoinP50ms, r.JoinP95ms, kB(r.JoinBytesP50), kB(r.JoinBytesP95), kB(r.JoinOriginBytesP50), kB(r.JoinOriginBytesP95),
			pct(r.JoinOriginShare, 1), kB(r.CatchupBytesP50), kB(r.CatchupBytesP95), r.StartBehindP50ms, r.StartBehindP95ms,
			gb(r.OriginBytes), pct(r.DuplicateShare, 2))
	}
}

func kB(b uint64) float64 { return float64(b) / 1e3 }
