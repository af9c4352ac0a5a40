package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media/cmaf"
	"github.com/banyan-live/banyan/protocol"
)

var (
	rtmpRE = regexp.MustCompile(`Server\s+rtmp://localhost:(\d+)/live`)
	keyRE  = regexp.MustCompile(`Stream Key\s+(\S+)`)
)

func (p *upProc) rtmpURL(t *testing.T) (string, string) {
	t.Helper()
	m, k := rtmpRE.FindStringSubmatch(p.banner), keyRE.FindStringSubmatch(p.banner)
	if m == nil || k == nil {
		t.Fatalf("no RTMP settings in banner:\n%s", p.banner)
	}
	return "rtmp://127.0.0.1:" + m[1] + "/live", k[1]
}

// publish starts ffmpeg sending a 640x360 test pattern with B-frames and AAC.
func publish(ctx context.Context, ffmpeg, url string, seconds int) *exec.Cmd {
	return publishSize(ctx, ffmpeg, url, "640x360", seconds)
}

// publishSize is publish at another picture size ("1280x720").
func publishSize(ctx context.Context, ffmpeg, url, size string, seconds int) *exec.Cmd {
	return exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "main", "-bf", "2", "-g", "30", "-preset", "veryfast",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", url)
}

// viewerKeys joins the tracker as a viewer and waits until it knows the
// stream's public key and content keys.
func viewerKeys(t *testing.T, base, stream string) (ed25519.PublicKey, *chunk.Keyring) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	b, _ := protocol.Encode(protocol.Join{Stream: stream, Kind: protocol.KindNative, NoUpload: true})
	conn.Write(ctx, websocket.MessageText, b)
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for stream keys: %v", err)
		}
		m, err := protocol.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		var pk string
		var keys []protocol.ContentKey
		switch m := m.(type) {
		case protocol.Welcome:
			pk, keys = m.PublicKey, m.Keys
		case protocol.Keys:
			pk, keys = m.PublicKey, m.Keys
		}
		if pk == "" || len(keys) == 0 {
			continue
		}
		pub, _ := base64.StdEncoding.DecodeString(pk)
		ring, _ := chunk.NewKeyring()
		for _, k := range keys {
			var mk chunk.MasterKey
			kb, _ := json.Marshal(k)
			if err := json.Unmarshal(kb, &mk); err != nil {
				t.Fatal(err)
			}
			ring.Add(mk)
		}
		return pub, ring
	}
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type liveDoc struct {
	Epoch       uint32 `json:"epoch"`
	Seq         uint64 `json:"seq"`
	KeyframeSeq uint64 `json:"keyframe_seq"`
	Codecs      string `json:"codecs"`
	Ended       bool   `json:"ended"`
}

