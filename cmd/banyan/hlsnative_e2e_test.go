package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// nativeHLSPage gives the media playlist SRC to a <video> as its source:
// the browser's own HLS player, no script between it and the playlist.
// window.probe keeps canPlayType's answer and the element's events.
const nativeHLSPage = `<!doctype html><meta charset="utf-8"><title>native HLS</title>
<video muted autoplay playsinline width="640" height="360" src="SRC"></video>
<script>
const video = document.querySelector('video');
window.probe = {canPlay: video.canPlayType('application/vnd.apple.mpegurl'), errors: [], events: []};
for (const e of ['loadedmetadata', 'playing', 'waiting', 'stalled', 'ended', 'emptied', 'error']) {
  video.addEventListener(e, () => {
    probe.events.push(e + '@' + video.currentTime.toFixed(2));
    if (probe.events.length > 60) probe.events.shift();
    if (e === 'error' && video.error) probe.errors.push(video.error.code + ' ' + video.error.message);
  });
}
video.play().catch((e) => probe.errors.push('play: ' + e));
</script>`

// nativeHLSProbe is what the test reads from nativeHLSPage.
type nativeHLSProbe struct {
	CanPlay  string   `json:"canPlay"`
	Errors   []string `json:"errors"`
	Events   []string `json:"events"`
	Time     float64  `json:"time"`
	Paused   bool     `json:"paused"`
	Ended    bool     `json:"ended"`
	Ready    int      `json:"ready"`
	Width    int      `json:"width"`
	Buffered string   `json:"buffered"`
}

const nativeHLSProbeJS = `Object.assign({}, window.probe, {time: video.currentTime, paused: video.paused, ended: video.ended,
	ready: video.readyState, width: video.videoWidth,
	buffered: Array.from({length: video.buffered.length}, (_, i) => video.buffered.start(i).toFixed(2) + '-' + video.buffered.end(i).toFixed(2)).join(' ')})`

