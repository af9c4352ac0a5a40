package web_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/web"
)

// TestViewerInChromium is the viewer end to end in a real browser: the
// wasm built by the build helper, served by the web handler, plays a live
// stream of real H.264+AAC CMAF, sealed and served by the seeder's origin,
// after a Join/Welcome with a test tracker. It asserts that video plays
// (currentTime advances by 3 s), that the page says "live", that the
// picture is not black, that a broadcaster restart (a new epoch whose
// timestamps start at 0 again) plays on without a reload, and that the
// viewer reports stats to the tracker.
func TestViewerInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test")
	}
	e2e.Require(t, "chromium")
	ffmpeg, ffprobe := e2e.Require(t, "ffmpeg"), e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	start := time.Now()

	// The viewer, built the way `make wasm` builds it.
	dist := t.TempDir()
	build := exec.CommandContext(ctx, "go", "run", "./internal/webbuild", "-out", dist)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("webbuild: %v\n%s", err, out)
	}
	mb, err := os.ReadFile(filepath.Join(dist, web.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	man, err := web.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	wasm := man.Assets[web.AssetWasm]
	t.Logf("peer.wasm: %d bytes, gzip %d bytes (built in %v)", wasm.Size, wasm.GzipSize, time.Since(start).Round(time.Millisecond))

	// Real media: libx264 at its defaults (B-frames) and AAC, packaged into CMAF.
	init, chunks := encodeCMAF(t, ctx, ffmpeg, ffprobe, 14) // 14 s: a loaded machine took 5.4 s to the first frame

	// Seal it as the seeder would and serve it from the seeder's origin.
	const stream = "e2e"
	pub, mk, sealer := testSealer(t, stream)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	origin := seeder.NewOrigin(quiet)
	defer origin.Close()
	window := origin.Stream(stream, 30*time.Second, false)
	pubr := &publisher{t: t, sealer: sealer, window: window, init: init, chunks: chunks}

	// A tracker that admits the browser.
	tr := &testTracker{t: t, stream: stream, pub: pub, key: mk, offAir: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("/ws", tr)
	mux.Handle("/chunks/", origin.Handler())
	mux.Handle("/", web.NewHandler(web.Config{Dist: os.DirFS(dist)}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tr.origin = srv.URL

	// Publish epoch 1 in real time, two seconds ahead of the viewer.
	const epoch1, epoch2 = 1000, 1001
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	epochDone := make(chan struct{})
	go func() {
		defer close(epochDone)
		pubr.publish(pubCtx, epoch1)
	}()
	if !sleepCtx(ctx, 2*time.Second) {
		t.Fatal("timeout")
	}

	bctx := e2e.Browser(t, ctx, chromedp.WindowSize(1280, 900))
	var consoleMu sync.Mutex
	var console []string
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			consoleMu.Lock()
			if len(console) < 500 {
				console = append(console, m.String()+" "+m.URL)
			}
			consoleMu.Unlock()
		}
	}()
	dumpConsole := func() {
		consoleMu.Lock()
		defer consoleMu.Unlock()
		t.Logf("browser console:\n%s", strings.Join(console, "\n"))
	}

	navStart := time.Now()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/watch/"+stream)); err != nil {
		t.Fatal(err)
	}
	type probe struct {
		State     string  `json:"state"`
		Reason    string  `json:"reason"`
		Time      float64 `json:"time"`
		Paused    bool    `json:"paused"`
		Muted     bool    `json:"muted"`
		UnmuteBtn bool    `json:"unmute"`
		FirstMS   float64 `json:"first"`
		Stats     *struct {
			BytesOrigin float64 `json:"bytesOrigin"`
			BehindMs    float64 `json:"behindMs"`
			BufferMs    float64 `json:"bufferMs"`
			Stalls      float64 `json:"stalls"`
			Epoch       float64 `json:"epoch"`
			// Phases is the join timeline: ms since navigation per step.
			Phases map[string]float64 `json:"phases"`
		} `json:"stats"`
	}
	const probeJS = `(() => { const p = document.querySelector('banyan-player'); if (!p) return {state: 'no element'};
		const u = p.shadowRoot.querySelector('.unmute');
		return {state: p.state, reason: p.reason, time: p.video.currentTime, paused: p.video.paused,
			muted: p.video.muted, unmute: !!u && !u.hidden, first: p.stats && p.stats.firstFrameMs || 0, stats: p.stats}; })()`
	look := func() probe {
		t.Helper()
		ectx, ecancel := context.WithTimeout(bctx, 5*time.Second)
		defer ecancel()
		p, err := chromedp.Run(ectx, chromedp.Evaluate[probe](probeJS))
		if err != nil {
			dumpConsole()
			t.Fatalf("evaluate: %v", err)
		}
		return p
	}
	// waitFor polls until ok or the deadline; it fails with the last probe.
	waitFor := func(what string, d time.Duration, ok func(probe) bool) probe {
		t.Helper()
		deadline := time.Now().Add(d)
		var p probe
		for {
			p = look()
			if ok(p) {
				return p
			}
			if p.State == "error" || time.Now().After(deadline) {
				dumpConsole()
				t.Fatalf("waiting for %s: last %+v", what, p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	live := waitFor("live", 20*time.Second, func(p probe) bool { return p.State == "live" && p.Time > 0 })
	joinLive := time.Since(navStart)
	if !live.Muted || !live.UnmuteBtn {
		t.Fatalf("autoplay must be muted with an unmute button: %+v", live)
	}
	p := waitFor("3 s of playback", 12*time.Second, func(p probe) bool { return p.Time >= live.Time+3 })
	if p.State != "live" || p.Paused {
		t.Fatalf("after 3 s of playback: %+v", p)
	}
	first := waitFor("stats", 3*time.Second, func(p probe) bool { return p.Stats != nil && p.FirstMS > 0 })
	if first.Stats.BytesOrigin <= 0 || first.Stats.BehindMs <= 0 || first.Stats.BehindMs > 3000 {
		t.Fatalf("stats: %+v", *first.Stats)
	}
	t.Logf("join to first frame (navigation start → first frame presented): %.0f ms; to state live: %v; behind live %.0f ms, buffer %.0f ms",
		first.FirstMS, joinLive.Round(time.Millisecond), first.Stats.BehindMs, first.Stats.BufferMs)
	// The join timeline has every step, and the MediaSource went on the
	// element before the init segment came, so that the browser's media
	// pipeline starts while the viewer joins (it used to start only then:
	// ~250 ms to sourceopen in Chromium). The viewer's first tracker
	// session is the websocket the page opened while the wasm loaded
	// (trackerEarly), not one it dialed after starting.
	ph := first.Stats.Phases
	for _, step := range []string{"start", "compiled", "instantiated", "wasmMain", "trackerEarly", "welcome", "mediaSourceAttached", "sourceOpen",
		"playerInit", "sourceBuffer", "firstAppend", "firstFrame"} {
		if _, ok := ph[step]; !ok {
			t.Errorf("join timeline without %s: %v", step, ph)
		}
	}
	if ph["mediaSourceAttached"] >= ph["playerInit"] {
		t.Errorf("MediaSource attached at %.0f ms, not before the init segment (%.0f ms): %v", ph["mediaSourceAttached"], ph["playerInit"], ph)
	}

	// The picture is not black.
	shot, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	e2e.SaveArtifact(t, "viewer.png", shot)
	if frac := e2e.BrightFraction(t, shot); frac < 0.05 {
		t.Fatalf("screenshot is %.1f %% non-black", 100*frac)
	}

	// Broadcaster restart: epoch 1 ends, epoch 2 starts with timestamps
	// from 0. Playback goes on in the same page.
	<-epochDone
	restartAt := look().Time
	go pubr.publish(pubCtx, epoch2)
	p = waitFor("playback across the restart", 20*time.Second, func(p probe) bool {
		return p.State == "live" && p.Stats != nil && p.Stats.Epoch == epoch2 && p.Time >= restartAt+2.5
	})
	t.Logf("restart: currentTime %.2f → %.2f, stalls %v", restartAt, p.Time, p.Stats.Stalls)

	if n := tr.statsSeen(); n == 0 {
		t.Fatal("the viewer sent no stats to the tracker")
	}

	// The unmute button, clicked like a viewer does, unmutes and goes.
	unmute := chromedp.JSPath(`document.querySelector('banyan-player').shadowRoot.querySelector('.unmute')`)
	if err := chromedp.Do(bctx, chromedp.Click(unmute)); err != nil {
		t.Fatal(err)
	}
	waitFor("unmuted", 3*time.Second, func(p probe) bool { return !p.Muted && !p.UnmuteBtn && p.State == "live" && !p.Paused })

	// A stream nobody publishes: the page waits for the broadcast.
	wctx, wcancel := chromedp.NewContext(bctx)
	if err := chromedp.Do(wctx, chromedp.Navigate(srv.URL+"/watch/nobody")); err != nil {
		t.Fatal(err)
	}
	var wstate string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && wstate != "waiting"; time.Sleep(200 * time.Millisecond) {
		wstate, err = chromedp.Run(wctx, chromedp.Evaluate[string](`document.querySelector('banyan-player').state`))
		if err != nil {
			t.Fatal(err)
		}
	}
	wcancel()
	if wstate != "waiting" {
		t.Fatalf("unpublished stream: state %q, want waiting", wstate)
	}

	// A phone-sized screen: the player fits the width and keeps its
	// picture.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))); err != nil {
		t.Fatal(err)
	}
	sleepCtx(ctx, 500*time.Millisecond)
	box, err := chromedp.Run(bctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('banyan-player').getBoundingClientRect();
		return [r.width, r.height, document.documentElement.scrollWidth]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if box[0] > 390 || box[1] < 390*9/16-1 || box[2] > 390 {
		t.Fatalf("on a 390 px wide screen: player %.0fx%.0f, page %v px wide", box[0], box[1], box[2])
	}
	shot, err = chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	e2e.SaveArtifact(t, "viewer-phone.png", shot)
	// The broadcaster stops: the page plays out its buffer and says so,
	// without counting a stall.
	stalls := look().Stats.Stalls
	stopPub()
	close(tr.offAir)
	p = waitFor("waiting", 10*time.Second, func(p probe) bool { return p.State == "waiting" })
	if p.Stats.Stalls != stalls {
		t.Fatalf("the end of the broadcast counted as a stall: %v → %v", stalls, p.Stats.Stalls)
	}

	// Where the time to the first frame went: the wasm download.
	res, err := chromedp.Run(bctx, chromedp.Evaluate[[]float64](`(() => {
		const e = performance.getEntriesByType('resource').find(r => r.name.endsWith('.wasm'));
		return e ? [e.startTime, e.responseEnd, e.transferSize, e.decodedBodySize] : []; })()`))
	if err == nil && len(res) == 4 {
		t.Logf("wasm fetch %.0f → %.0f ms after navigation, %.0f bytes on the wire, %.0f decoded", res[0], res[1], res[2], res[3])
		// Chromium accepts br, also over plain HTTP to 127.0.0.1: the
		// brotli copy must be what came (0: from a cache, no figure).
		if res[2] > 0 && res[2] >= float64(wasm.GzipSize) {
			t.Errorf("the wasm came as %.0f bytes, not the %d of its brotli copy", res[2], wasm.BrotliSize)
		}
	}
	consoleMu.Lock()
	var bad []string
	for _, m := range console {
		// The origin answers 404 for the chunk after the last of an
		// epoch: expected, and the browser logs every failed fetch.
		expected := strings.Contains(m, "404") && strings.Contains(m, "/chunks/"+stream+"/")
		// The wasm must compile while it downloads (application/wasm).
		streaming := strings.Contains(m, "streaming compilation failed")
		if streaming || !expected && (strings.HasPrefix(m, "error") || strings.HasPrefix(m, "exception") || strings.Contains(m, "level=ERROR")) {
			bad = append(bad, m)
		}
	}
	consoleMu.Unlock()
	if len(bad) > 0 || os.Getenv("BANYAN_E2E_CONSOLE") == "1" {
		dumpConsole()
	}
	if len(bad) > 0 {
		t.Fatalf("errors in the browser console: %q", bad)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// publisher feeds sealed chunks into the origin's window in real time.
type publisher struct {
	t      *testing.T
	sealer *chunk.Sealer
	window *seeder.Window
	init   cmaf.Init
	chunks []cmaf.Chunk
}

// publish runs one epoch of the whole recording, paced by media time,
// then ends it.
func (p *publisher) publish(ctx context.Context, epoch uint32) {
	seal := func(h chunk.Header, data []byte) []byte {
		b, err := p.sealer.Seal(h, data)
		if err != nil {
			panic(err)
		}
		return b
	}
	now := time.Now()
	p.window.StartEpoch(seeder.EpochInfo{Epoch: epoch, Codecs: p.init.Codecs, Init: &seeder.Entry{
		Epoch: epoch, Sealed: seal(chunk.Header{Flags: chunk.FlagInit, Epoch: epoch}, p.init.Data), Added: now,
	}})
	defer p.window.EndEpoch()
	t0 := p.chunks[0].MediaTime
	for _, c := range p.chunks {
		if !sleepCtx(ctx, time.Until(now.Add(c.MediaTime-t0))) {
			return
		}
		var flags chunk.Flags
		if c.Keyframe {
			flags |= chunk.FlagKeyframe
		}
		if c.Discontinuity {
			flags |= chunk.FlagDiscontinuity
		}
		h := chunk.Header{Flags: flags, Epoch: epoch, Seq: c.Seq,
			MediaTime: uint64(c.MediaTime / time.Microsecond), Duration: uint32(c.Duration / time.Microsecond)}
		// The window holds an epoch's chunks without holes and refuses
		// one out of order, so a lost chunk is simulated at the HTTP
		// origin (TestViewerLostChunkLongGOP), not by leaving it out here.
		if !p.window.Add(&seeder.Entry{Epoch: epoch, Seq: c.Seq, Keyframe: c.Keyframe, MediaTime: c.MediaTime,
			Duration: c.Duration, Sealed: seal(h, c.Data), Added: time.Now()}) {
			p.t.Errorf("publisher: the window refused chunk %d/%d", epoch, c.Seq)
			return
		}
	}
}

// testTracker answers a browser's Join with a Welcome and counts Stats.
type testTracker struct {
	t      *testing.T
	stream string
	pub    ed25519.PublicKey
	key    chunk.MasterKey
	origin string

	mu    sync.Mutex
	stats int
	// offAir is closed when the broadcast stops.
	offAir chan struct{}
}

func (tr *testTracker) statsSeen() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stats
}

func (tr *testTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(protocol.MaxMessage)
	ctx := r.Context()
	_, b, err := c.Read(ctx)
	if err != nil {
		return
	}
	m, err := protocol.Decode(b)
	join, ok := m.(protocol.Join)
	if err != nil || !ok || join.Kind != protocol.KindBrowser {
		tr.t.Errorf("tracker: first message %v %v", m, err)
		return
	}
	kb, _ := json.Marshal(tr.key)
	var ck protocol.ContentKey
	_ = json.Unmarshal(kb, &ck)
	welcome, _ := protocol.Encode(protocol.Welcome{
		Peer: 1, Stripes: 2, PublicKey: encodeKey(tr.pub), Keys: []protocol.ContentKey{ck},
		OriginURL: tr.origin, Live: join.Stream == tr.stream, StatsMillis: 1000,
	})
	if err := c.Write(ctx, websocket.MessageText, welcome); err != nil {
		return
	}
	// Like the real tracker: when the publish ends, viewers hear that the
	// stream is no longer live.
	go func() {
		select {
		case <-tr.offAir:
			b, _ := protocol.Encode(protocol.Keys{Keys: []protocol.ContentKey{ck}, PublicKey: encodeKey(tr.pub), Live: false})
			c.Write(ctx, websocket.MessageText, b)
		case <-ctx.Done():
		}
	}()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		m, err := protocol.Decode(b)
		if err != nil {
			tr.t.Errorf("tracker: %v", err)
			return
		}
		if _, ok := m.(protocol.Stats); ok {
			tr.mu.Lock()
			tr.stats++
			tr.mu.Unlock()
		}
	}
}

func encodeKey(k ed25519.PublicKey) string {
	b, _ := json.Marshal([]byte(k)) // standard base64, quoted
	return strings.Trim(string(b), `"`)
}

// encodeCMAF encodes seconds of test video (libx264, B-frames, 1 s GOP)
// and AAC audio with ffmpeg and packages them with the CMAF packager, the
// way the cmaf package's own end-to-end test does.
func encodeCMAF(t *testing.T, ctx context.Context, ffmpeg, ffprobe string, seconds int) (cmaf.Init, []cmaf.Chunk) {
	t.Helper()
	// x264's defaults (3 B-frames in a pyramid, placed adaptively), with
	// a 1 s GOP: what an untuned broadcaster sends.
	return encodeCMAFArgs(t, ctx, ffmpeg, ffprobe, seconds, "-g", "30")
}

// encodeCMAFArgs is encodeCMAF with these x264 arguments.
func encodeCMAFArgs(t *testing.T, ctx context.Context, ffmpeg, ffprobe string, seconds int, x264 ...string) (cmaf.Init, []cmaf.Chunk) {
	t.Helper()
	m := e2e.EncodeX264Defaults(t, ctx, ffmpeg, ffprobe, t.TempDir(), "640x360", seconds, x264...)
	all, audio := m.VideoAUs, m.AudioAUs
	// Interleave by DTS, as an ingest delivers them.
	var merged []media.AccessUnit
	for i, j := 0, 0; i < len(all) || j < len(audio); {
		if j >= len(audio) || (i < len(all) && all[i].DTS <= audio[j].DTS) {
			merged = append(merged, all[i])
			i++
		} else {
			merged = append(merged, audio[j])
			j++
		}
	}

	var inits []cmaf.Init
	var chunks []cmaf.Chunk
	p, err := cmaf.New(cmaf.Config{
		OnInit:  func(i cmaf.Init) error { inits = append(inits, i); return nil },
		OnChunk: func(c cmaf.Chunk) error { chunks = append(chunks, c); return nil },
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.VideoConfig(m.Video); err != nil {
		t.Fatal(err)
	}
	if err := p.AudioConfig(m.Audio); err != nil {
		t.Fatal(err)
	}
	for _, au := range merged {
		if err := p.WriteAU(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(inits) != 1 || len(chunks) < 4*seconds-4 {
		t.Fatalf("%d inits, %d chunks", len(inits), len(chunks))
	}
	t.Logf("media: %s, %d chunks", inits[0].MIME(), len(chunks))
	return inits[0], chunks
}

// testSealer seals stream as the seeder would: a fresh signing key and
// master key; the public key and master key go to the test tracker.
func testSealer(t *testing.T, stream string) (ed25519.PublicKey, chunk.MasterKey, *chunk.Sealer) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	mk, err := chunk.NewMasterKey(7, nil)
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := chunk.NewKeyring(mk)
	sealer, err := chunk.NewSealer(chunk.SealerConfig{Stream: stream, PrivateKey: priv, Keys: ring, KeyID: mk.ID})
	if err != nil {
		t.Fatal(err)
	}
	return pub, mk, sealer
}
