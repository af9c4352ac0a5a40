package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestScreenshots takes the screenshots of docs/screenshots: the watch page
// and the dashboard with three browser viewers and one native relay edge.
// It is a documentation tool, not a check, so it runs only when asked:
//
//	BANYAN_SCREENSHOTS=docs/screenshots BANYAN_SCREENSHOT_PREFIX=after \
//	  go test ./cmd/banyan -run TestScreenshots -v
//
// BANYAN_SCREENSHOT_BIN runs another banyan binary (an older build, for the
// "before" pictures) instead of this package's.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("BANYAN_SCREENSHOTS")
	if dir == "" {
		t.Skip("set BANYAN_SCREENSHOTS=DIR to take the documentation screenshots")
	}
	dir, _ = filepath.Abs(dir)
	t.Setenv("BANYAN_ARTIFACTS", dir)
	prefix := os.Getenv("BANYAN_SCREENSHOT_PREFIX")
	if prefix == "" {
		prefix = "after"
	}
	if bin := os.Getenv("BANYAN_SCREENSHOT_BIN"); bin != "" {
		old := banyanBin
		banyanBin, _ = filepath.Abs(bin)
		defer func() { banyanBin = old }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 150, "--root-capacity", "2", "--stripes", "2")
	startPeer(t, up.base, "--relay", "--capacity-mbps", "20", "--region", "eu-west", "--duration", "120s")
	time.Sleep(2 * time.Second)

	bctx := browser(t, ctx, chromedp.WindowSize(1280, 1000))
	var viewers []context.Context
	for i := range 3 {
		v := openViewer(t, bctx, up.base+"/watch/demo")
		waitViewer(t, v, fmt.Sprintf("viewer %d live", i), 60*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
		viewers = append(viewers, v)
	}
	time.Sleep(10 * time.Second) // counters and charts fill
	shot, err := chromedp.Run(viewers[2], chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	e2e.SaveArtifact(t, prefix+"-watch.png", shot)

	dctx, dcancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	defer dcancel()
	if err := chromedp.Do(dctx,
		chromedp.Navigate(up.base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), up.adminToken(t)),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS("#topo")),
	); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	// Hover the edge's glyph where the page supports it (the tooltip).
	_, _ = chromedp.Run(dctx, chromedp.Evaluate[bool](`(() => { const d = window.banyanDash; if (!d || !d.hits) return false;
		const c = document.querySelector('#topo'), b = c.getBoundingClientRect(), h = d.hits().find((h) => h.id > 0);
		if (h) c.dispatchEvent(new MouseEvent('mousemove', {clientX: b.left + h.x, clientY: b.top + h.y, bubbles: true}));
		return !!h; })()`))
	shot, err = chromedp.Run(dctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	e2e.SaveArtifact(t, prefix+"-dashboard.png", shot)
}
