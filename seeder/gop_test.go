package seeder_test

import (
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/flv"
	"github.com/banyan-live/banyan/seeder"
)

// TestLongGOPAdvice: a publish with OBS's default 250-frame GOP (8.3 s at
// 30 fps) is measured and gets the advice to set a 1 s keyframe interval
// (issue 22 #4); a 1 s GOP gets none.
func TestLongGOPAdvice(t *testing.T) {
	for _, tc := range []struct {
		gop    int
		want   time.Duration
		advice bool
	}{
		{250, 250 * time.Second / 30, true},
		{30, time.Second, false},
	} {
		h := newHLSHarness(t)
		if iv, adv := h.s.KeyframeInterval("demo"); iv != 0 || adv != "" {
			t.Fatalf("before a publish: %v %q", iv, adv)
		}
		h.publish(streamSpec{video: true, gopFrames: tc.gop, audio: true, seconds: 20}, h.t0)
		iv, adv := h.s.KeyframeInterval("demo")
		if d := iv - tc.want; d < -time.Millisecond || d > time.Millisecond || (adv != "") != tc.advice {
			t.Fatalf("GOP of %d frames: interval %v advice %q, want %v advice %v", tc.gop, iv, adv, tc.want, tc.advice)
		}
		if tc.advice && !strings.Contains(adv, seeder.KeyframeAdvice) {
			t.Fatalf("advice %q", adv)
		}
	}
}

// The RTMP converter finds Unsupported by a type assertion on its sink: a
// changed signature would silently lose the advice.
var _ flv.UnsupportedSink = (*seeder.Publish)(nil)

// TestUnsupportedCodecAdvice: a publish whose video (VP9 over enhanced
// RTMP) or audio (MP3) the ingest drops for its codec stays live and
// tells the broadcaster why and what to set, where the keyframe advice
// shows (dashboard, publish page).
func TestUnsupportedCodecAdvice(t *testing.T) {
	for _, tc := range []struct {
		kind  media.Kind
		codec string
		want  []string
	}{
		{media.Video, "VP9 (enhanced RTMP vp09)", []string{"video codec VP9 (enhanced RTMP vp09) is not supported", "viewers get no video", "set an H.264 encoder"}},
		{media.Audio, "MP3", []string{"audio codec MP3 is not supported", "the stream goes on without audio", "Settings → Output → Audio Encoder: AAC"}},
	} {
		h := newHLSHarness(t)
		p, err := h.s.StartPublish("demo", "rtmp", true, 0, func() {})
		if err != nil {
			t.Fatal(err)
		}
		p.Unsupported(tc.kind, tc.codec)
		_, adv := h.s.KeyframeInterval("demo")
		for _, want := range tc.want {
			if !strings.Contains(adv, want) {
				t.Fatalf("advice %q lacks %q", adv, want)
			}
		}
		if !h.s.Live("demo") {
			t.Fatal("the publish is not live")
		}
		p.End(nil)
	}
}