func TestSeederEndToEndFFmpeg(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	p := startUp(t, t.TempDir())
	url, key := p.rtmpURL(t)
	rtmpAddr := strings.TrimSuffix(strings.TrimPrefix(url, "rtmp://"), "/live")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Hostile bytes first: garbage, and a half handshake left hanging.
	if c, err := net.Dial("tcp", rtmpAddr); err == nil {
		junk := make([]byte, 4096)
		rand.Read(junk)
		c.Write(junk)
		c.Close()
	}
	half, err := net.Dial("tcp", rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte{3, 0, 0, 0})

	// A wrong key fails fast and creates nothing.
	start := time.Now()
	if out, err := publish(ctx, ffmpeg, url+"/not-a-key", 5).CombinedOutput(); err == nil {
		t.Fatalf("ffmpeg with a wrong key succeeded: %s", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("wrong key took %v to fail", d)
	}
	if code, _ := httpGet(t, p.base+"/chunks/demo/live"); code != 404 {
		t.Fatalf("live document exists after a refused publish: %d", code)
	}

	// The real publish: 10 s of 640x360@30 with B-frames, AAC 48 kHz.
	const seconds = 10
	pubCmd := publish(ctx, ffmpeg, url+"/"+key, seconds)
	var ffErr bytes.Buffer
	pubCmd.Stderr = &ffErr
	t0 := time.Now()
	if err := pubCmd.Start(); err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() { pubDone <- pubCmd.Wait() }()

	pub, keys := viewerKeys(t, p.base, "demo")
	var live liveDoc
	for live.Seq == 0 {
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("no chunk 20 s after publishing; ffmpeg: %s", ffErr.String())
		}
		if code, b := httpGet(t, p.base+"/chunks/demo/live"); code == 200 {
			json.Unmarshal(b, &live)
		}
		time.Sleep(50 * time.Millisecond)
	}
	firstChunk := time.Since(t0)

	// Follow the stream from chunk 1 with blocking GETs.
	_, sealedInit := httpGet(t, fmt.Sprintf("%s/chunks/demo/%d/0", p.base, live.Epoch))
	h, initData, err := chunk.Open(pub, "demo", keys, sealedInit)
	if err != nil || !h.IsInit() {
		t.Fatalf("open init: %v", err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(initData)); err != nil || len(init.Tracks) != 2 {
		t.Fatalf("init: %v (%d tracks)", err, len(init.Tracks))
	}
	timescale := map[int]uint32{}
	for _, tr := range init.Tracks {
		timescale[tr.ID] = tr.TimeScale
	}
	type arrival struct {
		at       time.Duration
		mediaEnd time.Duration
		dur      time.Duration
		key      bool
	}
	var arrivals []arrival
	samples := map[int]int{}
	var firstDTS, lastDTS = map[int]time.Duration{}, map[int]time.Duration{}
	for seq := uint64(1); ; seq++ {
		code, sealed := httpGet(t, fmt.Sprintf("%s/chunks/demo/%d/%d", p.base, live.Epoch, seq))
		if code == 404 {
			break // the epoch ended, or ffmpeg stopped
		}
		at := time.Since(t0)
		h, frag, err := chunk.Open(pub, "demo", keys, sealed)
		if err != nil {
			t.Fatalf("open chunk %d: %v", seq, err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(frag); err != nil {
			t.Fatalf("chunk %d does not parse: %v", seq, err)
		}
		for _, part := range parts {
			for _, tr := range part.Tracks {
				samples[tr.ID] += len(tr.Samples)
				ts := time.Duration(tr.BaseTime) * time.Second / time.Duration(timescale[tr.ID])
				if _, ok := firstDTS[tr.ID]; !ok {
					firstDTS[tr.ID] = ts
				}
				d := uint64(0)
				for _, s := range tr.Samples {
					d += uint64(s.Duration)
				}
				lastDTS[tr.ID] = ts + time.Duration(d)*time.Second/time.Duration(timescale[tr.ID])
			}
		}
		arrivals = append(arrivals, arrival{at: at, key: h.Flags&chunk.FlagKeyframe != 0,
			mediaEnd: time.Duration(h.MediaTime+uint64(h.Duration)) * time.Microsecond, dur: time.Duration(h.Duration) * time.Microsecond})
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("ffmpeg publish failed: %v: %s", err, ffErr.String())
	}

	// Frame counts: every frame ffmpeg sent is in the chunks.
	if samples[1] != seconds*30 {
		t.Errorf("video samples %d, want %d", samples[1], seconds*30)
	}
	if want := seconds * 48000 / 1024; samples[2] < want-3 || samples[2] > want+3 {
		t.Errorf("audio samples %d, want about %d", samples[2], want)
	}
	// A/V aligned at both ends.
	if d := (firstDTS[1] - firstDTS[2]).Abs(); d > 100*time.Millisecond {
		t.Errorf("first video and audio DTS differ by %v", d)
	}
	if d := (lastDTS[1] - lastDTS[2]).Abs(); d > 150*time.Millisecond {
		t.Errorf("last video and audio times differ by %v", d)
	}
	// Cadence: chunks of about the packager's default (cut at 30 fps frame
	// boundaries), a keyframe chunk every second.
	var durs []time.Duration
	keyframes := 0
	for _, a := range arrivals {
		durs = append(durs, a.dur)
		if a.key {
			keyframes++
		}
	}
	slices.Sort(durs)
	if med := durs[len(durs)/2]; med < cmaf.DefaultChunkDuration*4/5 || med > cmaf.DefaultChunkDuration*6/5 {
		t.Errorf("median chunk duration %v", med)
	}
	if keyframes < seconds-1 || keyframes > seconds+1 {
		t.Errorf("%d keyframe chunks in %d s with -g 30", keyframes, seconds)
	}
	// Ingest to chunk: how late each chunk is after its media was due,
	// relative to the earliest one (ffmpeg's start-up cancels out).
	var lags []time.Duration
	base := arrivals[0].at - arrivals[0].mediaEnd
	for _, a := range arrivals {
		base = min(base, a.at-a.mediaEnd)
	}
	for _, a := range arrivals {
		lags = append(lags, a.at-a.mediaEnd-base)
	}
	slices.Sort(lags)
	t.Logf("figures: first chunk %v after ffmpeg start; %d chunks; chunk lag beyond the earliest p50 %v p95 %v",
		firstChunk.Round(time.Millisecond), len(arrivals), lags[len(lags)/2], lags[len(lags)*95/100])

	// The playlist outlives the publish by a grace period (a broadcaster
	// may reconnect), then ends; ffprobe reads the whole ended playlist.
	for i := 0; ; i++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/hls/demo/index.m3u8", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("playlist after the publish: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ended := strings.Contains(string(body), "#EXT-X-ENDLIST")
		if i == 0 && (resp.StatusCode != http.StatusOK || ended) {
			t.Fatalf("playlist right after the publish ended: HTTP %d, ended %v", resp.StatusCode, ended)
		}
		if ended {
			break
		}
		if i == 60 {
			t.Fatal("no EXT-X-ENDLIST 30 s after the publish ended")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// LL-HLS decodes with ffprobe (the epoch has ended: the playlist is whole).
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-count_frames",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", p.base+"/hls/demo/index.m3u8").Output()
	if err != nil {
		t.Fatalf("ffprobe LL-HLS: %v", err)
	}
	var probe struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	json.Unmarshal(out, &probe)
	got := map[string]string{}
	for _, s := range probe.Streams {
		got[s.Codec] = s.Frames
	}
	if got["h264"] != fmt.Sprint(seconds*30) || got["aac"] == "" {
		t.Errorf("ffprobe of LL-HLS: %s", out)
	}
	m := metrics(t, p.base, p.adminToken(t))
	for _, want := range []string{`banyan_seeder_frames_total{kind="video",stream="demo"} 300`, `banyan_seeder_publish_refusals_total{protocol="rtmp",reason="bad_key"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	p.stop(t, syscall.SIGTERM)
}
