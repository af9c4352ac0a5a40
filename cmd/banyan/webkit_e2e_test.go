package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestWebKitViewer opens the watch page of a 1280x720 stream in
// WebKitGTK's MiniBrowser (Safari's engine, MSE on GStreamer) under Xvfb,
// driven by WebKitWebDriver, before the broadcast starts. Once it starts
// the viewer must play at 1280 wide with currentTime
// advancing, report no page error, panic or restart, and follow a
// broadcaster restart (the next epoch) without a reload.
//
// Then it takes the path of Safari on iPhone, which has only
// ManagedMediaSource: the page's MediaSource is hidden and a second player
// is added. That player must play through a ManagedMediaSource (counted by
// a wrapper of the constructor), with disableRemotePlayback set on its
// video as WebKit requires, inline and muted (autoplay without a gesture).
func TestWebKitViewer(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the WebKit viewer test in -short mode")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wk := e2e.StartWebKit(t, ctx)
	t.Logf("browser: %s", wk.Version(ctx))
	if err := wk.SetWindowSize(ctx, 1280, 900); err != nil {
		t.Fatal(err)
	}
	media := encodedMedia(t, ffmpeg, 40, "1280x720", "")
	p := startUp(t, t.TempDir(), "--ice-loopback", "--stripes", "2")
	url, key := p.rtmpURL(t)

	// The viewer opens the page before the broadcast starts, so its
	// media begins with the broadcast's first frame (at 0.046 s) and its
	// first seek comes before WebKit's pipeline has had any data: the
	// seek WebKitGTK left pending for good (see mse.EdgeConfig.SeekStuck).
	if err := wk.Navigate(ctx, p.base+"/watch/demo"); err != nil {
		t.Fatal(err)
	}
	if err := wk.InstallErrorHook(ctx); err != nil {
		t.Fatal(err)
	}
	const main = "banyan-player"
	waitPage(t, ctx, wk, main, "waiting for the broadcast", 60*time.Second, func(fp firefoxProbe) bool { return fp.State == "waiting" })
	stopPub := broadcast(t, ctx, ffmpeg, media, url+"/"+key)
	start := time.Now()
	live := waitPage(t, ctx, wk, main, "live", 60*time.Second, func(fp firefoxProbe) bool { return fp.State == "live" && fp.Time > 0 })
	t.Logf("live after %v", time.Since(start).Round(time.Millisecond))
	got := waitPage(t, ctx, wk, main, "5 s of playback", 30*time.Second, func(fp firefoxProbe) bool {
		// Live at that moment: on a machine short of CPU the viewer may
		// say "buffering" for a while, which is the truth there.
		// (and not in one of the short pauses of the mute fight that
		// WebKitGTK starts, see mutedWithin).
		return fp.Time >= live.Time+5 && fp.State == "live" && !fp.Paused
	})
	if got.Width != 1280 || got.Height != 720 || got.Paused || got.State != "live" {
		t.Fatalf("after 5 s: %dx%d paused %v state %q (%s), extra %+v", got.Width, got.Height, got.Paused, got.State, got.Reason, got.Extra)
	}
	got = waitPage(t, ctx, wk, main, "stats", 10*time.Second, func(fp firefoxProbe) bool { return fp.Stats != nil && fp.Extra != nil })
	s := got.Stats
	t.Logf("webkit viewer: from viewers %.0f B, seeder %.0f B, origin %.0f B, parents %.0f (%s), children %.0f, behind %.0f ms, buffer %.0f ms, stalls %.0f, first frame %.0f ms",
		s.BytesViewers, s.BytesSeeder, s.BytesOrigin, s.Parents, s.Paths, s.Children, s.BehindMs, s.BufferMs, s.Stalls, s.FirstMS)
	if s.BytesViewers+s.BytesSeeder+s.BytesEdges+s.BytesOrigin == 0 {
		t.Fatalf("the viewer counts no bytes: %+v", s)
	}
	shot, err := wk.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e2e.SaveArtifact(t, "webkit-viewer.png", shot)
	if f := e2e.BrightFraction(t, shot); f < 0.05 {
		t.Fatalf("screenshot is black (%.3f of pixels lit)", f)
	}
	noPageErrors := func(when string) {
		t.Helper()
		errs, err := wk.Errors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(errs) > 0 {
			t.Fatalf("%s: errors in the page: %q", when, errs)
		}
		fp := probePage(t, ctx, wk, main)
		if fp.Extra == nil || fp.Extra.Panics != 0 || fp.Extra.Restarts != 0 {
			t.Fatalf("%s: the viewer panicked or restarted: %+v", when, fp.Extra)
		}
	}
	noPageErrors("playing")
	// Autoplay without a gesture is muted autoplay in Safari's policy,
	// which this MiniBrowser runs with: the player keeps the video muted.
	// (WebKitGTK's GStreamer backend unmutes it again and again, and the
	// policy then pauses it: the element mutes and resumes each time, so
	// a sample may catch it unmuted for a moment.)
	if !mutedWithin(t, ctx, wk, "banyan-player", 5*time.Second) {
		t.Fatal("the playing video is never muted")
	}

	// The broadcaster stops and comes back: the viewer waits, then plays
	// the new epoch without a reload.
	stopPub()
	waitPage(t, ctx, wk, main, "waiting after the broadcast stopped", 30*time.Second, func(fp firefoxProbe) bool {
		return fp.State == "waiting" || fp.State == "ended" || fp.State == "buffering"
	})
	before := probePage(t, ctx, wk, main)
	broadcast(t, ctx, ffmpeg, media, url+"/"+key)
	again := waitPage(t, ctx, wk, main, "playing the new epoch", 60*time.Second, func(fp firefoxProbe) bool {
		return fp.State == "live" && fp.Stats != nil && before.Stats != nil && fp.Stats.Epoch != before.Stats.Epoch && fp.Time > before.Time+2
	})
	t.Logf("after the restart: epoch %.0f → %.0f, currentTime %.1f → %.1f s", before.Stats.Epoch, again.Stats.Epoch, before.Time, again.Time)
	noPageErrors("after the restart")

	// Safari on iPhone: no MediaSource, only ManagedMediaSource. A
	// wrapper of its constructor counts the instances the player makes.
	if err := wk.Eval(ctx, `(() => {
		const M = window.ManagedMediaSource;
		window.__mms = [];
		window.ManagedMediaSource = class extends M { constructor() { super(); window.__mms.push(this); } };
		delete window.MediaSource;
		document.querySelector('banyan-player').remove(); // one decoder at a time on 2 cores
		document.body.insertAdjacentHTML('beforeend', '<banyan-player id="mms" stream="demo" stats></banyan-player>');
		return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	const managed = "#mms"
	ml := waitPage(t, ctx, wk, managed, "the ManagedMediaSource player live", 60*time.Second, func(fp firefoxProbe) bool { return fp.State == "live" && fp.Time > 0 })
	mg := waitPage(t, ctx, wk, managed, "3 s of ManagedMediaSource playback", 30*time.Second, func(fp firefoxProbe) bool { return fp.Time >= ml.Time+3 && fp.State == "live" && !fp.Paused })
	var mms struct {
		Created   int  `json:"created"`
		Streaming bool `json:"streaming"`
		NoRemote  bool `json:"noRemote"`
		Inline    bool `json:"inline"`
		Plain     bool `json:"plain"`
	}
	if err := wk.Eval(ctx, `(() => { const v = document.querySelector('#mms').video;
		return {created: window.__mms.length, streaming: window.__mms.some(m => m.streaming), noRemote: v.disableRemotePlayback === true,
			inline: v.playsInline === true && v.hasAttribute('playsinline'), plain: 'MediaSource' in window}; })()`, &mms); err != nil {
		t.Fatal(err)
	}
	t.Logf("ManagedMediaSource player: %dx%d at %.1f s, %+v", mg.Width, mg.Height, mg.Time, mms)
	if mms.Plain || mms.Created == 0 || !mms.NoRemote || !mms.Inline || !mutedWithin(t, ctx, wk, managed, 5*time.Second) || mg.Width != 1280 || mg.Paused || mg.Extra == nil || mg.Extra.Restarts != 0 || mg.Extra.Panics != 0 {
		t.Fatalf("the ManagedMediaSource player: %+v, %dx%d paused %v", mms, mg.Width, mg.Height, mg.Paused)
	}
	if errs, err := wk.Errors(ctx); err != nil || len(errs) > 0 {
		t.Fatalf("errors in the page (%v): %q", err, errs)
	}
	p.stop(t, os.Interrupt)
}

// mutedWithin reports whether the player's video is muted at some poll
// within d.
func mutedWithin(t *testing.T, ctx context.Context, pg enginePage, sel string, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var muted bool
		if err := pg.Eval(ctx, fmt.Sprintf(`document.querySelector(%q).video.muted`, sel), &muted); err != nil {
			t.Fatal(err)
		}
		if muted {
			return true
		}
	}
	return false
}
