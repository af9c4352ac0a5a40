package main

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// hlsjsVersion is the vendored hls.js (testdata/hlsjs/VENDORED.txt).
const hlsjsVersion = "1.7.4"

//go:embed testdata/hlsjs/hls.min.js
var hlsjs []byte

// hlsjsPage plays SRC with hls.js in low-latency mode and keeps what the
// test reads in window.probe.
const hlsjsPage = `<!doctype html><meta charset="utf-8"><title>hls.js</title>
<video muted autoplay playsinline width="640" height="360"></video>
<script src="/hls.min.js"></script>
<script>
const video = document.querySelector('video');
window.probe = {version: Hls.version, errors: [], fatal: '', levels: 0, discontinuities: 0, ended: false, targets: [], log: []};
// hls.js's own log, the last lines, for a failure message.
const keep = (lvl) => (...a) => { probe.log.push(lvl + ' ' + a.join(' ')); if (probe.log.length > 150) probe.log.shift(); };
const hls = new Hls({CONFIGlowLatencyMode: true, debug: {log: keep('log'), info: keep('info'), debug: keep('debug'), warn: keep('warn'), error: keep('error')}});
hls.on(Hls.Events.ERROR, (_, d) => {
  const code = d.response && d.response.code ? ':' + d.response.code : '';
  probe.errors.push(d.details + code + (d.fatal ? ':fatal' : ''));
  if (d.fatal) probe.fatal = d.details + code;
});
hls.on(Hls.Events.LEVEL_UPDATED, (_, d) => {
  const t = d.details.targetduration + '/' + d.details.partTarget;
  if (!probe.targets.includes(t)) probe.targets.push(t);
  probe.ended = !d.details.live;
  probe.discontinuities = d.details.endCC;
});
hls.loadSource('SRC');
hls.attachMedia(video);
video.play().catch(() => {});
</script>`

type hlsjsProbe struct {
	Version         string   `json:"version"`
	Errors          []string `json:"errors"`
	Fatal           string   `json:"fatal"`
	Discontinuities int      `json:"discontinuities"`
	Ended           bool     `json:"ended"`
	Targets         []string `json:"targets"`
	Time            float64  `json:"time"`
	Latency         float64  `json:"latency"`
	Log             []string `json:"log"`
}

// hlsjsRun is banyan up, a page on another origin playing its LL-HLS with
// hls.js in Chromium, and the means to watch it.
type hlsjsRun struct {
	t        *testing.T
	ctx      context.Context
	bctx     context.Context // Chromium's, when the run has it
	pg       enginePage      // the browser's page that open opened
	ffmpeg   string
	up       *upProc
	rtmp     string // URL with the stream key
	src      string // the media playlist
	pageAddr string
}

func newHLSJSRun(t *testing.T, ctx context.Context) *hlsjsRun {
	t.Helper()
	r := newHLSPages(t, ctx)
	r.bctx = e2e.Browser(t, ctx, chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	r.pg = chromiumPage{Tab: r.bctx}
	return r
}

// newHLSPages is banyan up and the page server of an hlsjsRun, for any
// browser (bctx is not set): "/" plays with hls.js, "/native" gives the
// playlist to a <video> (nativeHLSPage).
func newHLSPages(t *testing.T, ctx context.Context) *hlsjsRun {
	t.Helper()
	r := &hlsjsRun{t: t, ctx: ctx, ffmpeg: e2e.Require(t, "ffmpeg")}
	r.up = startUp(t, t.TempDir())
	url, key := r.up.rtmpURL(t)
	r.rtmp = url + "/" + key
	r.src = r.up.base + "/hls/demo/index.m3u8"
	// The page comes from another origin, as it would in real use (the
	// seeder's HLS answers with CORS).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/hls.min.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(hlsjs)
		case "/infinity":
			// hls.js with a live MediaSource duration of Infinity (its
			// liveDurationInfinity), which WebKit needs: see epochStall.
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, strings.NewReplacer("SRC", r.src, "CONFIG", "liveDurationInfinity: true, ").Replace(hlsjsPage))
		case "/native":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, strings.Replace(nativeHLSPage, "SRC", r.src, 1))
		default:
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, strings.NewReplacer("SRC", r.src, "CONFIG", "").Replace(hlsjsPage))
		}
	})}
	go page.Serve(ln)
	t.Cleanup(func() { page.Close() })
	r.pageAddr = ln.Addr().String()
	return r
}

// publish starts ffmpeg publishing seconds of test media with a keyframe
// every gop frames (at 30 fps); the channel gets its exit.
func (r *hlsjsRun) publish(seconds, gop int) <-chan error {
	r.t.Helper()
	return publishGOP(r.t, r.ctx, r.ffmpeg, r.rtmp, seconds, gop)
}

// publishGOP starts ffmpeg publishing seconds of publish's test media to
// url with a keyframe every gop frames (at 30 fps); the channel gets its
// exit.
func publishGOP(t *testing.T, ctx context.Context, ffmpeg, url string, seconds, gop int) <-chan error {
	t.Helper()
	args := publish(ctx, ffmpeg, url, seconds).Args[1:]
	for i, a := range args {
		if a == "-g" {
			args[i+1] = fmt.Sprint(gop)
		}
	}
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	return done
}

// published waits up to within for a publish (publishGOP) to end well.
func published(t *testing.T, done <-chan error, within time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	case <-time.After(within):
		t.Fatalf("publish did not end within %v", within)
	}
}

// open waits up to within for the playlist, then opens the page.
func (r *hlsjsRun) open(within time.Duration) {
	r.t.Helper()
	r.waitPlaylist(within)
	if _, err := chromedp.Run(r.bctx, chromedp.Navigate("http://"+r.pageAddr+"/")); err != nil {
		r.t.Fatal(err)
	}
}

