package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// g2gCameraJS runs in the publisher's tab before the page's own scripts
// (page.addScriptToEvaluateOnNewDocument). It replaces
// navigator.mediaDevices.getUserMedia with a camera that is a 640x360
// canvas drawing the blocks of g2gFilter (same geometry, so that
// g2gSamplerJS reads them) from the wall clock, performance.timeOrigin +
// performance.now() in ms, on every animation frame, captured with
// canvas.captureStream(30), and a microphone that is a 440 Hz WebAudio
// oscillator. It also keeps each RTCPeerConnection the page makes, and
// window.__g2gEncoder() reads the video outbound-rtp statistics of the
// last one.
var g2gCameraJS = fmt.Sprintf(`(() => {
	const BITS = %d, X0 = %d, W = %d, ROW = %d, INV = %d, B = %d;
	let src = null;
	const source = () => {
		if (src) return src;
		const c = document.createElement('canvas'); c.width = 640; c.height = 360;
		const g = c.getContext('2d');
		let n = 0;
		window.__g2gDrawn = 0;
		const draw = () => {
			const ms = Math.floor(performance.timeOrigin + performance.now()) %% 2 ** 32;
			n++;
			// Something moving below the blocks, and noise, so that the
			// encoder has more than the blocks to code (a camera's sensor
			// noise keeps an encoder at its bitrate cap).
			g.fillStyle = 'hsl(' + (n %% 360) + ' 40%% 35%%)'; g.fillRect(0, 0, 640, 360);
			for (let i = 0; i < 60; i++) {
				g.fillStyle = 'rgb(' + (Math.random() * 256 | 0) + ',' + (Math.random() * 256 | 0) + ',' + (Math.random() * 256 | 0) + ')';
				g.fillRect(Math.random() * 632 | 0, 72 + (Math.random() * 280 | 0), 8, 8);
			}
			g.fillStyle = '#ddd'; g.fillRect((n * 6) %% 640, 140, 96, 96);
			g.fillStyle = '#000'; g.fillRect(0, 0, X0 * 2 + BITS * W, INV + B + 4);
			g.fillStyle = '#fff';
			for (let i = 0; i < BITS; i++) g.fillRect(X0 + i * W, Math.floor(ms / 2 ** i) %% 2 ? ROW : INV, W, B);
			window.__g2gDrawn++;
		};
		const frame = () => { draw(); requestAnimationFrame(frame); };
		requestAnimationFrame(frame);
		// A hidden page gets no animation frames: timers (throttled) then.
		setInterval(() => { if (document.hidden) draw(); }, 33);
		draw();
		const ac = new AudioContext({sampleRate: 48000});
		const osc = ac.createOscillator(); osc.frequency.value = 440;
		const gain = ac.createGain(); gain.gain.value = 0.2;
		const dst = ac.createMediaStreamDestination();
		osc.connect(gain).connect(dst); osc.start(); ac.resume();
		src = new MediaStream([...c.captureStream(30).getVideoTracks(), ...dst.stream.getAudioTracks()]);
		return src;
	};
	navigator.mediaDevices.getUserMedia = async (c) => {
		const s = source(), out = [];
		if (c && c.video) out.push(...s.getVideoTracks().map((t) => t.clone()));
		if (c && c.audio) out.push(...s.getAudioTracks().map((t) => t.clone()));
		return new MediaStream(out);
	};
	const PC = window.RTCPeerConnection, pcs = [];
	window.RTCPeerConnection = class extends PC { constructor(...a) { super(...a); pcs.push(this); } };
	window.__g2gEncoder = async () => {
		const pc = pcs[pcs.length - 1];
		if (!pc) return {};
		let v = null, src = null, audio = 0;
		(await pc.getStats()).forEach((r) => {
			if (r.type === 'outbound-rtp' && r.kind === 'video' && (!v || r.bytesSent > v.bytesSent)) v = r;
			if (r.type === 'media-source' && r.kind === 'video') src = r;
			if (r.type === 'outbound-rtp' && r.kind === 'audio') audio += r.bytesSent || 0;
		});
		if (!v) return {};
		return {t: v.timestamp, bytes: v.bytesSent || 0, frames: v.framesEncoded || 0, keys: v.keyFramesEncoded || 0, captured: src ? src.frames || 0 : 0, audio,
			encodeS: v.totalEncodeTime || 0, w: v.frameWidth || 0, h: v.frameHeight || 0, encoder: v.encoderImplementation || '',
			limit: v.qualityLimitationReason || '', target: v.targetBitrate || 0, drawn: window.__g2gDrawn, hidden: document.hidden};
	};
})()`, g2gBits, g2gX0, g2gW, g2gRowY, g2gInvY, g2gBlock)

// g2gEncoder is what window.__g2gEncoder returns.
type g2gEncoder struct {
	T      float64 `json:"t"` // ms
	Bytes  float64 `json:"bytes"`
	Frames float64 `json:"frames"`
	Keys   float64 `json:"keys"`
	// Captured is the frames the track gave the encoder (media-source).
	Captured float64 `json:"captured"`
	Audio    float64 `json:"audio"` // audio bytes sent
	EncodeS  float64 `json:"encodeS"`
	W        float64 `json:"w"`
	H        float64 `json:"h"`
	Encoder  string  `json:"encoder"`
	Limit    string  `json:"limit"`
	Target   float64 `json:"target"` // bit/s
	Drawn    float64 `json:"drawn"`
	Hidden   bool    `json:"hidden"`
}

