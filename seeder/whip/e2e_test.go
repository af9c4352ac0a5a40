package whip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// testAU is one access unit of the ffmpeg clip.
type testAU struct {
	nalus [][]byte
	key   bool
}

func (a testAU) annexB() []byte {
	var b []byte
	for _, n := range a.nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

// vcl is the AU's coded slice: what identifies it at the sink.
func vclOf(nalus [][]byte) string {
	for i := len(nalus) - 1; i >= 0; i-- {
		if t := nalus[i][0] & 0x1f; t == naluIDR || t == naluNonIDR {
			return string(nalus[i])
		}
	}
	return ""
}

// ffmpegClip encodes seconds of testsrc2 as baseline H.264 (no B-frames,
// one slice per frame) and splits it into access units.
func ffmpegClip(t *testing.T, seconds, gop int) (aus []testAU, sps, pps []byte) {
	t.Helper()
	ff := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop),
		"-sc_threshold", "0", "-threads", "1", "-f", "h264", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, stderr.String())
	}
	r, err := h264reader.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var cur testAU
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d := bytes.Clone(nal.Data)
		switch nal.UnitType {
		case h264reader.NalUnitTypeSPS:
			sps = d
		case h264reader.NalUnitTypePPS:
			pps = d
		case h264reader.NalUnitTypeCodedSliceIdr:
			cur.key = true
		}
		cur.nalus = append(cur.nalus, d)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
			aus = append(aus, cur)
			cur = testAU{}
		}
	}
	if len(aus) != seconds*30 || sps == nil || pps == nil {
		t.Fatalf("clip: %d AUs, sps %v, pps %v", len(aus), sps != nil, pps != nil)
	}
	return aus, sps, pps
}

// sendLog is when the client wrote each sample.
type sendLog struct {
	mu    sync.Mutex
	start time.Time
	video map[string]time.Time // by coded slice
	vidx  map[string]int
	audio map[int]time.Time // by frame index
}

