package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/internal/e2e"
)

// TestWHIPAV1 (issue 22, codecs OBS sends): a WHIP publisher that offers
// only AV1 (OBS's WHIP output with an AV1 encoder) publishes into a real
// `banyan up`. Before, the POST was refused with 422 "H.264 video is
// required". Now: the multivariant playlist names av01, every frame sent
// decodes from the sealed CMAF, and Chromium plays it. The publisher is
// pion sending SVT-AV1 output ("pion"), and Chromium's own AV1 encoder on
// a page that forces AV1 with setCodecPreferences ("chromium").
func TestWHIPAV1(t *testing.T) {
	t.Run("pion", testWHIPAV1Pion)
	t.Run("chromium", testWHIPAV1Chromium)
}

func testWHIPAV1Pion(t *testing.T) {
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	up := startUp(t, filepath.Join(dir, "data"), "--ice-loopback", "--stripes", "1")
	_, key := up.rtmpURL(t)
	var vctx context.Context
	if !testing.Short() {
		vctx = openViewer(t, browser(t, ctx), up.base+"/watch/demo")
	}

	c := newAV1Publisher(t)
	location := c.publish(t, up.base+"/whip/demo", key)
	tus := av1test.TUs(t)
	var all [][]byte
	for range 5 { // 7.5 s: the viewer has time to start
		all = append(all, tus...)
	}
	sent := make(chan error, 1)
	go func() { sent <- c.stream(ctx, all) }()

	vcodec := waitCodecs(t, up, `CODECS="(av01\.0\.\d\dM\.08),Opus",RESOLUTION=320x180`)
	if vctx != nil {
		waitViewer(t, vctx, vcodec+" playback", 30*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
		t.Logf("Chromium plays %s published over WHIP", vcodec)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodDelete, up.base+location, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE %s: %v %v", location, resp, err)
	}

	out, _ := sealedEpoch(t, up, dir, vcodec)
	got := e2e.FrameCounts(t, ctx, ffprobe, out)
	n, _ := strconv.Atoi(got["video/av1"])
	// Every frame from the first key frame the seeder saw (the first, unless
	// the first packets raced the track's setup).
	if n < len(all)-av1test.KeyEvery || got["audio/opus"] == "" {
		t.Fatalf("ffprobe of the sealed epoch: %v, want %d AV1 frames (at least %d) and Opus", got, len(all), len(all)-av1test.KeyEvery)
	}
	t.Logf("%s over WHIP: %d of %d AV1 frames and %s Opus frames decoded from the sealed epoch", vcodec, n, len(all), got["audio/opus"])
}

// waitCodecs waits for the multivariant playlist and returns the video
// codec it names (the first group of re).
func waitCodecs(t *testing.T, up *upProc, re string) string {
	t.Helper()
	codecsRE := regexp.MustCompile(re)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, b := httpGet(t, up.base+"/hls/demo/main.m3u8"); code == 200 {
			m := codecsRE.FindSubmatch(b)
			if m == nil {
				t.Fatalf("multivariant playlist:\n%s", b)
			}
			return string(m[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("no playlist 30 s after publishing; server: %s", up.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sealedEpoch writes the live epoch's chunks of stream demo, opened as a
// viewer opens them, to one fragmented MP4, and returns it and its size.
// The epoch's codec string must start with vcodec.
func sealedEpoch(t *testing.T, up *upProc, dir, vcodec string) (string, int) {
	t.Helper()
	pub, keys := viewerKeys(t, up.base, "demo")
	var live liveDoc
	if code, b := httpGet(t, up.base+"/chunks/demo/live"); code != 200 || json.Unmarshal(b, &live) != nil {
		t.Fatalf("live document: HTTP %d %s", code, b)
	}
	if !strings.HasPrefix(live.Codecs, vcodec) {
		t.Fatalf("live document codecs %q, playlist %q", live.Codecs, vcodec)
	}
	var file bytes.Buffer
	for seq := uint64(0); ; seq++ {
		code, sealed := httpGet(t, fmt.Sprintf("%s/chunks/demo/%d/%d", up.base, live.Epoch, seq))
		if code == 404 && seq > 0 {
			break
		}
		_, plain, err := chunk.Open(pub, "demo", keys, sealed)
		if err != nil {
			t.Fatalf("chunk %d: HTTP %d: %v", seq, code, err)
		}
		file.Write(plain)
	}
	out := filepath.Join(dir, "epoch.mp4")
	if err := os.WriteFile(out, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return out, file.Len()
}

// av1Publisher is a pion WHIP client that offers AV1 and Opus only.
type av1Publisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticSample
}

func newAV1Publisher(t *testing.T) *av1Publisher {
	t.Helper()
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		p webrtc.RTPCodecParameters
		k webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: 45}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
	} {
		if err := m.RegisterCodec(c.p, c.k); err != nil {
			t.Fatal(err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	p := &av1Publisher{pc: pc}
	if p.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, "video", "av1"); err != nil {
		t.Fatal(err)
	}
	if p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "av1"); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*webrtc.TrackLocalStaticSample{p.video, p.audio} {
		s, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go func() { // read RTCP so that the interceptors (NACK) work
			for {
				if _, _, err := s.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	return p
}

// publish POSTs the offer with every candidate, applies the answer and
// waits for the connection; it returns the session's Location.
func (p *av1Publisher) publish(t *testing.T, url, key string) string {
	t.Helper()
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(p.pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.pc.ConnectionState() != webrtc.PeerConnectionStateConnected; {
		if time.Now().After(deadline) {
			t.Fatalf("not connected: %s", p.pc.ConnectionState())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return resp.Header.Get("Location")
}

// stream paces the temporal units at 30 fps with 20 ms Opus frames (one
// CELT frame each, numbered) alongside.
func (p *av1Publisher) stream(ctx context.Context, tus [][]byte) error {
	const vdur, adur = time.Second / 30, 20 * time.Millisecond
	start := time.Now()
	total := time.Duration(len(tus)) * vdur
	nv, na := 0, 0
	for nv < len(tus) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		nextV, nextA := start.Add(time.Duration(nv)*vdur), start.Add(time.Duration(na)*adur)
		if time.Duration(na)*adur < total && nextA.Before(nextV) {
			time.Sleep(time.Until(nextA))
			if err := p.audio.WriteSample(pmedia.Sample{Data: []byte{0xf8, byte(na >> 8), byte(na)}, Duration: adur}); err != nil {
				return fmt.Errorf("write audio: %w", err)
			}
			na++
			continue
		}
		time.Sleep(time.Until(nextV))
		if err := p.video.WriteSample(pmedia.Sample{Data: tus[nv], Duration: vdur}); err != nil {
			return fmt.Errorf("write video: %w", err)
		}
		nv++
	}
	return nil
}

// whipAV1JS publishes the fake camera and microphone over WHIP with AV1
// forced by setCodecPreferences, and resolves to the HTTP status and body
// of the POST (and, on 201, applies the answer).
const whipAV1JS = `(async (key) => {
  const media = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 180, frameRate: 30}, audio: true});
  const pc = new RTCPeerConnection();
  window.__whipPC = pc;
  const vt = pc.addTransceiver(media.getVideoTracks()[0], {direction: "sendonly"});
  pc.addTransceiver(media.getAudioTracks()[0], {direction: "sendonly"});
  const av1 = RTCRtpSender.getCapabilities("video").codecs.filter(c => /^video\/av1$/i.test(c.mimeType));
  if (!av1.length) return {status: 0, body: "this Chromium cannot send AV1"};
  vt.setCodecPreferences(av1);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    setTimeout(resolve, 5000);
  });
  const res = await fetch("/whip/demo", {method: "POST", headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + key}, body: pc.localDescription.sdp});
  const body = await res.text();
  if (res.status === 201) await pc.setRemoteDescription({type: "answer", sdp: body});
  return {status: res.status, body: res.status === 201 ? "" : body};
})`

// whipStatsJS reports the video sender's codec and frames sent.
const whipStatsJS = `(async () => {
  const stats = await window.__whipPC.getStats();
  let codec = "", frames = 0, keys = 0, w = 0;
  stats.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      frames = s.framesEncoded || 0; keys = s.keyFramesEncoded || 0; w = s.frameWidth || 0;
      const c = stats.get(s.codecId); codec = c ? c.mimeType : "";
    }
  });
  return {codec, frames, keys, w};
})()`

type whipStats struct {
	Codec  string  `json:"codec"`
	Frames float64 `json:"frames"`
	Keys   float64 `json:"keys"`
	W      float64 `json:"w"`
}

func testWHIPAV1Chromium(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser publisher in -short mode")
	}
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bctx := browser(t, ctx,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true))
	up := startUp(t, filepath.Join(dir, "data"), "--ice-loopback", "--stripes", "1")
	_, key := up.rtmpURL(t)

	// A page of the server's origin (the publish page, not used: it
	// forces H.264) runs the AV1 publisher.
	pctx := openViewer(t, bctx, up.base+"/publish/demo")
	type reply struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	r, err := chromedp.Run(pctx, chromedp.Evaluate[reply](whipAV1JS+"("+strconv.Quote(key)+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if r.Status == 0 {
		t.Fatalf("%s", r.Body)
	}
	if r.Status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.Status, r.Body)
	}
	vcodec := waitCodecs(t, up, `CODECS="(av01\.0\.\d\dM\.08),Opus",RESOLUTION=(\d+x\d+)`)
	vctx := openViewer(t, bctx, up.base+"/watch/demo")
	vlive := waitViewer(t, vctx, vcodec+" playback", 40*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
	played := waitViewer(t, vctx, "3 s of playback", 30*time.Second, func(p viewerProbe) bool { return p.Time >= vlive.Time+3 })
	st, err := chromedp.Run(pctx, chromedp.Evaluate[whipStats](whipStatsJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(st.Codec, "video/AV1") || st.Frames == 0 {
		t.Fatalf("the page sends %+v, want AV1", st)
	}
	// End the publish (the page's connection closes) and decode the epoch.
	if _, err := chromedp.Run(pctx, chromedp.Evaluate[bool](`window.__whipPC.close(), true`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	out, _ := sealedEpoch(t, up, dir, vcodec)
	got := e2e.FrameCounts(t, ctx, ffprobe, out)
	n, _ := strconv.Atoi(got["video/av1"])
	if n < 60 || got["audio/opus"] == "" {
		t.Fatalf("ffprobe of the sealed epoch: %v, want AV1 (at least 60 frames) and Opus", got)
	}
	t.Logf("Chromium's AV1 encoder over WHIP: %s, %v frames encoded (%v key frames, width %v); the viewer played %.1f s; ffprobe decodes %v from the sealed epoch",
		vcodec, st.Frames, st.Keys, st.W, played.Time-vlive.Time, got)
}
