package e2e

import (
	"context"
	"encoding/json"
	"testing"
)

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