// stream paces the clip at 30 fps and 20 ms Opus frames at 50/s, both
// starting together, until the clip ends. sendKey decides, per keyframe,
// whether it is sent (to simulate an encoder that makes keyframes only
// when asked).
func stream(t *testing.T, c *client, aus []testAU, sendKey func(i int) bool) *sendLog {
	t.Helper()
	l := &sendLog{video: make(map[string]time.Time), vidx: make(map[string]int), audio: make(map[int]time.Time)}
	const vdur, adur = time.Second / 30, 20 * time.Millisecond
	l.start = time.Now()
	nv, na := 0, 0
	total := time.Duration(len(aus)) * vdur
	for nv < len(aus) || (c.audio != nil && time.Duration(na)*adur < total) {
		nextV := l.start.Add(time.Duration(nv) * vdur)
		nextA := l.start.Add(time.Duration(na) * adur)
		audioDue := c.audio != nil && time.Duration(na)*adur < total && (nv >= len(aus) || nextA.Before(nextV))
		due := nextV
		if audioDue {
			due = nextA
		}
		time.Sleep(time.Until(due))
		if audioDue {
			frame := []byte{0xf8, byte(na >> 8), byte(na)} // one 20 ms CELT frame, numbered
			l.mu.Lock()
			l.audio[na] = time.Now()
			l.mu.Unlock()
			if err := c.audio.WriteSample(pmedia.Sample{Data: frame, Duration: adur}); err != nil {
				t.Errorf("write audio: %v", err)
				return l
			}
			na++
			continue
		}
		au := aus[nv]
		nv++
		if au.key && sendKey != nil && !sendKey(nv-1) {
			// The "encoder" was not asked: send the frame as if it were a
			// P-frame by leaving it out; the timestamp still advances.
			if err := c.video.WriteSample(pmedia.Sample{Data: nil, Duration: vdur}); err != nil {
				t.Errorf("write video: %v", err)
			}
			continue
		}
		l.mu.Lock()
		l.video[vclOf(au.nalus)] = time.Now()
		l.vidx[vclOf(au.nalus)] = nv - 1
		l.mu.Unlock()
		if err := c.video.WriteSample(pmedia.Sample{Data: au.annexB(), Duration: vdur}); err != nil {
			t.Errorf("write video: %v", err)
			return l
		}
	}
	return l
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

// TestLoopbackPublish is the end-to-end test: a Go WHIP client (pion,
// real ICE/DTLS/SRTP over 127.0.0.1) publishes 4 s of ffmpeg H.264 and
// Opus frames; the recording sink must get the real parameter sets, every
// frame with keyframes every 30, the Opus config and frames, monotonic
// timestamps and audio aligned with video.
func TestLoopbackPublish(t *testing.T) {
	aus, sps, pps := ffmpegClip(t, 4, 30)
	env := newTestEnv(t, nil)
	c := newClient(t, clientOpts{})
	r := c.publish(t, env.web.URL, "live1", "key-live1", true)
	if links := r.header.Values("Link"); len(links) != 2 || !strings.Contains(links[1], `credential="secret"`) {
		t.Errorf("Link headers: %q", links)
	}
	var ans sdp.SessionDescription
	if err := ans.UnmarshalString(r.body); err != nil {
		t.Fatal(err)
	}
	for _, md := range ans.MediaDescriptions {
		names := encodingNames(md)
		ok := md.MediaName.Media == "video" && len(names) > 0 && names[0] == "H264" || md.MediaName.Media == "audio" && slices.Equal(names, []string{"OPUS"})
		for _, n := range names {
			ok = ok && (n == "H264" || n == "AV1" || n == "RTX" || n == "OPUS")
		}
		if !ok {
			t.Errorf("answer's %s section accepts %v", md.MediaName.Media, names)
		}
	}
	if !strings.HasPrefix(c.location, "/whip/live1/") || r.header.Get("ETag") == "" {
		t.Errorf("Location %q, ETag %q", c.location, r.header.Get("ETag"))
	}
	c.waitConnected(t)
	sent := stream(t, c, aus, nil)
	rec := env.pub.last(t)
	waitFor(t, 3*time.Second, "the last frames", func() bool {
		_, _, got := rec.snapshot()
		nv := 0
		for _, au := range got {
			if au.Kind == media.Video {
				nv++
			}
		}
		return nv >= len(aus)
	})

	if d := do(t, http.MethodDelete, env.web.URL+c.location, "key-live1", "", nil); d.status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", d.status, d.body)
	}
	if err := rec.waitEnd(t, 5*time.Second); err != nil {
		t.Fatalf("End(%v), want nil after DELETE", err)
	}
	if !rec.public || rec.stream != "live1" {
		t.Errorf("publish of %q public=%v", rec.stream, rec.public)
	}
	vcfg, acfg, got := rec.snapshot()
	if len(vcfg) != 1 || !bytes.Equal(vcfg[0].SPS, sps) || !bytes.Equal(vcfg[0].PPS, pps) {
		t.Fatalf("video configs %x, want the clip's SPS %x / PPS %x", vcfg, sps, pps)
	}
	if len(acfg) != 1 || acfg[0].Codec != media.Opus || acfg[0].SampleRate != 48000 || acfg[0].Channels != 2 || acfg[0].ASC != nil {
		t.Fatalf("audio configs %+v", acfg)
	}

	var (
		video, audio       []recAU
		vLat, aLat         []time.Duration
		vOff, aOff         []time.Duration
		keyIdx             []int
		keyDTS             []time.Duration
		lastV, lastA       time.Duration = -1, -1
		missingV, missingA int
	)
	for _, au := range got {
		switch au.Kind {
		case media.Video:
			video = append(video, au)
			if au.DTS <= lastV || au.PTS != au.DTS {
				t.Fatalf("video DTS %v after %v (PTS %v)", au.DTS, lastV, au.PTS)
			}
			lastV = au.DTS
			v := vclOf(au.NALUs)
			w, ok := sent.video[v]
			if !ok {
				missingV++
				continue
			}
			vLat = append(vLat, au.at.Sub(w))
			vOff = append(vOff, au.DTS-w.Sub(sent.start))
			if au.Key {
				keyIdx = append(keyIdx, sent.vidx[v])
				keyDTS = append(keyDTS, au.DTS)
			}
		case media.Audio:
			audio = append(audio, au)
			if au.DTS <= lastA {
				t.Fatalf("audio DTS %v after %v", au.DTS, lastA)
			}
			lastA = au.DTS
			if len(au.Frame) != 3 || au.Frame[0] != 0xf8 {
				t.Fatalf("audio frame %x", au.Frame)
			}
			w, ok := sent.audio[int(au.Frame[1])<<8|int(au.Frame[2])]
			if !ok {
				missingA++
				continue
			}
			aLat = append(aLat, au.at.Sub(w))
			aOff = append(aOff, au.DTS-w.Sub(sent.start))
		}
	}
	if len(video) != len(aus) || missingV != 0 {
		t.Errorf("%d video AUs (%d unknown), sent %d", len(video), missingV, len(aus))
	}
	if !slices.Equal(keyIdx, []int{0, 30, 60, 90}) {
		t.Errorf("keyframes at frames %v, want every 30", keyIdx)
	}
	if len(audio) < 190 || missingA != 0 {
		t.Errorf("%d audio AUs (%d unknown), sent 200", len(audio), missingA)
	}
	skew := median(aOff) - median(vOff)
	if skew < -150*time.Millisecond || skew > 150*time.Millisecond {
		t.Errorf("audio is %v off video", skew)
	}
	var gaps []time.Duration
	for i := 1; i < len(keyDTS); i++ {
		gaps = append(gaps, keyDTS[i]-keyDTS[i-1])
	}
	if len(c.pliTimes()) < 1 {
		t.Error("no PLI at start")
	}
	t.Logf("FIGURES glass-to-AU video p50 %v p95 %v max %v; audio p50 %v p95 %v; A/V skew %v; keyframe gaps %v; PLIs %d",
		median(vLat), percentile(vLat, 0.95), percentile(vLat, 1), median(aLat), percentile(aLat, 0.95), skew, gaps, len(c.pliTimes()))
}