// nativeHLSAcrossReconnect is the test of a browser's own HLS player
// (pg, opened with navigate) through the seeder's real LL-HLS: OBS's
// default keyframe interval (250 frames, 8.3 s at 30 fps) for 30 s, a
// broadcaster away for 2 s, then back with the same key (a new epoch).
// The video must advance 10 s in the first epoch and play 5 s of the new
// one without a reload, with no media error or end of stream (a stop at the
// epoch change fails only with o.gate; else epochStall logs it).
func nativeHLSAcrossReconnect(t *testing.T, ctx context.Context, r *hlsjsRun, pg enginePage, navigate func(string) error, o nativeHLSOptions) {
	t.Helper()
	var gapPlaylist []byte
	read := func() nativeHLSProbe {
		t.Helper()
		var pr nativeHLSProbe
		if err := pg.Eval(ctx, nativeHLSProbeJS, &pr); err != nil {
			t.Fatalf("probe: %v", err)
		}
		return pr
	}
	// wait polls until ok, failing at a media error or an end of stream,
	// or after d.
	wait := func(what string, d time.Duration, ok func(nativeHLSProbe) bool) nativeHLSProbe {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			pr := read()
			if len(pr.Errors) > 0 || pr.Ended {
				t.Fatalf("%s: the player stopped: %+v", what, pr)
			}
			if ok(pr) {
				return pr
			}
			if time.Now().After(deadline) {
				_, pl := httpGet(t, r.src)
				t.Fatalf("waiting %v for %s: last %+v\nplaylist at the gap:\n%s\nplaylist now:\n%s", d, what, pr, gapPlaylist, pl)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	firstDone := r.publish(30, 250)
	r.waitPlaylist(20 * time.Second) // once the first 8.3 s GOP has closed
	if o.segments > 1 {
		r.waitSegments(o.segments, 40*time.Second)
	}
	if err := navigate("http://" + r.pageAddr + "/native"); err != nil {
		t.Fatal(err)
	}
	pr := read()
	t.Logf("canPlayType('application/vnd.apple.mpegurl') = %q", pr.CanPlay)
	if pr.CanPlay == "" {
		t.Fatal("the browser has no HLS player of its own")
	}
	start := time.Now()
	first := wait("playback", 20*time.Second, func(pr nativeHLSProbe) bool { return pr.Time > 0 && !pr.Paused })
	t.Logf("playing %v after opening, at %.2f s, %d wide", time.Since(start).Round(time.Millisecond), first.Time, first.Width)
	played := wait("10 s of playback", 15*time.Second, func(pr nativeHLSProbe) bool { return pr.Time >= first.Time+10 })
	if played.Width != 640 {
		t.Errorf("video %d wide, want 640", played.Width)
	}
	published(t, firstDone, 30*time.Second)
	// The broadcaster is away for 2 s, then back with the same key.
	time.Sleep(2 * time.Second)
	gap := read()
	_, gapPlaylist = httpGet(t, r.src)
	back := time.Now()
	r.publish(30, 250)
	// The first epoch holds 30 s of media, of which the player had
	// played from first.Time: 5 s past that is the new epoch's.
	var after nativeHLSProbe
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if after = read(); after.Time >= first.Time+30+5 || len(after.Errors) > 0 {
			break
		}
	}
	t.Logf("across the reconnect: %.2f s at the gap, %.2f s %v after it; buffered [%s]; events %v, errors %v\nplaylist at the gap:\n%s",
		gap.Time, after.Time, time.Since(back).Round(100*time.Millisecond), after.Buffered, after.Events, after.Errors, gapPlaylist)
	if o.gate && after.Time < first.Time+30+5 {
		t.Fatalf("playback stopped at %.2f s across the epoch change, want %.2f s", after.Time, first.Time+30+5)
	}
	epochStall(t, ctx, pg, after.Time, first.Time+30+5)
}

// nativeHLSOptions are what a browser's own HLS player needs of
// nativeHLSAcrossReconnect.
type nativeHLSOptions struct {
	// segments is how many complete segments the playlist must list
	// before the player opens it (0: as soon as it exists).
	segments int
	// gate makes a stop at the epoch change fail the test (else it is
	// logged: epochStall).
	gate bool
}

// waitSegments waits up to within for the media playlist to list n
// complete segments (EXTINF lines).
func (r *hlsjsRun) waitSegments(n int, within time.Duration) {
	r.t.Helper()
	end := time.Now().Add(within)
	for {
		_, pl := httpGet(r.t, r.src)
		if strings.Count(string(pl), "#EXTINF:") >= n {
			return
		}
		if time.Now().After(end) {
			r.t.Fatalf("the playlist did not list %d segments within %v:\n%s", n, within, pl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// epochStall reports a player that did not reach want (5 s into the new
// epoch) across the reconnect, as a figure, not a gate.
//
// hls.js 1.7.4 in low-latency mode on WebKitGTK 2.50's MSE stops at the
// end of the first epoch (30.0x s of 30; 5 of 6 runs before the LL-HLS
// timeline was made continuous, 5 of 6 after, 2026-12-05; the one that
// played across waited at the edge without ending, not traced) because the
// video is paused: traced (2026-12-05) to hls.js and WebKit, not the playlist or
// the media. hls.js keeps a live MediaSource's duration at the end of the
// listed media (liveDurationInfinity defaults to false); in low-latency
// mode it plays at that edge, and while the broadcaster is away the edge
// stands still (30.067 s). WebKitGTK plays to the duration of the still
// open MediaSource (endOfStream never called), fires pause and ended and
// leaves the video paused when the new epoch is appended and the duration
// raised (readyState 4, currentTime stays 30.08). Chromium instead waits at
// the end (waiting, not paused) and plays on. The same happens without
// hls.js or the seeder (TestTraceMSEEndedAtDuration: one segment in an
// open MediaSource, duration = its buffered end). hls.js without
// lowLatencyMode plays ~10 s behind, so the next epoch comes before the
// duration (2 of 2 across); with liveDurationInfinity: true (duration
// Infinity plus setLiveSeekableRange) low-latency hls.js plays across in
// WebKitGTK (3 of 3; TestWebKitHLSJSInfinityAcrossReconnect gates it). WebKitGTK's own HLS
// player stopped there in 6 of 6 while the new epoch's decode times went
// back to 0, and now gates (TestWebKitNativeHLSAcrossReconnect).
//
// Then it logs whether the video is paused, nudges it 0.1 s on, as a gap
// controller would, and logs whether that moves it (a figure too: hls.js's
// video moved the 0.1 s and stopped again, being paused; the native
// player's went back to 0).
func epochStall(t *testing.T, ctx context.Context, pg enginePage, at, want float64) {
	t.Helper()
	if at >= want {
		return
	}
	var st struct {
		Paused, Ended bool
		Ready         int
	}
	if err := pg.Eval(ctx, `(() => { const v = document.querySelector('video'); return {paused: v.paused, ended: v.ended, ready: v.readyState}; })()`, &st); err != nil {
		t.Fatalf("video state: %v", err)
	}
	t.Logf("KNOWN (issue 22): playback stopped at %.2f s across the epoch change, want %.2f s; paused %v, ended %v, readyState %d", at, want, st.Paused, st.Ended, st.Ready)
	var now float64
	if err := pg.Eval(ctx, `(() => { const v = document.querySelector('video'); v.currentTime += 0.1; return v.currentTime; })()`, &now); err != nil {
		t.Fatalf("nudge: %v", err)
	}
	time.Sleep(5 * time.Second)
	if err := pg.Eval(ctx, `document.querySelector('video').currentTime`, &now); err != nil {
		t.Fatalf("after the nudge: %v", err)
	}
	t.Logf("a 0.1 s nudge from %.2f s: at %.2f s 5 s later", at, now)
}

// TestWebKitNativeHLSAcrossReconnect plays the seeder's LL-HLS with
// WebKitGTK's own HLS player (GStreamer's hlsdemux from a <video src>),
// the engine of Safari, under the conditions of nativeHLSAcrossReconnect,
// and must play across the epoch change. It stopped for good at the end of
// the first epoch (6 of 6 runs) while each epoch's decode times started at
// 0 behind the EXT-X-DISCONTINUITY, as an ffmpeg-made playlist does too
// (stuck at 30.07 s of 60; with the second half's decode times moved on by
// 30 s it plays through): the seeder now serves every epoch on one
// continuous timeline (seeder.TestLLHLSTimelineAcrossEpochs).
func TestWebKitNativeHLSAcrossReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the WebKit HLS test in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// WebKitGTK's own HLS player is off unless this is set (canPlayType
	// then says "maybe"; without it ""); with WEBKIT_GST_USE_PLAYBIN3=1
	// as well it fails at once (MEDIA_ERR_SRC_NOT_SUPPORTED).
	wk := e2e.StartWebKit(t, ctx, "WEBKIT_GST_ENABLE_HLS_SUPPORT=1")
	t.Logf("browser: %s", wk.Version(ctx))
	r := newHLSPages(t, ctx)
	nativeHLSAcrossReconnect(t, ctx, r, wk, func(url string) error { return wk.Navigate(ctx, url) }, nativeHLSOptions{gate: true})
}

// TestChromiumNativeHLSAcrossReconnect: the same with Chromium's own HLS
// player (canPlayType "maybe" in Chromium 156), which must play across the
// epoch change. It ignores parts and opens a live playlist only once it
// lists three complete segments: Chromium 156 loads the listed segments
// while the element is paused for preload, and on play, finding no new
// segment after one reload, quits with DEMUXER_ERROR_COULD_NOT_PARSE
// ("Segment queue never had any data", HlsRenditionImpl's live resume). A
// live playlist of one or two 8.3 s segments from ffmpeg's own HLS muxer
// fails the same way and one of four plays (2026-12-05), so this is
// Chromium's, not the seeder's; RFC 8216bis clients start three target
// durations from the end anyway. hls.js in Chromium is
// TestHLSJSLowLatencyAcrossReconnect and ...LongGOP.
func TestChromiumNativeHLSAcrossReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the Chromium HLS test in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := newHLSJSRun(t, ctx)
	pg := chromiumPage{Tab: r.bctx}
	var ua string
	if err := pg.Eval(ctx, "navigator.userAgent", &ua); err != nil {
		t.Fatal(err)
	}
	t.Logf("browser: %s", ua)
	nativeHLSAcrossReconnect(t, ctx, r, pg, func(url string) error {
		_, err := chromedp.Run(r.bctx, chromedp.Navigate(url))
		return err
	}, nativeHLSOptions{segments: 3, gate: true})
}

// TestWebKitHLSJSLongGOPAcrossReconnect plays the seeder's LL-HLS with
// hls.js (low-latency mode, on WebKit's MSE) in WebKitGTK: what a site
// must serve WebKitGTK's users, whose own HLS player is off by default
// (canPlayType says "" unless WEBKIT_GST_ENABLE_HLS_SUPPORT=1 is set, see
// TestWebKitNativeHLSAcrossReconnect). OBS's default keyframe interval
// (250 frames, 8.3 s at 30 fps) for 30 s, the broadcaster away for 2 s and
// back with the same key (a new epoch): the video advances 10 s in the
// first epoch, passes into the new one without a reload and keeps going.
// Logged, not a gate: hls.js's finite live duration and WebKit's ended at
// the duration of an open MediaSource pause it at the end of the first
// epoch (see epochStall; with the page's hls.js config
// liveDurationInfinity: true it plays across).
func TestWebKitHLSJSLongGOPAcrossReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the WebKit hls.js test in -short mode")
	}
	webKitHLSJSAcrossReconnect(t, "/", false)
}

// TestWebKitHLSJSInfinityAcrossReconnect: the same with hls.js's
// liveDurationInfinity, and must play across the epoch change. With
// hls.js's default (the duration at the end of the listed media) it stops
// there in 5 of 6 runs (TestWebKitHLSJSLongGOPAcrossReconnect, epochStall).
func TestWebKitHLSJSInfinityAcrossReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the WebKit hls.js test in -short mode")
	}
	webKitHLSJSAcrossReconnect(t, "/infinity", true)
}

