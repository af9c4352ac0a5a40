package main

import (
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestMeasureEngineJoins opens the watch page BANYAN_MEASURE_JOINS times
// (default 5) in each engine, one viewer at a time on a quiet stream, and
// reports per engine: page load → first frame, the player's start → first
// frame (join), behind live after 8 s of playback, and the join timeline
// (stats.phases: each step in ms since navigation, median over the joins).
// Chromium gets a fresh browser context (cold cache) per join; Firefox and
// WebKit reuse their tab, so their later joins have the wasm in the HTTP
// cache.
//
// BANYAN_MEASURE_TENTH=1 measures the 10th concurrent viewer instead: nine
// viewers join one after the other and keep watching (native peers, or
// Chromium tabs with BANYAN_MEASURE_CROWD=chromium), then the engine's
// viewer joins as the 10th; each round starts a fresh stream.
// BANYAN_MEASURE_ENGINES (default "chromium,firefox,webkit") picks engines.
//
//	BANYAN_MEASURE=1 go test ./cmd/banyan -run MeasureEngineJoins -v
func TestMeasureEngineJoins(t *testing.T) {
	measuring(t)
	n := 5
	if v, err := strconv.Atoi(os.Getenv("BANYAN_MEASURE_JOINS")); err == nil && v > 0 {
		n = v
	}
	engines := strings.Split(cmp.Or(os.Getenv("BANYAN_MEASURE_ENGINES"), "chromium,firefox,webkit"), ",")
	tenth := os.Getenv("BANYAN_MEASURE_TENTH") == "1"
	// The crowd before the 10th: native peers (banyan peer, default), or
	// Chromium viewers with BANYAN_MEASURE_CROWD=chromium (nine decoding
	// tabs saturate this 2-core machine: load ~17, 10.5 s to the 10th's
	// first frame, a figure of the machine rather than the join).
	crowdBrowsers := os.Getenv("BANYAN_MEASURE_CROWD") == "chromium"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	var ff *e2e.Firefox
	var wk *e2e.WebKit
	if slices.Contains(engines, "firefox") {
		ff = e2e.StartFirefox(t, ctx)
	}
	if slices.Contains(engines, "webkit") {
		wk = e2e.StartWebKit(t, ctx)
	}
	stream := func() (*upProc, string) {
		up := liveDemo(t, ctx, 600, "--root-capacity", "4", "--stripes", "2")
		time.Sleep(2 * time.Second)
		return up, up.base + "/watch/demo"
	}
	var up *upProc
	var watch string
	if !tenth {
		up, watch = stream()
	}

	open := map[string]func(url string) (enginePage, func()){
		"chromium": func(url string) (enginePage, func()) {
			tab, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
			if _, err := chromedp.Run(tab, chromedp.Navigate(url)); err != nil {
				t.Fatal(err)
			}
			return chromiumPage{Tab: tab}, cancel
		},
		"firefox": func(url string) (enginePage, func()) {
			if err := ff.Navigate(ctx, url); err != nil {
				t.Fatal(err)
			}
			return ff, func() { _ = ff.Navigate(ctx, "about:blank") }
		},
		"webkit": func(url string) (enginePage, func()) {
			if err := wk.Navigate(ctx, url); err != nil {
				t.Fatal(err)
			}
			return wk, func() { _ = wk.Navigate(ctx, "about:blank") }
		},
	}
	firstFrame := func(pg enginePage, what string) {
		waitPage(t, ctx, pg, "banyan-player", what, 60*time.Second, func(fp firefoxProbe) bool {
			return fp.State == "live" && fp.Stats != nil && fp.Stats.FirstMS > 0
		})
	}
	type figures struct {
		first, join, behind []float64
		phases              map[string][]float64
	}
	pct := func(s []float64, q float64) float64 {
		s = slices.Clone(s)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	for _, name := range engines {
		f := figures{phases: make(map[string][]float64)}
		for i := 0; i < n; i++ {
			var crowd []func()
			if tenth {
				up, watch = stream()
				for j := 0; j < 9; j++ {
					if crowdBrowsers {
						pg, done := open["chromium"](watch)
						crowd = append(crowd, done)
						firstFrame(pg, "crowd viewer "+strconv.Itoa(j)+" first frame")
						continue
					}
					p := startPeer(t, up.base, "--duration", "120s", "--log-level", "warn")
					crowd = append(crowd, func() { p.cmd.Process.Kill() })
					time.Sleep(300 * time.Millisecond)
				}
				time.Sleep(3 * time.Second) // the crowd placed and fed
			}
			pg, done := open[name](watch)
			firstFrame(pg, name+" first frame")
			var join float64
			if err := pg.Eval(ctx, `document.querySelector('banyan-player').stats.joinMs`, &join); err != nil {
				t.Fatal(err)
			}
			time.Sleep(8 * time.Second)
			fp := probePage(t, ctx, pg, "banyan-player")
			var ph map[string]float64
			if err := pg.Eval(ctx, `document.querySelector('banyan-player').stats.phases`, &ph); err != nil {
				t.Fatal(err)
			}
			// The browser's own timing of the first origin requests: when
			// each was issued, answered, done (ms since navigation).
			var res string
			if err := pg.Eval(ctx, `performance.getEntriesByType('resource').filter(e => e.name.includes('/chunks/')).slice(0, 4)
				.map(e => e.name.replace(/^.*\/chunks\/[^/]+\//, '') + ' ' + [e.startTime, e.responseStart, e.responseEnd].map(Math.round).join('/')).join(', ')`, &res); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s join %d: %s; origin requests (issued/answered/done): %s (load %s)", name, i, timeline(ph), res, loadAvg())
			for k, v := range ph {
				f.phases[k] = append(f.phases[k], v)
			}
			f.first = append(f.first, fp.Stats.FirstMS)
			f.join = append(f.join, join)
			f.behind = append(f.behind, fp.Stats.BehindMs)
			done()
			for _, d := range crowd {
				d()
			}
			if tenth {
				up.stop(t, os.Interrupt)
			}
		}
		med := make(map[string]float64, len(f.phases))
		for k, v := range f.phases {
			med[k] = pct(v, .5)
		}
		which := "first viewer"
		if tenth {
			which = "10th concurrent viewer"
		}
		t.Logf("figures %s, %s, %d joins (load %s): page load → first frame p50 %.0f ms p95 %.0f ms; player start → first frame p50 %.0f ms p95 %.0f ms; behind live p50 %.0f ms p95 %.0f ms (all: %v / %v / %v); timeline medians: %s",
			name, which, n, loadAvg(), pct(f.first, .5), pct(f.first, .95), pct(f.join, .5), pct(f.join, .95), pct(f.behind, .5), pct(f.behind, .95), f.first, f.join, f.behind, timeline(med))
	}
	if !tenth {
		up.stop(t, os.Interrupt)
	}
}

// timeline writes a join timeline in time order: "start 35, compiled 240, …".
func timeline(ph map[string]float64) string {
	keys := make([]string, 0, len(ph))
	for k := range ph {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(ph[a], ph[b]), strings.Compare(a, b)) })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + " " + strconv.FormatFloat(ph[k], 'f', 0, 64))
	}
	return b.String()
}

// loadAvg is the machine's 1-minute load average, reported with figures
// (the machine is shared).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