// TestKeyframeOnDemand: an encoder that makes keyframes only when asked
// (as browsers do) gets a PLI whenever KeyframeInterval passes without
// one, so the sink sees a keyframe about every KeyframeInterval.
// TestAV1AndVP9OfferedFirstGetsH264: a publisher that prefers AV1, then
// VP9, then H.264 (OBS 30+ and Chromium offer all three) gets an answer
// that lists H.264 first, then AV1, without VP9, and its video goes out
// as H.264.
func TestAV1AndVP9OfferedFirstGetsH264(t *testing.T) {
	env := newTestEnv(t, nil)
	c := newClient(t, clientOpts{}) // offers every codec pion knows
	var offer sdp.SessionDescription
	if err := offer.UnmarshalString(c.offer(t, true)); err != nil {
		t.Fatal(err)
	}
	for _, md := range offer.MediaDescriptions {
		if md.MediaName.Media != "video" {
			continue
		}
		first := map[string][]string{}
		var rest []string
		for _, pt := range md.MediaName.Formats {
			name := ""
			for _, a := range md.Attributes {
				if v, ok := strings.CutPrefix(a.Value, pt+" "); ok && a.Key == "rtpmap" {
					name, _, _ = strings.Cut(strings.ToUpper(v), "/")
				}
			}
			if name == "AV1" || name == "VP9" {
				first[name] = append(first[name], pt)
			} else {
				rest = append(rest, pt)
			}
		}
		if len(first["AV1"]) == 0 || len(first["VP9"]) == 0 {
			t.Fatalf("the client offers no AV1 or VP9: %v", md.MediaName.Formats)
		}
		md.MediaName.Formats = append(append(first["AV1"], first["VP9"]...), rest...)
		t.Logf("offered video formats, in order of preference: %v", md.MediaName.Formats)
	}
	raw, err := offer.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sum, herr := checkOffer(raw)
	if herr != nil || !slices.Contains(sum.videoCodecs, "H264") || !sum.hasOpus {
		t.Fatalf("checkOffer: %+v, %v", sum, herr)
	}
	r := do(t, http.MethodPost, env.web.URL+"/whip/live", "key-live", typeSDP, raw)
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	var ans sdp.SessionDescription
	if err := ans.UnmarshalString(r.body); err != nil {
		t.Fatal(err)
	}
	for _, md := range ans.MediaDescriptions {
		names := encodingNames(md)
		if md.MediaName.Media == "video" && (len(names) == 0 || names[0] != "H264" || !slices.Contains(names, "AV1") ||
			slices.ContainsFunc(names, func(n string) bool { return n != "H264" && n != "AV1" && n != "RTX" })) {
			t.Fatalf("answer's video section accepts %v, want H.264 first, then AV1 (and RTX)", names)
		}
		if md.MediaName.Media == "video" {
			t.Logf("the answer's video section accepts %v", names)
		}
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.body}); err != nil {
		t.Fatalf("apply answer: %v", err)
	}
	c.waitConnected(t)
	if codecs := c.vsender.GetParameters().Codecs; len(codecs) == 0 || !strings.EqualFold(codecs[0].MimeType, webrtc.MimeTypeH264) {
		t.Fatalf("the client sends video as %+v, want H.264", codecs)
	}
}

