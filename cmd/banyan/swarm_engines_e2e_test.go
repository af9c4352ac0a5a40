package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// engineViewer is one engine's tab on the watch page.
type engineViewer struct {
	name string
	page enginePage
	// resize sets the viewport (Chromium, Firefox) or the window (WebKit,
	// whose MiniBrowser window is at least 447 px wide) to w×h.
	resize func(ctx context.Context, w, h int) error
}

// phoneProbe is what the phone-width check reads of a page: the stats
// panel's labels, what the state row and the badge say, and whether
// anything is wider than the viewport.
type phoneProbe struct {
	Inner    int      `json:"inner"`
	Scroll   int      `json:"scroll"`
	Player   float64  `json:"player"`
	Labels   []string `json:"labels"`
	State    string   `json:"state"`
	Badge    string   `json:"badge"`
	Phone    bool     `json:"phone"` // the ≤ 480 px style is in force
	Overflow []string `json:"overflow"`
}

const phoneProbeJS = `(() => { const p = document.querySelector('banyan-player'), r = p.shadowRoot;
	const over = [];
	for (const e of [p, ...r.querySelectorAll('*')]) { const b = e.getBoundingClientRect(); if (b.width > 0 && b.right > innerWidth + 1) over.push(e.tagName + '.' + e.className + ':' + Math.round(b.right)); }
	return {inner: innerWidth, scroll: document.documentElement.scrollWidth, player: p.getBoundingClientRect().width,
		labels: [...r.querySelectorAll('dt')].map(d => d.textContent),
		state: r.querySelector('dd[data-k=state]').textContent, badge: r.querySelector('.badge').textContent,
		phone: getComputedStyle(r.querySelector('.unmute span')).display === 'none', overflow: over}; })()`

