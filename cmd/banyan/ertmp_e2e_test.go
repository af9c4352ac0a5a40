package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
)

// TestEnhancedRTMPCodecs (issue 22, codecs OBS sends): OBS 30+ sends HEVC
// and AV1 over enhanced RTMP (FourCCs hvc1 and av01). Real encoder output
// (libx265 with B-frames, SVT-AV1 low delay; AAC) goes into a real
// `banyan up` as OBS sends it. Before, the publish ended at the first video
// message with "unsupported video codec HEVC", and AV1 went on audio-only.
// Now: the multivariant playlist names the codec in CODECS, the sealed CMAF
// decodes with every frame, and Chromium plays it or, without a decoder
// (Debian's Chromium has none for HEVC), says so instead of showing a
// black page. Chromium decodes AV1 in software, so AV1 must play.
func TestEnhancedRTMPCodecs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		codec     media.Codec
		codecsRE  string // the video codec string in CODECS, a group
		probeName string // ffprobe's codec_name
		mustPlay  bool
		reason    string // the player's error without a decoder
	}{
		{"HEVC", media.H265, `(hvc1\.1\.6\.L\d+\.90)`, "hevc", false, "cannot decode HEVC"},
		{"AV1", media.AV1, `(av01\.0\.\d\dM\.08)`, "av1", true, "cannot decode AV1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testEnhancedRTMPCodec(t, tc.codec, tc.codecsRE, tc.probeName, tc.mustPlay, tc.reason)
		})
	}
}

func testEnhancedRTMPCodec(t *testing.T, codec media.Codec, codecRE, probeName string, mustPlay bool, reason string) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const seconds = 6
	m := e2e.EncodeTestMediaCodec(t, ctx, ffmpeg, ffprobe, dir, "320x240", seconds, codec)
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
	codecsRE := regexp.MustCompile(`CODECS="` + codecRE + `,mp4a\.40\.2",RESOLUTION=320x240`)
	var vcodec string
	for deadline := time.Now().Add(20 * time.Second); vcodec == ""; {
		if code, b := httpGet(t, p.base+"/hls/demo/main.m3u8"); code == 200 {
			mm := codecsRE.FindSubmatch(b)
			if mm == nil {
				t.Fatalf("multivariant playlist:\n%s", b)
			}
			vcodec = string(mm[1])
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
			fmt.Sprintf(`MediaSource.isTypeSupported('video/mp4; codecs="%s,mp4a.40.2"')`, vcodec)))
		if err != nil {
			t.Fatal(err)
		}
		if mustPlay && !supported {
			t.Fatalf("Chromium's MediaSource does not take %s", vcodec)
		}
		if supported {
			waitViewer(t, vctx, vcodec+" playback", 30*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
		} else {
			got := waitViewer(t, vctx, "the player to say it "+reason, 30*time.Second, func(p viewerProbe) bool { return p.State == "error" })
			if !strings.Contains(got.Reason, reason) || !strings.Contains(got.Reason, "Safari") {
				t.Fatalf("error state reason %q", got.Reason)
			}
		}
		t.Logf("Chromium MediaSource supports %s: %v", vcodec, supported)
	}
	if err := <-pubErr; err != nil {
		t.Fatalf("enhanced RTMP publish: %v; server: %s", err, p.stderr)
	}

	// The sealed CMAF of the epoch, as a viewer opens it, decodes with
	// every frame sent.
	out, size := sealedEpoch(t, p, dir, vcodec)
	got := e2e.FrameCounts(t, ctx, ffprobe, out)
	if got["video/"+probeName] != fmt.Sprint(len(m.VideoAUs)) || got["audio/aac"] == "" {
		t.Fatalf("ffprobe of the sealed epoch: %v, want %d %s frames and AAC", got, len(m.VideoAUs), probeName)
	}
	t.Logf("%s: %s video frames, %s AAC frames decoded from %d bytes of CMAF", vcodec, got["video/"+probeName], got["audio/aac"], size)
	if strings.Contains(p.stderr.String(), "unsupported") {
		t.Fatalf("server log mentions an unsupported codec:\n%s", p.stderr)
	}
}