func TestKeyframeOnDemand(t *testing.T) {
	aus, _, _ := ffmpegClip(t, 5, 3) // a keyframe available every 100 ms
	const interval = time.Second
	env := newTestEnv(t, func(c *Config) { c.KeyframeInterval = interval })
	c := newClient(t, clientOpts{noAudio: true})
	c.publish(t, env.web.URL, "kf", "key-kf", true)
	c.waitConnected(t)
	var lastKey time.Time
	sendKey := func(i int) bool {
		// Send a keyframe only for the first frame or after a PLI that
		// came since the previous keyframe.
		if i == 0 {
			lastKey = time.Now()
			return true
		}
		for _, p := range c.pliTimes() {
			if p.After(lastKey) {
				lastKey = time.Now()
				return true
			}
		}
		return false
	}
	stream(t, c, aus, sendKey)
	rec := env.pub.last(t)
	time.Sleep(200 * time.Millisecond)
	_, _, got := rec.snapshot()
	var keys []time.Duration
	for _, au := range got {
		if au.Kind == media.Video && au.Key {
			keys = append(keys, au.DTS)
		}
	}
	// The start PLI crosses the first keyframe on the wire and gets a
	// second one at once; from then on keyframes come when overdue.
	var gaps []time.Duration
	for i := 2; i < len(keys); i++ {
		g := keys[i] - keys[i-1]
		gaps = append(gaps, g)
		if g < interval-50*time.Millisecond || g > interval+400*time.Millisecond {
			t.Errorf("keyframe gap %v, want about %v", g, interval)
		}
	}
	if len(keys) < 4 {
		t.Fatalf("%d keyframes in 5 s", len(keys))
	}
	t.Logf("FIGURES keyframe gaps with KeyframeInterval=%v: %v (PLIs %d)", interval, gaps, len(c.pliTimes()))
}

// dropFactory makes an interceptor that drops the first transmission of
// every nth H.264 packet just before the wire; NACK retransmissions (RTX
// or not) go through.
type dropFactory struct {
	every   int
	mu      sync.Mutex
	dropped int
}

func (f *dropFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &dropper{f: f}, nil
}

type dropper struct {
	interceptor.NoOp
	f *dropFactory
}

func (d *dropper) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeH264) {
		return w
	}
	seen := make(map[uint16]bool)
	n := 0
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC == info.SSRC && !seen[h.SequenceNumber] {
			seen[h.SequenceNumber] = true
			if n++; n%d.f.every == 0 {
				d.f.mu.Lock()
				d.f.dropped++
				d.f.mu.Unlock()
				return len(payload), nil
			}
		}
		return w.Write(h, payload, a)
	})
}