// TestMixedEngineSwarm puts one Chromium, one WebKit and one Firefox
// viewer in the same mesh (root capacity 1, two stripes: the seeder's
// root peer feeds one viewer per stripe, the rest comes from viewers).
// Chromium and Firefox relay to each other over data channels between
// the two engines; each plays and takes most of its bytes over WebRTC.
// WebKit joins second, where a capable viewer would become interior in a
// stripe: Debian's WebKitGTK is built without WebRTC, so it must join as
// a leaf (never a parent, or Chromium would wait on a link that cannot
// open) and play from the origin. Then the three pages are narrowed to
// phone width: the stats panel reads the same in the three engines, the
// badge agrees with it, and nothing is wider than the screen.
func TestMixedEngineSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the three-engine swarm in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	ff := e2e.StartFirefox(t, ctx)
	wk := e2e.StartWebKit(t, ctx)
	up := liveDemo(t, ctx, 120, "--root-capacity", "1", "--stripes", "2")
	watch := up.base + "/watch/demo"

	tab, tcancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(tcancel)
	viewers := []engineViewer{
		{name: "chromium", page: chromiumPage{Tab: tab}, resize: func(ctx context.Context, w, h int) error {
			_, err := chromedp.Run(tab, chromedp.EmulateViewport(int64(w), int64(h)))
			return err
		}},
		{name: "webkit", page: wk, resize: wk.SetWindowSize},
		{name: "firefox", page: ff, resize: ff.SetViewport},
	}
	if err := wk.SetWindowSize(ctx, 1280, 900); err != nil {
		t.Fatal(err)
	}
	// One after the other, each live before the next joins: the order
	// decides the trees.
	for _, v := range viewers {
		var err error
		switch p := v.page.(type) {
		case chromiumPage:
			_, err = chromedp.Run(p.Tab, chromedp.Navigate(watch))
		case *e2e.WebKit:
			if err = p.Navigate(ctx, watch); err == nil {
				err = p.InstallErrorHook(ctx)
			}
		case *e2e.Firefox:
			err = p.Navigate(ctx, watch)
		}
		if err != nil {
			t.Fatalf("%s: open %s: %v", v.name, watch, err)
		}
		waitPage(t, ctx, v.page, "banyan-player", v.name+" live", 60*time.Second, func(fp firefoxProbe) bool { return fp.State == "live" && fp.Time > 0 })
	}
	// Each plays on, and the two WebRTC engines relay to each other.
	starts := map[string]float64{}
	for _, v := range viewers {
		starts[v.name] = probePage(t, ctx, v.page, "banyan-player").Time
	}
	got := map[string]firefoxProbe{}
	relaying := func(name string, fp firefoxProbe) bool {
		if fp.State != "live" || fp.Time < starts[name]+5 || fp.Stats == nil {
			return false
		}
		return name == "webkit" || (fp.Stats.Children > 0 && fp.Stats.BytesViewers > 0)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		all := true
		for _, v := range viewers {
			got[v.name] = probePage(t, ctx, v.page, "banyan-player")
			all = all && relaying(v.name, got[v.name])
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			for _, v := range viewers {
				t.Logf("%s: %+v stats %+v", v.name, got[v.name].viewerProbe, got[v.name].Stats)
			}
			for _, l := range ff.Logs() {
				t.Logf("firefox log: %s", l)
			}
			t.Fatal("the viewers did not all play on, with chromium and firefox relaying to each other")
		}
	}
	for _, v := range viewers {
		s := got[v.name].Stats
		t.Logf("%s: from viewers %.0f B, seeder %.0f B, origin %.0f B; parents %.0f (%s), children %.0f; first frame %.0f ms after page load; behind live %.0f ms; stalls %.0f",
			v.name, s.BytesViewers, s.BytesSeeder, s.BytesOrigin, s.Parents, s.Paths, s.Children, s.FirstMS, s.BehindMs, s.Stalls)
	}
	for _, name := range []string{"chromium", "firefox"} {
		s := got[name].Stats
		if s.BytesViewers+s.BytesSeeder <= s.BytesOrigin {
			t.Errorf("%s took most of its bytes from the origin: %+v", name, s)
		}
	}
	var webrtc bool
	if err := wk.Eval(ctx, `document.querySelector('banyan-player').stats.webrtc !== false`, &webrtc); err != nil {
		t.Fatal(err)
	}
	if ws := got["webkit"].Stats; webrtc {
		// A WebKit built with WebRTC relays like the others.
		if ws.Children == 0 || ws.BytesViewers == 0 {
			t.Errorf("webkit has WebRTC but does not relay: %+v", ws)
		}
	} else if ws.Children != 0 || ws.BytesOrigin == 0 {
		t.Errorf("webkit without WebRTC: want a leaf playing from the origin, got %+v", ws)
	}
	if errs, err := wk.Errors(ctx); err != nil || len(errs) > 0 {
		t.Errorf("webkit: errors in the page (%v): %q", err, errs)
	}

	// Phone width: the same panel in the three engines, nothing wider
	// than the screen.
	probes := map[string]phoneProbe{}
	for _, v := range viewers {
		if err := v.resize(ctx, 390, 844); err != nil {
			t.Fatalf("%s: resize: %v", v.name, err)
		}
	}
	for _, v := range viewers {
		var pp phoneProbe
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			if err := v.page.Eval(ctx, phoneProbeJS, &pp); err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
			// A moment when the panel says live (a loaded machine may
			// make a viewer buffer for a while).
			if pp.Badge == "Live" || time.Now().After(deadline) {
				break
			}
		}
		probes[v.name] = pp
		shot, err := v.page.Screenshot(ctx)
		if err != nil {
			t.Fatalf("%s: screenshot: %v", v.name, err)
		}
		e2e.SaveArtifact(t, fmt.Sprintf("phone-%s.png", v.name), shot)
		t.Logf("%s at %d px: state %q, badge %q, player %.0f px, page %d px wide", v.name, pp.Inner, pp.State, pp.Badge, pp.Player, pp.Scroll)
		if pp.Inner > 480 || !pp.Phone {
			t.Errorf("%s: viewport %d px, phone style in force %v", v.name, pp.Inner, pp.Phone)
		}
		if pp.Scroll > pp.Inner || len(pp.Overflow) > 0 || pp.Player > float64(pp.Inner) {
			t.Errorf("%s: wider than the %d px screen: page %d px, player %.0f px, elements %q", v.name, pp.Inner, pp.Scroll, pp.Player, pp.Overflow)
		}
		if pp.Badge == "" || !strings.HasPrefix(pp.State, pp.Badge) {
			t.Errorf("%s: the badge says %q, the panel %q", v.name, pp.Badge, pp.State)
		}
	}
	ref := probes["chromium"]
	for name, pp := range probes {
		if !slices.Equal(pp.Labels, ref.Labels) {
			t.Errorf("%s's stats panel reads %q, chromium's %q", name, pp.Labels, ref.Labels)
		}
		if pp.Badge != ref.Badge {
			t.Logf("note: %s's badge %q, chromium's %q (a viewer buffering on a busy machine)", name, pp.Badge, ref.Badge)
		}
	}
	up.stop(t, os.Interrupt)
}
