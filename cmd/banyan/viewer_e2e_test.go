package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// viewerProbe is what the test reads from a <banyan-player>.
type viewerProbe struct {
	State  string  `json:"state"`
	Reason string  `json:"reason"`
	Time   float64 `json:"time"`
	Stats  *struct {
		// Bytes by sender (protocol.Sources); TURN is the relayed part.
		BytesViewers float64 `json:"bytesViewers"`
		BytesEdges   float64 `json:"bytesEdges"`
		BytesSeeder  float64 `json:"bytesSeeder"`
		BytesTURN    float64 `json:"bytesTURN"`
		BytesOrigin  float64 `json:"bytesOrigin"`
		Parents      float64 `json:"parents"`
		Children     float64 `json:"children"`
		BehindMs     float64 `json:"behindMs"`
		BufferMs     float64 `json:"bufferMs"`
		Stalls       float64 `json:"stalls"`
		FirstMS      float64 `json:"firstFrameMs"`
		Epoch        float64 `json:"epoch"`
		Paths        string  `json:"paths"`
		Depth        float64 `json:"depth"`
		PlayoutMS    float64 `json:"playoutMs"`
		Rebuilds     float64 `json:"rebuilds"`
		Dropped      float64 `json:"dropped"`
	} `json:"stats"`
}

const viewerProbeJS = `(() => { const p = document.querySelector('banyan-player'); if (!p) return {state: 'no element'};
	return {state: p.state, reason: p.reason || '', time: p.video ? p.video.currentTime : 0, stats: p.stats || null}; })()`