// TestLossRepairedByNACK: with every 8th video packet lost on first
// transmission, NACKs bring them back within the reorder wait and every
// frame still reaches the sink.
func TestLossRepairedByNACK(t *testing.T) {
	aus, _, _ := ffmpegClip(t, 3, 30)
	env := newTestEnv(t, nil)
	drop := &dropFactory{every: 8}
	c := newClientWith(t, clientOpts{noAudio: true}, drop)
	c.publish(t, env.web.URL, "lossy", "key-lossy", true)
	c.waitConnected(t)
	sent := stream(t, c, aus, nil)
	rec := env.pub.last(t)
	waitFor(t, 3*time.Second, "every frame", func() bool {
		_, _, got := rec.snapshot()
		return len(got) >= len(aus)
	})
	_, _, got := rec.snapshot()
	var lat []time.Duration
	for _, au := range got {
		if w, ok := sent.video[vclOf(au.NALUs)]; ok {
			lat = append(lat, au.at.Sub(w))
		}
	}
	drop.mu.Lock()
	dropped := drop.dropped
	drop.mu.Unlock()
	if dropped < 10 || len(lat) != len(aus) {
		t.Fatalf("dropped %d packets, %d of %d frames arrived", dropped, len(lat), len(aus))
	}
	t.Logf("FIGURES with %d packets lost and NACKed: glass-to-AU p50 %v p95 %v max %v", dropped, median(lat), percentile(lat, 0.95), percentile(lat, 1))
}

// TestTrickle: an offer without candidates, the client's candidates sent
// by PATCH (application/trickle-ice-sdpfrag), connects and publishes.
func TestTrickle(t *testing.T) {
	aus, _, _ := ffmpegClip(t, 1, 30)
	env := newTestEnv(t, nil)
	c := newClient(t, clientOpts{noAudio: true})
	var mu sync.Mutex
	var cands []string
	gathered := make(chan struct{})
	c.pc.OnICECandidate(func(ic *webrtc.ICECandidate) {
		if ic == nil {
			close(gathered)
			return
		}
		mu.Lock()
		cands = append(cands, ic.ToJSON().Candidate)
		mu.Unlock()
	})
	r := c.publish(t, env.web.URL, "trickle", "key-trickle", false)
	if strings.Contains(c.pc.CurrentRemoteDescription().SDP, "a=candidate") == false {
		t.Fatal("answer without server candidates")
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		t.Fatal("client gathering timed out")
	}
	mu.Lock()
	var frag strings.Builder
	frag.WriteString("a=ice-options:trickle\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n")
	for _, c := range cands {
		frag.WriteString("a=" + c + "\r\n")
	}
	frag.WriteString("a=end-of-candidates\r\n")
	mu.Unlock()
	p := do(t, http.MethodPatch, env.web.URL+c.location, "key-trickle", typeSDPFrag, []byte(frag.String()), "If-Match", r.header.Get("ETag"))
	if p.status != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", p.status, p.body)
	}
	c.waitConnected(t)
	stream(t, c, aus, nil)
	rec := env.pub.last(t)
	waitFor(t, 3*time.Second, "frames", func() bool { _, _, got := rec.snapshot(); return len(got) >= 25 })
}

// TestTakeOver: a second publisher of a stream ends the first session (the
// seeder's stop), and the second one is live.
func TestTakeOver(t *testing.T) {
	env := newTestEnv(t, nil)
	a := newClient(t, clientOpts{})
	a.publish(t, env.web.URL, "shared", "key-shared", true)
	a.waitConnected(t)
	b := newClient(t, clientOpts{})
	b.publish(t, env.web.URL, "shared", "key-shared", true)
	all := env.pub.sessions()
	if len(all) != 2 {
		t.Fatalf("%d publishes", len(all))
	}
	if err := all[0].waitEnd(t, 5*time.Second); !errors.Is(err, ErrStopped) {
		t.Fatalf("first publish ended with %v, want ErrStopped", err)
	}
	b.waitConnected(t)
	waitFor(t, 2*time.Second, "one live session", func() bool { return env.srv.Sessions() == 1 })
	select {
	case <-all[1].ended:
		t.Fatal("second publish ended too")
	default:
	}
	// The first session's resource is gone.
	if d := do(t, http.MethodDelete, env.web.URL+a.location, "key-shared", "", nil); d.status != http.StatusNotFound {
		t.Fatalf("DELETE of the taken-over session: %d", d.status)
	}
}

