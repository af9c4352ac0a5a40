package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
)

// TestHEVCOverEnhancedRTMP (issue 22, codecs OBS sends): libx265 output
// with B-frames and AAC, sent as OBS 30+ sends HEVC (enhanced RTMP hvc1),
// into a real `banyan up`. Before, the publish ended at the first video
// message with "unsupported video codec HEVC". Now: the multivariant
// playlist names hvc1.* in CODECS, the sealed CMAF decodes as HEVC with
// every frame, and Chromium either plays it or, without an HEVC decoder
// (Debian's Chromium), says so instead of showing a black page.
func TestHEVCOverEnhancedRTMP(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const seconds = 6
	m := e2e.EncodeTestMediaCodec(t, ctx, ffmpeg, ffprobe, dir, "320x240", seconds, media.H265)
	if len(m.VideoAUs) != seconds*30 {
		t.Fatalf("%d video AUs from ffmpeg, want %d", len(m.VideoAUs), seconds*30)
	}
	p := startUp(t, filepath.Join(dir, "data"), "--ice-loopback", "--stripes", "1")
	url, key := p.rtmpURL(t)

	// The viewer waits for the broadcast before it starts.
	var vctx context.Context
	if !testing.Short() {
		vctx = openViewer(t, browser(t, ctx), p.base+"/watch/demo")
	}
	pubErr := make(chan error, 1)
	go func() { pubErr <- publishERTMP(ctx, url, key, m) }()

	// The multivariant playlist, while live: CODECS and RESOLUTION.
	codecsRE := regexp.MustCompile(`CODECS="(hvc1\.1\.6\.L\d+\.90),mp4a\.40\.2",RESOLUTION=320x240`)
	var hvc1 string
	for deadline := time.Now().Add(20 * time.Second); hvc1 == ""; {
		if code, b := httpGet(t, p.base+"/hls/demo/main.m3u8"); code == 200 {
			mm := codecsRE.FindSubmatch(b)
			if mm == nil {
				t.Fatalf("multivariant playlist:\n%s", b)
			}
			hvc1 = string(mm[1])
		}
		if time.Now().After(deadline) {
			select {
			case err := <-pubErr:
				t.Fatalf("no playlist 20 s after publishing; publisher: %v; server: %s", err, p.stderr)
			default:
				t.Fatalf("no playlist 20 s after publishing; server: %s", p.stderr)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	if vctx != nil {
		supported, err := chromedp.Run(vctx, chromedp.Evaluate[bool](
			fmt.Sprintf(`MediaSource.isTypeSupported('video/mp4; codecs="%s,mp4a.40.2"')`, hvc1)))
		if err != nil {
			t.Fatal(err)
		}
		if supported {
			waitViewer(t, vctx, "HEVC playback", 30*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
		} else {
			got := waitViewer(t, vctx, "the player to say it cannot decode HEVC", 30*time.Second, func(p viewerProbe) bool { return p.State == "error" })
			if !strings.Contains(got.Reason, "cannot decode HEVC") || !strings.Contains(got.Reason, "Safari") {
				t.Fatalf("error state reason %q", got.Reason)
			}
		}
		t.Logf("Chromium MediaSource supports %s: %v", hvc1, supported)
	}
	if err := <-pubErr; err != nil {
		t.Fatalf("enhanced RTMP publish: %v; server: %s", err, p.stderr)
	}

	// The sealed CMAF of the epoch, as a viewer opens it, decodes as HEVC
	// with every frame sent.
	pub, keys := viewerKeys(t, p.base, "demo")
	var live liveDoc
	if code, b := httpGet(t, p.base+"/chunks/demo/live"); code != 200 || json.Unmarshal(b, &live) != nil {
		t.Fatalf("live document: HTTP %d %s", code, b)
	}
	if !strings.HasPrefix(live.Codecs, hvc1) {
		t.Fatalf("live document codecs %q, playlist %q", live.Codecs, hvc1)
	}
	var file bytes.Buffer
	for seq := uint64(0); ; seq++ {
		code, sealed := httpGet(t, fmt.Sprintf("%s/chunks/demo/%d/%d", p.base, live.Epoch, seq))
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
	got := e2e.FrameCounts(t, ctx, ffprobe, out)
	if got["video/hevc"] != fmt.Sprint(len(m.VideoAUs)) || got["audio/aac"] == "" {
		t.Fatalf("ffprobe of the sealed epoch: %v, want %d HEVC frames and AAC", got, len(m.VideoAUs))
	}
	t.Logf("%s: %s HEVC frames, %s AAC frames decoded from %d bytes of CMAF", hvc1, got["video/hevc"], got["audio/aac"], file.Len())
	if strings.Contains(p.stderr.String(), "unsupported") {
		t.Fatalf("server log mentions an unsupported codec:\n%s", p.stderr)
	}
}