// g2gWHIP publishes the stamped pattern by WHIP from the real publish page
// (/publish/demo, unchanged) in a second Chromium browser context, its
// camera and microphone replaced by g2gCameraJS, at 1.5 Mbit/s as ffmpeg's
// (the page's bitrate choice; the canvas is 640x360, as ffmpeg's pattern).
// The rest of the run is measureG2G's at depth 1: the stamps are the
// machine's wall clock in both tabs, so latency = the viewer's clock − the
// stamp.
//
// What it measures: from the moment the canvas is drawn to the moment the
// viewer presents that frame: canvas capture, Chromium's WebRTC H.264
// encoder (the one a person's browser uses, with its own rate control and
// pacer), RTP over loopback to the WHIP ingest, the seeder's packaging into
// chunks, the mesh (one hop: the root peer is the browser) and the
// player's buffer.
//
// What it does not: a real camera's exposure, readout and driver
// buffering (tens of ms on real hardware; the canvas frame is captured at
// most a frame after it is drawn), real microphone capture, a network
// (loopback: no loss, no queueing, so the encoder's congestion control
// never backs off), and hardware encoders (headless Chromium here encodes
// in software, presumably OpenH264: getStats hides encoderImplementation
// from a page that holds no real capture permission). The canvas carries
// 60 random 8x8 squares a frame for sensor noise: a flat scene left the
// encoder at 230–270 kbit/s, 400 squares held it at 17 fps; with 60 it
// sends at the page's 1.5 Mbit/s cap at 30 fps, as ffmpeg does (its chunks
// 1.54 against 1.62–1.64 Mbit/s). The browser picks its own keyframe
// interval (it makes keyframes only when asked: the WHIP server's PLIs,
// every 2 s without one; ffmpeg's is 1 s) and its own bitrate under the
// page's cap; both are logged over the sample from the publisher's
// RTCPeerConnection.getStats (outbound-rtp: bytesSent, framesEncoded,
// keyFramesEncoded; media-source: frames captured), as is the seeder's
// keyframe interval gauge. Both tabs run in one Chromium, which also
// decodes and presents the viewer's frames: on this 2-core machine the
// publisher's capture and encode compete with the viewer.
//
// Figures (BANYAN_G2G_SETTLE=20s, load 6–8): p50/p95 771/839 and 602/619
// ms, against RTMP zerolatency 767/792 and 735/738 ms between them; most
// of either is the player's buffer (in buffer → presented), which under
// WHIP wandered 350–730 ms behind its newest media where under RTMP it
// held 540–590.
func g2gWHIP(t *testing.T, ctx, bctx context.Context, up *upProc) func() func() {
	_, key := up.rtmpURL(t)
	pctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	err := chromedp.Do(pctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: g2gCameraJS})
			return err
		}),
		chromedp.Navigate(up.base+"/publish/demo"))
	if err != nil {
		t.Fatalf("open the publisher: %v", err)
	}
	waitPublisher(t, pctx, "the canvas camera", 30*time.Second, func(p publisherProbe) bool { return p.State == "ready" })
	if err := chromedp.Do(pctx,
		chromedp.SetValue(chromedp.ID("resolution"), "360"),
		chromedp.SetValue(chromedp.ID("bitrate"), "1500"),
		chromedp.SetValue(chromedp.ID("key"), key),
		chromedp.Click(chromedp.ID("golive"))); err != nil {
		t.Fatalf("go live: %v", err)
	}
	live := waitPublisher(t, pctx, "live with media flowing", 40*time.Second, func(p publisherProbe) bool {
		return p.State == "live" && p.FramesSent > 0
	})
	t.Logf("publisher live: %s, connected %v ms after go live", live.Codec, live.Timing["connected"])
	encoder := func() g2gEncoder {
		c, cancel := context.WithTimeout(pctx, 5*time.Second)
		defer cancel()
		e, err := chromedp.Run(c, chromedp.Evaluate[g2gEncoder](`window.__g2gEncoder()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("publisher getStats: %v", err)
		}
		return e
	}
	return func() func() {
		a := encoder()
		plis := metric(t, up, "banyan_whip_plis_total")
		return func() {
			b := encoder()
			s := (b.T - a.T) / 1000
			frames, keys := b.Frames-a.Frames, b.Keys-a.Keys
			kfi := "no keyframe"
			if keys > 0 {
				kfi = fmt.Sprintf("%.0f frames, %.2f s", frames/keys, s/keys)
			}
			t.Logf("figures: WHIP publisher over %.1f s: %s %.0fx%.0f, %.0f kbit/s sent (target %.0f, limited by %q), %.1f fps encoded of %.1f captured (%.1f drawn), "+
				"%.0f keyframes: one every %s; encode %.1f ms/frame; audio %.0f kbit/s; page hidden %v; the seeder's keyframe interval gauge %.2f s, %.0f PLIs sent meanwhile",
				s, b.Encoder, b.W, b.H, (b.Bytes-a.Bytes)*8/s/1000, b.Target/1000, b.Limit, frames/s, (b.Captured-a.Captured)/s, (b.Drawn-a.Drawn)/s,
				keys, kfi, 1000*(b.EncodeS-a.EncodeS)/max(frames, 1), (b.Audio-a.Audio)*8/s/1000, b.Hidden,
				metric(t, up, `banyan_seeder_keyframe_interval_seconds{stream="demo"}`), metric(t, up, "banyan_whip_plis_total")-plis)
		}
	}
}