// TestNoMediaTimeout: a publisher that connects but sends nothing is
// ended after NoMediaTimeout.
func TestNoMediaTimeout(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.NoMediaTimeout = 700 * time.Millisecond })
	c := newClient(t, clientOpts{})
	c.publish(t, env.web.URL, "quiet", "key-quiet", true)
	c.waitConnected(t)
	start := time.Now()
	err := env.pub.last(t).waitEnd(t, 5*time.Second)
	if !errors.Is(err, ErrNoMedia) {
		t.Fatalf("ended with %v, want ErrNoMedia", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("ended after %v", el)
	}
	waitFor(t, time.Second, "no sessions", func() bool { return env.srv.Sessions() == 0 })
}

// TestGarbageRTP: random payloads on the negotiated H.264 SSRC produce no
// AU, no config, no panic, and the session times out like a silent one.
func TestGarbageRTP(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.NoMediaTimeout = time.Second })
	c := newClient(t, clientOpts{noAudio: true, rawVideo: true})
	c.publish(t, env.web.URL, "junk", "key-junk", true)
	c.waitConnected(t)
	rec := env.pub.last(t)
	rng := newRand(7)
	seq := uint16(rng.Uint32())
	sent := 0
	for stop := time.Now().Add(1500 * time.Millisecond); time.Now().Before(stop); {
		select {
		case <-rec.ended:
			stop = time.Now()
			continue
		default:
		}
		for i := 0; i < 5; i++ {
			payload := make([]byte, 1+rng.IntN(1200))
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
			seq += uint16(1 + rng.IntN(2))
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: rng.Uint32(), Marker: rng.IntN(3) == 0}, Payload: payload}
			if err := c.raw.WriteRTP(p); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("write: %v", err)
			}
			sent++
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := rec.waitEnd(t, 3*time.Second)
	if !errors.Is(err, ErrNoMedia) {
		t.Fatalf("ended with %v, want ErrNoMedia", err)
	}
	vcfg, acfg, got := rec.snapshot()
	if len(got) != 0 || len(vcfg) != 0 || len(acfg) != 0 {
		t.Fatalf("garbage produced %d AUs, %d video and %d audio configs", len(got), len(vcfg), len(acfg))
	}
	t.Logf("%d garbage packets sent", sent)
}

// packagerSession feeds the real CMAF packager, as the seeder does.
type packagerSession struct {
	*cmaf.Packager
	mu     sync.Mutex
	inits  []cmaf.Init
	chunks []cmaf.Chunk
	ended  chan struct{}
}

func (p *packagerSession) End(error) {
	p.mu.Lock()
	_ = p.Flush()
	p.mu.Unlock()
	close(p.ended)
}

// The packager is driven by the session goroutine only; the lock guards
// the test's reads of what it produced.
func (p *packagerSession) VideoConfig(c media.VideoConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Packager.VideoConfig(c)
}

func (p *packagerSession) AudioConfig(c media.AudioConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Packager.AudioConfig(c)
}

func (p *packagerSession) WriteAU(au media.AccessUnit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Packager.WriteAU(au)
}

