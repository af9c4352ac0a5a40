package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/banyan-live/banyan/media"
)

// X265Config reads the VPS, SPS and PPS of file in media/hevc/testdata,
// real libx265 streams (Annex B) that the H.265 unit tests of several
// packages share.
func X265Config(tb testing.TB, file string) media.VideoConfig {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "media", "hevc", "testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	var au h264.AnnexB // the same framing for H.265
	if err := au.Unmarshal(b); err != nil {
		tb.Fatal(err)
	}
	v := media.VideoConfig{Codec: media.H265}
	for _, n := range au {
		// nal_unit_type; media/hevc's tests use this helper, so it
		// cannot import that package.
		switch (n[0] >> 1) & 0x3f {
		case 32:
			v.VPS = n
		case 33:
			v.SPS = n
		case 34:
			v.PPS = n
		}
	}
	if v.VPS == nil || v.SPS == nil || v.PPS == nil {
		tb.Fatalf("%s lacks a parameter set", file)
	}
	return v
}

// FrameCounts has ffprobe decode a media file and returns the frames it
// read per stream, keyed "video/hevc", "audio/aac"…
func FrameCounts(t testing.TB, ctx context.Context, ffprobe, path string) map[string]string {
	t.Helper()
	var probe struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Frames    string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(Run(t, ctx, ffprobe, "-v", "error", "-count_frames", "-show_streams", "-of", "json", path), &probe); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range probe.Streams {
		got[s.CodecType+"/"+s.CodecName] = s.Frames
	}
	return got
}