// waitPlaylist waits up to within for the media playlist to answer 200.
func (r *hlsjsRun) waitPlaylist(within time.Duration) {
	r.t.Helper()
	end := time.Now().Add(within)
	for {
		if code, _ := httpGet(r.t, r.src); code == http.StatusOK {
			break
		}
		if time.Now().After(end) {
			r.t.Fatalf("no playlist %v after publishing", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *hlsjsRun) probe() hlsjsProbe {
	r.t.Helper()
	var pr hlsjsProbe
	if err := r.pg.Eval(r.ctx, `Object.assign({}, window.probe, {time: document.querySelector('video').currentTime, latency: hls.latency})`, &pr); err != nil {
		r.t.Fatalf("probe: %v", err)
	}
	return pr
}

// dump logs hls.js's log and the playlist as it is now.
func (r *hlsjsRun) dump(pr hlsjsProbe) {
	r.t.Helper()
	r.t.Logf("hls.js log:\n%s", strings.Join(pr.Log, "\n"))
	_, full := httpGet(r.t, r.src)
	_, delta := httpGet(r.t, r.src+"?_HLS_skip=YES")
	r.t.Logf("playlist:\n%s\ndelta:\n%s", full, delta)
}

// watch polls for d, failing at a fatal error or an end of stream, and
// returns the last probe.
func (r *hlsjsRun) watch(d time.Duration) hlsjsProbe {
	r.t.Helper()
	return r.until("", d, nil)
}

// until polls until ok (never, when nil) or d has passed, failing at a
// fatal error or an end of stream, and returns the last probe. With ok,
// reaching d fails the test, waiting for what.
func (r *hlsjsRun) until(what string, d time.Duration, ok func(hlsjsProbe) bool) hlsjsProbe {
	r.t.Helper()
	end := time.Now().Add(d)
	var pr hlsjsProbe
	for time.Now().Before(end) {
		pr = r.probe()
		if pr.Fatal != "" || pr.Ended {
			r.dump(pr)
			r.t.Fatalf("hls.js stopped: fatal %q, ended %v; errors %v", pr.Fatal, pr.Ended, pr.Errors)
		}
		if ok != nil && ok(pr) {
			return pr
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ok != nil {
		r.dump(pr)
		r.t.Fatalf("waiting %v for %s: played to %.2f s, errors %v", d, what, pr.Time, pr.Errors)
	}
	return pr
}

// TestHLSJSLowLatencyAcrossReconnect plays the seeder's real LL-HLS with
// hls.js (low-latency mode) in Chromium while ffmpeg publishes over RTMP,
// stops, and publishes again 2 s later (a broadcaster reconnect: a new
// epoch). Playback must go on across the gap and the epoch change: no
// fatal error, no end of stream, and the video keeps advancing.
func TestHLSJSLowLatencyAcrossReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := newHLSJSRun(t, ctx)
	firstDone := r.publish(12, 30)
	r.open(10 * time.Second) // the playlist exists once the first GOP (1 s) has closed
	published(t, firstDone, 30*time.Second)
	before := r.probe()
	if before.Version != hlsjsVersion || before.Time < 5 {
		t.Fatalf("hls.js %s played %.1f s of a 12 s publish; errors %v", before.Version, before.Time, before.Errors)
	}
	t.Logf("first publish over: played to %.2f s, latency %.2f s", before.Time, before.Latency)

	// The broadcaster is away for 2 s.
	gap := r.watch(2 * time.Second)
	r.publish(12, 30)
	after := r.watch(10 * time.Second)
	t.Logf("10 s into the second publish: played to %.2f s (%.2f s at the gap), latency %.2f s, targets %v, discontinuities %d, errors %v",
		after.Time, gap.Time, after.Latency, after.Targets, after.Discontinuities, after.Errors)
	if after.Discontinuities < 1 {
		t.Errorf("hls.js saw no discontinuity")
	}
	if after.Time < gap.Time+6 {
		r.dump(after)
		t.Fatalf("playback did not continue into the new epoch: %.2f s at the gap, %.2f s 10 s later", gap.Time, after.Time)
	}
	if len(after.Targets) != 1 {
		t.Errorf("target durations changed: %v", after.Targets)
	}
}

// TestHLSJSLowLatencyLongGOP: OBS's default keyframe interval in Advanced
// mode (250 frames, 8.3 s at 30 fps). The playlist appears once the first
// GOP has closed, with a target duration of 9 s that never changes, and
// hls.js in low-latency mode plays it from the parts without stalling for
// a GOP.
func TestHLSJSLowLatencyLongGOP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := newHLSJSRun(t, ctx)
	r.publish(40, 250)
	r.open(20 * time.Second)
	start := r.watch(2 * time.Second)
	end := r.watch(20 * time.Second)
	t.Logf("long GOP: played %.2f -> %.2f s in 20 s, latency %.2f s, targets %v, errors %v",
		start.Time, end.Time, end.Latency, end.Targets, end.Errors)
	if end.Time-start.Time < 17 {
		r.dump(end)
		t.Fatalf("played only %.2f s in 20 s", end.Time-start.Time)
	}
	if len(end.Targets) != 1 || !strings.HasPrefix(end.Targets[0], "9/") {
		t.Errorf("target durations %v, want one of 9 s", end.Targets)
	}
	// hls.js in Chromium 156 (Debian, 2026-12) starts a GOP behind the live
	// edge of an 8.3 s GOP (9.5 s latency; 1.5 s with the Chromium this test
	// was written on), at every commit of this session including its first:
	// a figure for issue 22, not a gate until its cause is found.
	t.Logf("latency %.2f s with a 0.8 s part hold-back", end.Latency)
}
