package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// timerProbeJS counts a setInterval(100) in the page and its longest gap,
// so the test sees whether the browser really throttles the hidden page.
const timerProbeJS = `(() => { const w = window; w.__ticks = 0; w.__gap = 0; let last = performance.now();
	setInterval(() => { const n = performance.now(); w.__gap = Math.max(w.__gap, n - last); last = n; w.__ticks++; }, 100); return true; })()`

type timerProbe struct {
	Visibility string  `json:"visibility"`
	Ticks      float64 `json:"ticks"`
	MaxGapMS   float64 `json:"gap"`
}

// readTimers reads and resets the timer probe.
func readTimers(t *testing.T, vctx context.Context) timerProbe {
	t.Helper()
	p, err := chromedp.Run(vctx, chromedp.Evaluate[timerProbe](`(() => { const w = window;
		const r = {visibility: document.visibilityState, ticks: w.__ticks, gap: w.__gap}; w.__ticks = 0; w.__gap = 0; return r; })()`))
	if err != nil {
		t.Fatalf("timer probe: %v", err)
	}
	return p
}

// TestHiddenViewerRelays: a Chromium viewer that relays to native peers
// keeps feeding them while its tab is hidden (timers throttled to once a
// second), and on return plays at the live edge again without a reload
// (issue 22, defect 9).
func TestHiddenViewerRelays(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the hidden-tab relay test in -short mode")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	// BANYAN_HIDDEN_FOR (a duration) holds the tab hidden longer: past 5
	// minutes Chromium throttles chained timers to once a minute.
	hiddenFor := 25 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BANYAN_HIDDEN_FOR")); err == nil {
		hiddenFor = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), hiddenFor+4*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	// Root capacity 1, one stripe: the seeder's root peer feeds the first
	// viewer (the browser) only, so children must hang below it.
	up := startUp(t, t.TempDir(), "--ice-loopback", "--root-capacity", "1", "--stripes", "1")
	url, key := up.rtmpURL(t)
	ff := publish(ctx, ffmpeg, url+"/"+key, int(hiddenFor.Seconds())+150)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	ffDone := make(chan error, 1)
	go func() { ffDone <- ff.Wait() }()
	defer func() { ff.Process.Kill(); <-ffDone }()

	vctx := openViewer(t, bctx, up.base+"/watch/demo")
	waitViewer(t, vctx, "the browser viewer live", 60*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })

	// Leaves (no upload) so that each one's parent is the browser, not
	// another native peer.
	const nChildren = 2
	var kids []*peerProc
	for range nChildren {
		kids = append(kids, startPeer(t, up.base, "--no-upload"))
	}
	waitViewer(t, vctx, fmt.Sprintf("the browser viewer relaying to %d children", nChildren), 60*time.Second, func(p viewerProbe) bool {
		return p.Stats != nil && p.Stats.Children >= nChildren
	})
	before := probe(t, vctx)
	t.Logf("before hiding: children %.0f, parents %.0f (%s), behind %.0f ms", before.Stats.Children, before.Stats.Parents, before.Stats.Paths, before.Stats.BehindMs)

	if _, err := chromedp.Run(vctx, chromedp.Evaluate[bool](timerProbeJS)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	visible := readTimers(t, vctx)
	hiddenAt := time.Now()
	show := e2e.HideTab(t, vctx)
	for time.Since(hiddenAt) < hiddenFor {
		time.Sleep(min(10*time.Second, hiddenFor-time.Since(hiddenAt)))
		p := probe(t, vctx)
		if p.Stats != nil {
			t.Logf("hidden %3.0f s: state %s, time %.1f s, children %.0f, buffer %.0f ms, behind %.0f ms",
				time.Since(hiddenAt).Seconds(), p.State, p.Time, p.Stats.Children, p.Stats.BufferMs, p.Stats.BehindMs)
		}
		for i, k := range kids {
			select {
			case err := <-k.done:
				t.Fatalf("child %d left while the tab was hidden (%v): %s", i, err, k.errb.String())
			default:
			}
		}
	}
	hidden := readTimers(t, vctx)
	elapsed := time.Since(hiddenAt)
	t.Logf("timers: visible %.0f ticks of setInterval(100) in 2 s (longest gap %.0f ms); hidden %.0f ticks in %.1f s (longest gap %.0f ms)",
		visible.Ticks, visible.MaxGapMS, hidden.Ticks, elapsed.Seconds(), hidden.MaxGapMS)
	if hidden.Visibility != "hidden" {
		t.Fatalf("the page reports %q behind another tab: the test hides nothing", hidden.Visibility)
	}
	// Unthrottled, setInterval(100) fires ~10 times a second; Chromium
	// aligns a hidden page's timers to whole seconds. If it fired more
	// than 3 a second the test would not be testing a throttled tab.
	if hidden.Ticks > 3*elapsed.Seconds() {
		t.Fatalf("hidden page timers fired %.0f times in %.1f s: not throttled", hidden.Ticks, elapsed.Seconds())
	}
	// The children leave while the page is still hidden: their summaries
	// cover their join (just before hiding) and the hidden period.
	for _, k := range kids {
		k.cmd.Process.Signal(syscall.SIGTERM)
	}
	starved := 0
	for i, k := range kids {
		s := k.summary(t)
		moved := 0
		for _, c := range s.ParentChanges {
			if c.At.After(hiddenAt) {
				moved++
			}
		}
		t.Logf("child %d: played %d chunks; from viewers %d B, seeder %d B, origin %d B; stalls %d (%d ms of %d ms watched); repaired %d; parent changes while hidden %d (%+v)",
			i, s.ChunksPlayed, s.From.Viewers, s.From.Seeder, s.From.Origin, s.Stalls, s.StalledMS, s.WatchedMS, s.Repaired, moved, s.ParentChanges)
		// The browser is the only viewer: bytes from viewers are its.
		if s.From.Viewers <= s.From.Origin+s.From.Seeder {
			t.Errorf("child %d got most of its stream from the origin/seeder, not the hidden browser", i)
			starved++
		}
		if s.Stalls > 0 || moved > 0 {
			starved++
		}
	}
	if starved > 0 {
		t.Errorf("%d children starved (stalled, left the browser, or fed by the origin) while the browser tab was hidden", starved)
	}

	// Shown again: playback moves on and stands within a few seconds of
	// live, without a reload.
	show()
	if v := readTimers(t, vctx); v.Visibility != "visible" {
		t.Fatalf("the page reports %q after coming to the front", v.Visibility)
	}
	back := probe(t, vctx)
	got := waitViewer(t, vctx, "the viewer playing near live after the tab came back", 60*time.Second, func(p viewerProbe) bool {
		return p.State == "live" && p.Time > back.Time+3 && p.Stats != nil && p.Stats.BehindMs < 5000
	})
	t.Logf("shown again: time %.1f → %.1f s, behind live %.0f ms, stalls %.0f, rebuilds %.0f", back.Time, got.Time, got.Stats.BehindMs, got.Stats.Stalls, got.Stats.Rebuilds)
}
