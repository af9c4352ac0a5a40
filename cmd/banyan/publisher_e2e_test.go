package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/e2e"
)

// publisherProbe is window.banyanPublisher on /publish/<stream>.
type publisherProbe struct {
	State        string  `json:"state"`
	Connection   string  `json:"connection"`
	Error        string  `json:"error"`
	BitrateKbps  float64 `json:"bitrateKbps"`
	Codec        string  `json:"codec"`
	Encoder      string  `json:"encoder"`
	Width        float64 `json:"width"`
	Height       float64 `json:"height"`
	FPS          float64 `json:"fps"`
	Keyframes    float64 `json:"keyframes"`
	FramesSent   float64 `json:"framesSent"`
	RTTMs        float64 `json:"rttMs"`
	EncodeMs     float64 `json:"encodeMs"`
	SendDelayMs  float64 `json:"sendDelayMs"`
	QualityLimit string  `json:"qualityLimit"`
	TargetKbps   float64 `json:"targetKbps"`
	AvailKbps    float64 `json:"availableKbps"`
	Session      string  `json:"session"`
	LiveSince    float64 `json:"liveSince"` // ms since the Unix epoch
	ICEServers   float64 `json:"iceServers"`
	// Timing is milliseconds from Go live to each step.
	Timing map[string]float64 `json:"timing"`
}

func probePublisher(t *testing.T, pctx context.Context) publisherProbe {
	t.Helper()
	ctx, cancel := context.WithTimeout(pctx, 5*time.Second)
	defer cancel()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[publisherProbe](`window.banyanPublisher || {state: "no publisher"}`))
	if err != nil {
		t.Fatalf("probe publisher: %v", err)
	}
	return p
}