// browser starts headless Chromium allowed to use loopback ICE candidates;
// extra adds flags (a fake camera for the publisher test).
func browser(t *testing.T, ctx context.Context, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	return e2e.Browser(t, ctx, append([]chromedp.ExecAllocatorOption{
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// WebRTC between the page and native peers on this machine only.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	}, extra...)...)
}

// openViewer opens /watch/<stream> in a fresh browser context (its own
// cookies, cache and WebRTC stack: a separate viewer).
func openViewer(t *testing.T, bctx context.Context, url string) context.Context {
	t.Helper()
	vctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(vctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return vctx
}

func probe(t *testing.T, vctx context.Context) viewerProbe {
	t.Helper()
	ctx, cancel := context.WithTimeout(vctx, 5*time.Second)
	defer cancel()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[viewerProbe](viewerProbeJS))
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	return p
}

func waitViewer(t *testing.T, vctx context.Context, what string, d time.Duration, ok func(viewerProbe) bool) viewerProbe {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p := probe(t, vctx)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last %+v stats %+v", what, p, p.Stats)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestBrowserViewersInMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser mesh test in -short mode")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	p := startUp(t, t.TempDir(), "--ice-loopback", "--root-capacity", "1", "--stripes", "2")
	url, key := p.rtmpURL(t)

	start := func(seconds int) (*exec.Cmd, chan error) {
		cmd := publish(ctx, ffmpeg, url+"/"+key, seconds)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done
	}
	ff, ffDone := start(120)

	var viewers []context.Context
	for i := 0; i < 3; i++ {
		viewers = append(viewers, openViewer(t, bctx, p.base+"/watch/demo"))
		time.Sleep(time.Second)
	}
	// Each plays at least 5 s of video.
	var firsts, behind []float64
	for i, v := range viewers {
		live := waitViewer(t, v, fmt.Sprintf("viewer %d live", i), 40*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
		got := waitViewer(t, v, fmt.Sprintf("viewer %d 5 s of playback", i), 20*time.Second, func(p viewerProbe) bool { return p.Time >= live.Time+5 })
		if got.Stats != nil {
			firsts = append(firsts, got.Stats.FirstMS)
			behind = append(behind, got.Stats.BehindMs)
		}
	}
	// Stats are refreshed every second: give the counters time to settle.
	time.Sleep(2 * time.Second)
	fromMesh, fromPeers, seederSum := 0, 0, 0.0
	for i, v := range viewers {
		s := probe(t, v).Stats
		if s == nil {
			t.Fatalf("viewer %d has no stats", i)
		}
		t.Logf("viewer %d: from viewers %.0f B, seeder %.0f B, origin %.0f B (turn %.0f B), parents %.0f (%s), children %.0f, behind %.0f ms, buffer %.0f ms, stalls %.0f",
			i, s.BytesViewers, s.BytesSeeder, s.BytesOrigin, s.BytesTURN, s.Parents, s.Paths, s.Children, s.BehindMs, s.BufferMs, s.Stalls)
		// The mesh (WebRTC, the seeder's root peer included) rather than
		// the origin delivers most; and viewers relay to each other. Peer
		// bytes are what other viewers sent: the seeder's root peer is
		// not a peer (issue 21).
		if s.BytesViewers+s.BytesEdges+s.BytesSeeder > s.BytesOrigin {
			fromMesh++
		}
		if s.BytesViewers > 0 {
			fromPeers++
		}
		seederSum += s.BytesSeeder
		// Chromium names the selected ICE pair: no parent's path is
		// unknown (that is for browsers without the API).
		if strings.Contains(s.Paths, "unknown") {
			t.Errorf("viewer %d: parent paths %q", i, s.Paths)
		}
	}
	if fromMesh == 0 {
		t.Fatal("no viewer got the majority of its bytes over WebRTC")
	}
	if fromPeers == 0 {
		t.Fatal("no viewer got bytes from another viewer")
	}
	// Root capacity 1: the seeder's root peer feeds one viewer per
	// stripe, and those bytes show as the seeder's.
	if seederSum == 0 {
		t.Error("no viewer shows bytes from the seeder, whose root peer feeds the first in each stripe")
	}
	slices.Sort(firsts)
	t.Logf("figures: join to first frame %v ms; behind live %v ms", firsts, behind)

	// A real frame on screen, not black.
	shot, err := chromedp.Run(viewers[0], chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	e2e.SaveArtifact(t, "mesh-viewer.png", shot)
	if f := e2e.BrightFraction(t, shot); f < 0.05 {
		t.Fatalf("screenshot is black (%.3f of pixels lit)", f)
	}
	// The LIVE badge sits under the picture, not over its corner, and the
	// stats panel says the state (issue 21).
	type badgeProbe struct {
		Overlap bool   `json:"overlap"`
		Badge   string `json:"badge"`
		State   string `json:"state"`
	}
	bp, err := chromedp.Run(viewers[0], chromedp.Evaluate[badgeProbe](`(() => { const r = document.querySelector('banyan-player').shadowRoot;
		const b = r.querySelector('.badge').getBoundingClientRect(), v = r.querySelector('video').getBoundingClientRect();
		return {overlap: !(b.bottom <= v.top || b.top >= v.bottom || b.right <= v.left || b.left >= v.right),
			badge: r.querySelector('.badge').textContent, state: r.querySelector('dd[data-k=state]').textContent}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	// (On a loaded machine the viewer may be buffering just then: the
	// badge and the panel must agree, whatever the state.)
	if bp.Overlap || bp.Badge == "" || !strings.HasPrefix(bp.State, bp.Badge) {
		t.Errorf("badge %+v: want it outside the picture, saying what the panel says", bp)
	}

	// The broadcaster stops and comes back: viewers wait, then play the new
	// epoch without a reload.
	ff.Process.Kill()
	<-ffDone
	for i, v := range viewers {
		waitViewer(t, v, fmt.Sprintf("viewer %d waiting after the broadcast stopped", i), 20*time.Second, func(p viewerProbe) bool {
			return p.State == "waiting" || p.State == "ended" || p.State == "buffering"
		})
	}
	before := make([]viewerProbe, len(viewers))
	for i, v := range viewers {
		before[i] = probe(t, v)
	}
	ff, ffDone = start(60)
	defer func() { ff.Process.Kill(); <-ffDone }()
	for i, v := range viewers {
		waitViewer(t, v, fmt.Sprintf("viewer %d playing the new epoch", i), 40*time.Second, func(p viewerProbe) bool {
			return p.State == "live" && p.Stats != nil && p.Stats.Epoch != before[i].Stats.Epoch && p.Time > before[i].Time+2
		})
	}
	p.stop(t, os.Interrupt)
}

// TestBrowserViewerLongGOPAcrossReconnect: the watch page (the wasm MSE
// player) in Chromium with OBS's default keyframe interval (250 frames,
// 8.3 s at 30 fps), opened once the first GOP is out. It must play at the
// media's 640 wide with currentTime advancing 10 s and no panic or
// restart; then the broadcaster is away for 2 s and comes back with the
// same key (a new epoch), and the viewer plays 5 s of it without a reload.
func TestBrowserViewerLongGOPAcrossReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the long-GOP viewer test in -short mode")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	p := startUp(t, t.TempDir(), "--ice-loopback", "--stripes", "2")
	url, key := p.rtmpURL(t)
	firstDone := publishGOP(t, ctx, ffmpeg, url+"/"+key, 30, 250)
	time.Sleep(9 * time.Second) // the first GOP closes at 8.3 s
	v := openViewer(t, bctx, p.base+"/watch/demo")
	pg := chromiumPage{Tab: v}
	opened := time.Now()
	live := waitPage(t, ctx, pg, "banyan-player", "live", 30*time.Second, func(fp firefoxProbe) bool { return fp.State == "live" && fp.Time > 0 })
	t.Logf("live %v after opening, at %.2f s", time.Since(opened).Round(100*time.Millisecond), live.Time)
	got := waitPage(t, ctx, pg, "banyan-player", "10 s of playback", 20*time.Second, func(fp firefoxProbe) bool { return fp.Time >= live.Time+10 })
	noPanic := func(when string, fp firefoxProbe) {
		t.Helper()
		if fp.Extra == nil || fp.Extra.Panics != 0 || fp.Extra.Restarts != 0 {
			t.Fatalf("%s: the viewer panicked or restarted: %+v", when, fp.Extra)
		}
	}
	if got.Width != 640 || got.Height != 360 {
		t.Fatalf("playing %dx%d, want 640x360", got.Width, got.Height)
	}
	noPanic("playing", got)
	s := got.Stats
	t.Logf("long GOP: behind %.0f ms, buffer %.0f ms, stalls %.0f, first frame %.0f ms, from seeder %.0f B, origin %.0f B",
		s.BehindMs, s.BufferMs, s.Stalls, s.FirstMS, s.BytesSeeder, s.BytesOrigin)
	published(t, firstDone, 30*time.Second)
	time.Sleep(2 * time.Second)
	before := probePage(t, ctx, pg, "banyan-player")
	back := time.Now()
	publishGOP(t, ctx, ffmpeg, url+"/"+key, 30, 250)
	again := waitPage(t, ctx, pg, "banyan-player", "live in the new epoch", 40*time.Second, func(fp firefoxProbe) bool {
		return fp.State == "live" && fp.Stats != nil && before.Stats != nil && fp.Stats.Epoch != before.Stats.Epoch && fp.Time > 0
	})
	liveAgain := time.Since(back)
	after := waitPage(t, ctx, pg, "banyan-player", "5 s of the new epoch", 20*time.Second, func(fp firefoxProbe) bool { return fp.Time >= again.Time+5 })
	t.Logf("across the reconnect: epoch %.0f → %.0f, currentTime %.1f → %.1f s, live again %v after it",
		before.Stats.Epoch, after.Stats.Epoch, before.Time, after.Time, liveAgain.Round(100*time.Millisecond))
	noPanic("after the reconnect", after)
	p.stop(t, os.Interrupt)
}
