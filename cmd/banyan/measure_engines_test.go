package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestMeasureEngineJoins opens the watch page BANYAN_MEASURE_JOINS times
// (default 5) in each engine, one viewer at a time on a quiet stream, and
// reports per engine: page load → first frame, the player's start → first
// frame (join), and behind live after 8 s of playback. Chromium gets a
// fresh browser context (cold cache) per join; Firefox and WebKit reuse
// their tab, so their later joins have the wasm in the HTTP cache.
//
//	BANYAN_MEASURE=1 go test ./cmd/banyan -run MeasureEngineJoins -v
func TestMeasureEngineJoins(t *testing.T) {
	measuring(t)
	n := 5
	if v, err := strconv.Atoi(os.Getenv("BANYAN_MEASURE_JOINS")); err == nil && v > 0 {
		n = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	ff := e2e.StartFirefox(t, ctx)
	wk := e2e.StartWebKit(t, ctx)
	up := liveDemo(t, ctx, 600, "--root-capacity", "4", "--stripes", "2")
	watch := up.base + "/watch/demo"
	time.Sleep(2 * time.Second)

	open := map[string]func() (enginePage, func()){
		"chromium": func() (enginePage, func()) {
			tab, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
			if _, err := chromedp.Run(tab, chromedp.Navigate(watch)); err != nil {
				t.Fatal(err)
			}
			return chromiumPage{tab}, cancel
		},
		"firefox": func() (enginePage, func()) {
			if err := ff.Navigate(ctx, watch); err != nil {
				t.Fatal(err)
			}
			return ff, func() { _ = ff.Navigate(ctx, "about:blank") }
		},
		"webkit": func() (enginePage, func()) {
			if err := wk.Navigate(ctx, watch); err != nil {
				t.Fatal(err)
			}
			return wk, func() { _ = wk.Navigate(ctx, "about:blank") }
		},
	}
	type figures struct{ first, join, behind []float64 }
	pct := func(s []float64, q float64) float64 {
		s = slices.Clone(s)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	for _, name := range []string{"chromium", "firefox", "webkit"} {
		var f figures
		for i := 0; i < n; i++ {
			pg, done := open[name]()
			waitPage(t, ctx, pg, "banyan-player", name+" first frame", 60*time.Second, func(fp firefoxProbe) bool {
				return fp.State == "live" && fp.Stats != nil && fp.Stats.FirstMS > 0
			})
			var join float64
			if err := pg.Eval(ctx, `document.querySelector('banyan-player').stats.joinMs`, &join); err != nil {
				t.Fatal(err)
			}
			time.Sleep(8 * time.Second)
			fp := probePage(t, ctx, pg, "banyan-player")
			f.first = append(f.first, fp.Stats.FirstMS)
			f.join = append(f.join, join)
			f.behind = append(f.behind, fp.Stats.BehindMs)
			done()
		}
		t.Logf("figures %s, %d joins: page load → first frame p50 %.0f ms p95 %.0f ms; player start → first frame p50 %.0f ms p95 %.0f ms; behind live p50 %.0f ms p95 %.0f ms (all: %v / %v / %v)",
			name, n, pct(f.first, .5), pct(f.first, .95), pct(f.join, .5), pct(f.join, .95), pct(f.behind, .5), pct(f.behind, .95), f.first, f.join, f.behind)
	}
	up.stop(t, os.Interrupt)
}