// newPackagerEnv is a WHIP server whose publishes feed one real packager.
func newPackagerEnv(t *testing.T) (*packagerSession, *testEnv) {
	t.Helper()
	ps := &packagerSession{ended: make(chan struct{})}
	pkg, err := cmaf.New(cmaf.Config{
		OnInit:  func(i cmaf.Init) error { ps.inits = append(ps.inits, i); return nil },
		OnChunk: func(c cmaf.Chunk) error { ps.chunks = append(ps.chunks, c); return nil },
		Logger:  testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ps.Packager = pkg
	env := newTestEnv(t, func(c *Config) {
		c.Publisher = PublisherFunc(func(Grant, func()) (Session, error) { return ps, nil })
	})
	return ps, env
}

// TestIntoPackager publishes into media/cmaf: one init with H.264 and
// Opus, chunks whose keyframes fall every second, one timeline.
func TestIntoPackager(t *testing.T) {
	aus, _, _ := ffmpegClip(t, 3, 30)
	ps, env := newPackagerEnv(t)
	pkg := ps.Packager
	c := newClient(t, clientOpts{})
	c.publish(t, env.web.URL, "cmaf", "key-cmaf", true)
	c.waitConnected(t)
	stream(t, c, aus, nil)
	time.Sleep(100 * time.Millisecond)
	if d := do(t, http.MethodDelete, env.web.URL+c.location, "key-cmaf", "", nil); d.status != http.StatusOK {
		t.Fatalf("DELETE: %d", d.status)
	}
	<-ps.ended
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.inits) != 1 || ps.inits[0].VideoCodec != "avc1.42c00d" || ps.inits[0].AudioCodec != "Opus" {
		t.Fatalf("inits %+v", ps.inits)
	}
	var keys []time.Duration
	var total time.Duration
	for i, ch := range ps.chunks {
		if ch.Discontinuity != (i == 0) {
			t.Errorf("chunk %d discontinuity %v", i, ch.Discontinuity)
		}
		if ch.Keyframe {
			keys = append(keys, ch.MediaTime)
		}
		total += ch.Duration
	}
	near := func(d time.Duration) bool {
		return d > time.Second-time.Millisecond && d < time.Second+time.Millisecond
	}
	if len(keys) != 3 || !near(keys[1]-keys[0]) || !near(keys[2]-keys[1]) {
		t.Errorf("keyframe chunks at %v", keys)
	}
	st := pkg.Stats()
	t.Logf("packager: %d chunks, %v of media, stats %+v", len(ps.chunks), total, st)
	if total < 2900*time.Millisecond || st.Discontinuities != 0 {
		t.Errorf("%v packaged, %d discontinuities", total, st.Discontinuities)
	}
}

// delayFactory delays every Opus packet by a constant before the wire:
// audio arrives late, while its RTCP sender reports do not.
type delayFactory struct{ by time.Duration }

func (f *delayFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &delayer{by: f.by}, nil
}

type delayer struct {
	interceptor.NoOp
	by time.Duration
}

func (d *delayer) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeOpus) {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		hc, pc := h.Clone(), bytes.Clone(payload)
		time.AfterFunc(d.by, func() { _, _ = w.Write(&hc, pc, a) })
		return len(payload), nil
	})
}

// TestSenderReportSync: audio delayed 300 ms in transit starts 300 ms
// late by arrival; the first sender reports move it back in line with
// video.
func TestSenderReportSync(t *testing.T) {
	aus, _, _ := ffmpegClip(t, 4, 30)
	env := newTestEnv(t, nil)
	c := newClientWith(t, clientOpts{}, &delayFactory{by: 300 * time.Millisecond})
	c.publish(t, env.web.URL, "sync", "key-sync", true)
	c.waitConnected(t)
	sent := stream(t, c, aus, nil)
	time.Sleep(400 * time.Millisecond)
	_, _, got := env.pub.last(t).snapshot()
	var vOff, aEarly, aLate []time.Duration
	for _, au := range got {
		switch au.Kind {
		case media.Video:
			if w, ok := sent.video[vclOf(au.NALUs)]; ok {
				vOff = append(vOff, au.DTS-w.Sub(sent.start))
			}
		case media.Audio:
			w, ok := sent.audio[int(au.Frame[1])<<8|int(au.Frame[2])]
			if !ok {
				continue
			}
			switch at := w.Sub(sent.start); {
			case at < 800*time.Millisecond:
				aEarly = append(aEarly, au.DTS-w.Sub(sent.start))
			case at > 2*time.Second:
				aLate = append(aLate, au.DTS-w.Sub(sent.start))
			}
		}
	}
	if len(aEarly) < 10 || len(aLate) < 50 {
		t.Fatalf("audio frames: %d early, %d late", len(aEarly), len(aLate))
	}
	before, after := median(aEarly)-median(vOff), median(aLate)-median(vOff)
	t.Logf("FIGURES A/V skew with 300 ms audio transit delay: %v before sender reports, %v after", before, after)
	if before < 200*time.Millisecond {
		t.Errorf("skew before SRs %v: the delay did not show (test broken)", before)
	}
	if after < -150*time.Millisecond || after > 150*time.Millisecond {
		t.Errorf("skew after SRs %v", after)
	}
}
