package main

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/http"
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
const hls = new Hls({lowLatencyMode: true, debug: {log: keep('log'), info: keep('info'), debug: keep('debug'), warn: keep('warn'), error: keep('error')}});
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

// TestHLSJSLowLatencyAcrossReconnect plays the seeder's real LL-HLS with
// hls.js (low-latency mode) in Chromium while ffmpeg publishes over RTMP,
// stops, and publishes again 2 s later (a broadcaster reconnect: a new
// epoch). Playback must go on across the gap and the epoch change: no
// fatal error, no end of stream, and the video keeps advancing.
func TestHLSJSLowLatencyAcrossReconnect(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bctx := e2e.Browser(t, ctx, chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	p := startUp(t, t.TempDir())
	url, key := p.rtmpURL(t)

	// The page comes from another origin, as it would in real use (the
	// seeder's HLS answers with CORS).
	src := p.base + "/hls/demo/index.m3u8"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hls.min.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(hlsjs)
		default:
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, strings.Replace(hlsjsPage, "SRC", src, 1))
		}
	})}
	go page.Serve(ln)
	defer page.Close()

	first := publish(ctx, ffmpeg, url+"/"+key, 12)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Wait() }()
	// The playlist exists once the first GOP (1 s) has closed.
	for i := 0; ; i++ {
		if code, _ := httpGet(t, src); code == http.StatusOK {
			break
		}
		if i == 200 {
			t.Fatal("no playlist 10 s after publishing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := chromedp.Run(bctx, chromedp.Navigate("http://"+ln.Addr().String()+"/")); err != nil {
		t.Fatal(err)
	}
	probe := func() hlsjsProbe {
		t.Helper()
		pr, err := chromedp.Run(bctx, chromedp.Evaluate[hlsjsProbe](
			`Object.assign({}, window.probe, {time: document.querySelector('video').currentTime, latency: hls.latency})`))
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		return pr
	}
	// dump logs hls.js's log and the playlist as it is now.
	dump := func(pr hlsjsProbe) {
		t.Helper()
		t.Logf("hls.js log:\n%s", strings.Join(pr.Log, "\n"))
		_, full := httpGet(t, src)
		_, delta := httpGet(t, src+"?_HLS_skip=YES")
		t.Logf("playlist:\n%s\ndelta:\n%s", full, delta)
	}
	// watch polls until d has passed and returns the last probe.
	watch := func(d time.Duration) hlsjsProbe {
		t.Helper()
		end := time.Now().Add(d)
		var pr hlsjsProbe
		for time.Now().Before(end) {
			pr = probe()
			if pr.Fatal != "" || pr.Ended {
				dump(pr)
				t.Fatalf("hls.js stopped: fatal %q, ended %v; errors %v", pr.Fatal, pr.Ended, pr.Errors)
			}
			time.Sleep(250 * time.Millisecond)
		}
		return pr
	}

	select {
	case err := <-firstDone:
		if err != nil {
			t.Fatalf("first publish: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("first publish did not end")
	}
	before := probe()
	if before.Version != hlsjsVersion || before.Time < 5 {
		t.Fatalf("hls.js %s played %.1f s of a 12 s publish; errors %v", before.Version, before.Time, before.Errors)
	}
	t.Logf("first publish over: played to %.2f s, latency %.2f s", before.Time, before.Latency)

	// The broadcaster is away for 2 s.
	gap := watch(2 * time.Second)
	second := publish(ctx, ffmpeg, url+"/"+key, 12)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer second.Wait()
	after := watch(10 * time.Second)
	t.Logf("10 s into the second publish: played to %.2f s (%.2f s at the gap), latency %.2f s, targets %v, discontinuities %d, errors %v",
		after.Time, gap.Time, after.Latency, after.Targets, after.Discontinuities, after.Errors)
	if after.Discontinuities < 1 {
		t.Errorf("hls.js saw no discontinuity")
	}
	if after.Time < gap.Time+6 {
		dump(after)
		t.Fatalf("playback did not continue into the new epoch: %.2f s at the gap, %.2f s 10 s later", gap.Time, after.Time)
	}
	if len(after.Targets) != 1 {
		t.Errorf("target durations changed: %v", after.Targets)
	}
}