// webKitHLSJSAcrossReconnect is the test of TestWebKitHLSJSLongGOPAcrossReconnect
// with the hls.js page at path; gate makes a stop at the epoch change fail.
func webKitHLSJSAcrossReconnect(t *testing.T, path string, gate bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wk := e2e.StartWebKit(t, ctx)
	r := newHLSPages(t, ctx)
	r.pg = wk
	firstDone := r.publish(30, 250)
	r.waitPlaylist(20 * time.Second) // once the first 8.3 s GOP has closed
	if err := wk.Navigate(ctx, "http://"+r.pageAddr+path); err != nil {
		t.Fatal(err)
	}
	var native string
	if err := wk.Eval(ctx, `document.querySelector('video').canPlayType('application/vnd.apple.mpegurl')`, &native); err != nil {
		t.Fatal(err)
	}
	t.Logf("browser: %s; canPlayType('application/vnd.apple.mpegurl') = %q", wk.Version(ctx), native)
	opened := time.Now()
	first := r.until("playback", 20*time.Second, func(pr hlsjsProbe) bool { return pr.Time > 0 })
	t.Logf("hls.js %s playing %v after opening, at %.2f s", first.Version, time.Since(opened).Round(100*time.Millisecond), first.Time)
	if first.Version != hlsjsVersion {
		t.Fatalf("hls.js %s, want %s", first.Version, hlsjsVersion)
	}
	// WebKitGTK may leave the start seek pending for good (the video sits
	// at hls.js's start position: 2 of 7 runs here); a second seek
	// completes, which is what the watch page's player does too (see
	// mse.EdgeConfig.SeekStuck).
	if moved := r.watch(5 * time.Second); moved.Time < first.Time+1 {
		t.Logf("the start seek stayed pending at %.2f s: seeking again", moved.Time)
		if err := wk.Eval(ctx, `(() => { const v = document.querySelector('video'); v.currentTime = v.currentTime; return true; })()`, nil); err != nil {
			t.Fatal(err)
		}
	}
	r.until("10 s of playback", 15*time.Second, func(pr hlsjsProbe) bool { return pr.Time >= first.Time+10 })
	published(t, firstDone, 30*time.Second)
	gap := r.watch(2 * time.Second)
	back := time.Now()
	r.publish(30, 250)
	// The first epoch holds 30 s of media, of which hls.js played from
	// first.Time; with the 2 s away (should hls.js leave a hole for it),
	// 5 s past that is the new epoch's. (Not a gate: epochStall.)
	want := first.Time + 30 + 2 + 5
	after := r.probe()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && after.Time < want; {
		after = r.watch(250 * time.Millisecond)
	}
	t.Logf("across the reconnect: %.2f s at the gap, %.2f s %v after it, latency %.2f s, targets %v, discontinuities %d, errors %v",
		gap.Time, after.Time, time.Since(back).Round(100*time.Millisecond), after.Latency, after.Targets, after.Discontinuities, after.Errors)
	if after.Discontinuities < 1 {
		t.Errorf("hls.js saw no discontinuity")
	}
	if after.Time < want {
		r.dump(after)
	}
	if gate && after.Time < want {
		t.Fatalf("playback stopped at %.2f s across the epoch change, want %.2f s", after.Time, want)
	}
	epochStall(t, ctx, wk, after.Time, want)
}