// waitPublisher polls the page until ok; a page error that ok does not
// expect fails at once, with the message the person would have seen.
func waitPublisher(t *testing.T, pctx context.Context, what string, d time.Duration, ok func(publisherProbe) bool) publisherProbe {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p := probePublisher(t, pctx)
		if ok(p) {
			return p
		}
		if p.Error != "" && (p.State == "ready" || p.State == "idle") {
			t.Fatalf("waiting for %s: the page says %q (state %s)", what, p.Error, p.State)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last %+v", what, p)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBrowserPublisherWHIP: headless Chromium with a fake camera and
// microphone publishes through /publish/demo over WHIP; a native peer
// records what the mesh carries (ffprobe decodes H.264 and Opus), and a
// Chromium viewer plays it.
func TestBrowserPublisherWHIP(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser publisher test in -short mode")
	}
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bctx := browser(t, ctx,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true))
	up := startUp(t, t.TempDir(), "--ice-loopback")
	_, key := up.rtmpURL(t)

	pctx := openViewer(t, bctx, up.base+"/publish/demo")
	// The camera is up (the fake one), and the browser can send H.264 at all.
	waitPublisher(t, pctx, "the camera preview", 30*time.Second, func(p publisherProbe) bool { return p.State == "ready" })
	caps, err := chromedp.Run(pctx, chromedp.Evaluate[[]string](
		`RTCRtpSender.getCapabilities("video").codecs.filter(c => /h264/i.test(c.mimeType)).map(c => c.sdpFmtpLine || "")`))
	if err != nil || len(caps) == 0 {
		t.Fatalf("this Chromium cannot send H.264 (RTCRtpSender.getCapabilities: %v, %v): the browser publisher cannot work here", caps, err)
	}

	goLive := func(k string) {
		t.Helper()
		if err := chromedp.Do(pctx, chromedp.SetValue(chromedp.ID("key"), k), chromedp.Click(chromedp.ID("golive"))); err != nil {
			t.Fatalf("go live: %v", err)
		}
	}
	// A wrong key: a plain message, nothing published, nothing remembered.
	goLive("not-the-key")
	bad := waitPublisher(t, pctx, "the wrong key refused", 20*time.Second, func(p publisherProbe) bool { return p.Error != "" })
	if !strings.Contains(bad.Error, "Wrong stream key") || bad.State != "ready" {
		t.Fatalf("wrong key: state %s, error %q", bad.State, bad.Error)
	}
	if code, _ := httpGet(t, up.base+"/chunks/demo/live"); code != 404 {
		t.Fatalf("a live document after a refused publish: %d", code)
	}

	// The real key, 720p at 2.5 Mbps (the defaults).
	clicked := time.Now()
	goLive(key)
	var doc liveDoc
	for doc.Seq == 0 {
		if time.Since(clicked) > 40*time.Second {
			t.Fatalf("no chunk 40 s after going live; page %+v", probePublisher(t, pctx))
		}
		time.Sleep(50 * time.Millisecond)
		if code, b := httpGet(t, up.base+"/chunks/demo/live"); code == 200 {
			json.Unmarshal(b, &doc)
		}
	}
	firstChunk := time.Since(clicked)
	live := waitPublisher(t, pctx, "live with media flowing", 40*time.Second, func(p publisherProbe) bool {
		return p.State == "live" && p.BitrateKbps > 0 && p.FramesSent > 0
	})
	if !strings.HasPrefix(live.Codec, "H264") {
		t.Fatalf("the page sends %q, want H.264", live.Codec)
	}
	// The STUN and TURN servers from the Link headers (stun, turn udp, turn tcp).
	if live.ICEServers != 3 {
		t.Errorf("the page took %v ICE servers from the Link headers, want 3", live.ICEServers)
	}
	// Chunks as the origin makes them available, for the latency figure,
	// from the current one on (one already there would look late).
	if _, b := httpGet(t, up.base+"/chunks/demo/live"); json.Unmarshal(b, &doc) != nil {
		t.Fatalf("live document %q", b)
	}
	lagc := make(chan []chunkLag, 1)
	go func() { lagc <- followChunks(up.base, doc, time.UnixMilli(int64(live.LiveSince)), 10*time.Second) }()
	// The key is in the tab's sessionStorage, never in the address.
	where, err := chromedp.Run(pctx, chromedp.Evaluate[[]string](`[location.href, sessionStorage.getItem("banyan.publish.key.demo") || ""]`))
	if err != nil || len(where) != 2 || strings.Contains(where[0], key) || where[1] != key {
		t.Fatalf("key storage: %q %v", where, err)
	}

	// A native peer records 12 s of what the mesh carries.
	rec := filepath.Join(t.TempDir(), "peer.mp4")
	peer := startPeer(t, up.base, "--duration", "12s", "--record", rec)
	// Meanwhile a Chromium viewer plays it.
	vctx := openViewer(t, bctx, up.base+"/watch/demo")
	vlive := waitViewer(t, vctx, "viewer live", 60*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
	played := waitViewer(t, vctx, "viewer 3 s of playback", 30*time.Second, func(p viewerProbe) bool { return p.Time >= vlive.Time+3 })

	lags := <-lagc
	sum := peer.summary(t)
	if sum.BadChunks != 0 || sum.ChunksPlayed < 20 {
		t.Errorf("peer: %+v", sum)
	}
	frames, seqs := recording(t, rec)
	for j := 1; j < len(seqs); j++ {
		if seqs[j] != seqs[j-1]+1 {
			t.Errorf("recording jumps from chunk %d to %d", seqs[j-1], seqs[j])
			break
		}
	}
	codecs := probeStreams(t, ffprobe, rec)
	t.Logf("recording: %d chunks, %d video samples; ffprobe decodes %v", len(seqs), frames, codecs)
	// 12 s at up to 30 fps; a loaded 2-core machine encodes fewer.
	if codecs["h264"] < 60 || codecs["h264"] != frames {
		t.Errorf("ffprobe decodes %d H.264 frames, the fragments hold %d video samples", codecs["h264"], frames)
	}
	if codecs["opus"] < 150 { // 50 frames/s
		t.Errorf("ffprobe decodes %d Opus frames", codecs["opus"])
	}
	// One epoch: the encoder kept its resolution (a browser encoder left to
	// itself steps it up from 320x180, each step a new SPS and a new epoch,
	// which the peer would record as peer-<epoch>.mp4).
	if more, _ := filepath.Glob(strings.TrimSuffix(rec, ".mp4") + "-*.mp4"); len(more) != 0 {
		t.Errorf("the publish changed epochs while recording: %v", more)
	}

	// Figures.
	during := probePublisher(t, pctx)
	if shot, err := chromedp.Run(pctx, chromedp.CaptureScreenshot()); err == nil {
		e2e.SaveArtifact(t, "publisher.png", shot)
	}
	gaps := keyframeGaps(t, rec)
	if during.Width != 1280 || during.Height != 720 {
		t.Errorf("sending %vx%v, want the 720p chosen", during.Width, during.Height)
	}
	// Browsers make keyframes only when asked: the WHIP server's PLIs
	// (every 2 s without one) must give joining viewers regular ones.
	if len(gaps) < 3 || slices.Max(gaps) > 5*time.Second {
		t.Errorf("keyframe gaps %v in 12 s", gaps)
	}
	kfi := metric(t, up, `banyan_seeder_keyframe_interval_seconds{stream="demo"}`)
	plis := metric(t, up, "banyan_whip_plis_total")
	exposition := metrics(t, up.base, up.adminToken(t))
	p50, p95, mean, n := histogram(exposition, "banyan_seeder_ingest_to_chunk_seconds")
	t.Logf("figures: go live → connected %v ms (key checked %v, ICE gathered %v, answer %v), → first chunk at the origin %v; "+
		"sending %s %vx%v at %.0f fps, %.0f kbps, encoder %s (limit %s); encode %.1f ms/frame, pacer %.1f ms/packet, RTT %.1f ms",
		live.Timing["connected"], live.Timing["keyChecked"], live.Timing["gathered"], live.Timing["answered"], firstChunk.Round(time.Millisecond),
		during.Codec, during.Width, during.Height, during.FPS,
		during.BitrateKbps, during.Encoder, during.QualityLimit, during.EncodeMs, during.SendDelayMs, during.RTTMs)
	t.Logf("figures: keyframe interval: seeder gauge %.2f s, recording gaps %v, %0.f keyframes encoded in %.0f frames, %.0f PLIs sent",
		kfi, gaps, during.Keyframes, during.FramesSent, plis)
	if n > 0 {
		t.Logf("figures: seeder ingest_to_chunk histogram: %d chunks, mean %.0f ms, p50 ≤ %.0f ms, p95 ≤ %.0f ms", n, mean*1000, p50*1000, p95*1000)
	} else {
		// Seeder.arrivedAt matches a chunk's media time to an AU's DTS
		// exactly; WHIP DTS are not on the 90 kHz grid the packager rounds to.
		t.Log("figures: the seeder's ingest_to_chunk histogram observed no WHIP chunk")
	}
	t.Logf("figures: Chromium viewer %.0f ms behind live", behind(played))
	if len(lags) < 10 {
		t.Fatalf("followed only %d chunks", len(lags))
	}
	// lag = chunk at the origin − (page connected + chunk media end). The
	// WHIP timeline is the first packet's arrival plus RTP time, and RTP
	// time is the capture clock: lag + the first frame's capture-to-server
	// time (≈ encode + pacer + RTT/2: L1) is the time from the capture of
	// the frame that closes a chunk to the chunk being served, give or
	// take how late the page heard of the connection (tens of ms under
	// load). Lag beyond the best chunk needs no anchor. From a chunk's
	// first frame, add its duration.
	l1 := time.Duration((during.EncodeMs + during.SendDelayMs + during.RTTMs/2) * float64(time.Millisecond))
	best := slices.MinFunc(lags, func(a, b chunkLag) int { return cmp.Compare(a.lag, b.lag) }).lag
	var anchored, beyond, glass, durs []time.Duration
	for _, l := range lags {
		anchored = append(anchored, l.lag+l1)
		beyond = append(beyond, l.lag-best)
		glass = append(glass, l1+l.dur+l.lag-best)
		durs = append(durs, l.dur)
	}
	q := func(d []time.Duration, p float64) time.Duration {
		d = slices.Sorted(slices.Values(d))
		return d[int(p*float64(len(d)-1)+0.5)].Round(time.Millisecond)
	}
	t.Logf("figures: WHIP glass-to-chunk over %d chunks (median duration %v): closing frame's capture to chunk served p50 %v p95 %v "+
		"(anchored on the page's connected event, L1 %v); lag beyond the best chunk p50 %v p95 %v; "+
		"first frame's capture to chunk served ≈ L1 + duration + lag beyond the best: p50 %v p95 %v",
		len(lags), q(durs, 0.5), q(anchored, 0.5), q(anchored, 0.95), l1.Round(time.Millisecond),
		q(beyond, 0.5), q(beyond, 0.95), q(glass, 0.5), q(glass, 0.95))

	// Stop: the page DELETEs the session; the publish ends cleanly.
	if err := chromedp.Do(pctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	waitPublisher(t, pctx, "stopped", 20*time.Second, func(p publisherProbe) bool { return p.State == "ready" && p.Session == "" })
	if msg := probePublisher(t, pctx).Error; msg != "" {
		t.Errorf("error after a clean stop: %q", msg)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, up, `banyan_whip_sessions_ended_total{cause="deleted"}`) != 1 || metric(t, up, "banyan_whip_sessions") != 0 {
		if time.Now().After(deadline) {
			m := metrics(t, up.base, up.adminToken(t))
			t.Fatalf("the WHIP session did not end by DELETE:\n%s", grepLines(m, "banyan_whip_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	up.stop(t, syscall.SIGTERM)
}

type chunkLag struct{ lag, dur time.Duration }

// followChunks fetches the chunks after doc's as they are made (the
// origin's GETs block until the chunk exists) for about d and returns,
// for each, when it arrived minus (start + its media end).
func followChunks(base string, doc liveDoc, start time.Time, d time.Duration) []chunkLag {
	var out []chunkLag
	client := &http.Client{Timeout: 10 * time.Second}
	end := time.Now().Add(d)
	for seq := doc.Seq + 1; time.Now().Before(end) && len(out) < 1000; seq++ {
		resp, err := client.Get(fmt.Sprintf("%s/chunks/demo/%d/%d", base, doc.Epoch, seq))
		if err != nil {
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		at := time.Now()
		if resp.StatusCode != http.StatusOK {
			break
		}
		h, err := chunk.ParseHeader(b)
		if err != nil {
			break
		}
		mediaEnd := time.Duration(h.MediaTime+uint64(h.Duration)) * time.Microsecond
		out = append(out, chunkLag{lag: at.Sub(start) - mediaEnd, dur: time.Duration(h.Duration) * time.Microsecond})
	}
	return out
}

func behind(p viewerProbe) float64 {
	if p.Stats == nil {
		return math.NaN()
	}
	return p.Stats.BehindMs
}

// probeStreams decodes every frame of a file and returns the frame count by codec.
func probeStreams(t *testing.T, ffprobe, path string) map[string]int {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var probe struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	got := map[string]int{}
	for _, s := range probe.Streams {
		n, _ := strconv.Atoi(s.Frames)
		got[s.Codec] += n
	}
	return got
}

// keyframeGaps is the media time between the video keyframes of a
// recording (track 1).
func keyframeGaps(t *testing.T, path string) []time.Duration {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	var scale uint32
	for _, tr := range init.Tracks {
		if tr.ID == 1 {
			scale = tr.TimeScale
		}
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil || scale == 0 {
		t.Fatalf("recording: %v (video timescale %d)", err, scale)
	}
	var keys []time.Duration
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if tr.ID != 1 {
				continue
			}
			dts := tr.BaseTime
			for _, s := range tr.Samples {
				if !s.IsNonSyncSample {
					keys = append(keys, time.Duration(dts)*time.Second/time.Duration(scale))
				}
				dts += uint64(s.Duration)
			}
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(keys); i++ {
		gaps = append(gaps, (keys[i] - keys[i-1]).Round(time.Millisecond))
	}
	return gaps
}

// histogram reads an unlabelled Prometheus histogram: the bucket bounds
// holding the median and the 95th percentile, the mean and the count.
func histogram(exposition []byte, name string) (p50, p95, mean float64, count int) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	var total, sum float64
	for _, line := range strings.Split(string(exposition), "\n") {
		if v, ok := strings.CutPrefix(line, name+"_count "); ok {
			total, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, name+"_sum "); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, v, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		l, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err1 == nil && err2 == nil {
			bs = append(bs, bucket{l, n})
		}
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || total <= 0 {
		return math.NaN(), math.NaN(), math.NaN(), 0
	}
	at := func(q float64) float64 {
		for _, b := range bs {
			if b.n >= q*total {
				return b.le
			}
		}
		return math.Inf(1)
	}
	return at(0.5), at(0.95), sum / total, int(total)
}

// grepLines keeps the lines of b that contain sub.
func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
