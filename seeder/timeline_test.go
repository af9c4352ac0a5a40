package seeder_test

import (
	"bytes"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// TestLLHLSTimelineAcrossEpochs: a broadcaster away for 2 s comes back
// with its timestamps restarted at 0 (a new epoch). Every segment and part
// the LL-HLS origin serves must start, in its decode times (tfdt), where
// the playlist places it: the sum of the EXTINF before it, across the
// EXT-X-DISCONTINUITY. WebKitGTK's own HLS player stops for good where the
// timeline goes back (30.07 s of an ffmpeg-made playlist whose second half
// restarts at 0, past it when the second half continues at 30 s); before
// the fix the new epoch's first segment said 0 s where the playlist said
// 12 s.
func TestLLHLSTimelineAcrossEpochs(t *testing.T) {
	h := newHLSHarness(t)
	spec := streamSpec{video: true, gopFrames: 30, audio: true, seconds: 12}
	h.publish(spec, h.t0).End(nil)
	h.clk.set(h.clk.Now().Add(2 * time.Second))
	p := h.publish(spec, h.clk.Now())
	defer p.End(nil)
	last := parsePlaylist(t, h.texts[len(h.texts)-1])
	if last.disconts != 1 || len(last.maps) != 2 {
		t.Fatalf("want both epochs listed:\n%s", last.text)
	}

	// start is the earliest decode time of each track in an init segment's
	// fragments, in seconds.
	scales := map[string]map[int]uint32{}
	start := func(mapURI, uri string) map[int]float64 {
		t.Helper()
		if scales[mapURI] == nil {
			rec := h.get("/hls/demo/" + mapURI)
			var in fmp4.Init
			if err := in.Unmarshal(bytes.NewReader(rec.Body.Bytes())); rec.Code != http.StatusOK || err != nil {
				t.Fatalf("%s: HTTP %d, %v", mapURI, rec.Code, err)
			}
			scales[mapURI] = map[int]uint32{}
			for _, tr := range in.Tracks {
				scales[mapURI][tr.ID] = tr.TimeScale
			}
		}
		rec := h.get("/hls/demo/" + uri)
		var parts fmp4.Parts
		if err := parts.Unmarshal(rec.Body.Bytes()); rec.Code != http.StatusOK || err != nil {
			t.Fatalf("%s: HTTP %d, %v", uri, rec.Code, err)
		}
		out := map[int]float64{}
		for _, pt := range parts {
			for _, tr := range pt.Tracks {
				s := float64(tr.BaseTime) / float64(scales[mapURI][tr.ID])
				if v, ok := out[tr.ID]; !ok || s < v {
					out[tr.ID] = s
				}
			}
		}
		return out
	}
	// The video (track 1) starts where the playlist says; the audio within
	// an audio frame or two of it.
	check := func(what string, got map[int]float64, want float64) {
		t.Helper()
		if len(got) != 2 {
			t.Fatalf("%s: tracks %v, want video and audio", what, got)
		}
		if math.Abs(got[1]-want) > 0.02 {
			t.Errorf("%s: video starts at %.3f s, the playlist places it at %.3f s", what, got[1], want)
		}
		if math.Abs(got[2]-want) > 0.05 {
			t.Errorf("%s: audio starts at %.3f s, the playlist places it at %.3f s", what, got[2], want)
		}
	}
	var at float64
	for _, s := range last.segs {
		check(s.uri, start(s.epoch, s.uri), at)
		at += s.dur
	}
	// The new epoch's open segment: its parts follow the last complete
	// segment.
	open := last.text[strings.LastIndex(last.text, "#EXTINF:"):]
	re := regexp.MustCompile(`#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]+)"`)
	parts := re.FindAllStringSubmatch(open, -1)
	if len(parts) == 0 {
		t.Fatalf("no parts after the last segment:\n%s", last.text)
	}
	for _, m := range parts {
		check(m[2], start(last.maps[1], m[2]), at)
		d, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		at += d
	}
}
