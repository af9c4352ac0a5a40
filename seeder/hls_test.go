package seeder_test

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/seeder"
)

// These tests drive a real Seeder (packager, sealer, window, origin) with
// synthetic access units on a manual clock, record every distinct LL-HLS
// media playlist a polling player would have seen, and check the
// invariants RFC 8216bis puts on a live playlist across reloads.

// parsedPlaylist is what the invariants need from one media playlist.
type parsedPlaylist struct {
	text        string
	target      int
	partTarget  float64
	partHold    float64
	mediaSeq    uint64
	maps        []string // EXT-X-MAP URIs in order
	disconts    int      // EXT-X-DISCONTINUITY tags
	dates       int      // EXT-X-PROGRAM-DATE-TIME tags
	segs        []plSeg  // complete segments
	open        []float64
	ended       bool
	preloadHint bool
}

type plSeg struct {
	msn   uint64
	uri   string
	dur   float64
	parts []float64
	epoch string // the EXT-X-MAP in force
}

func parsePlaylist(t *testing.T, text string) parsedPlaylist {
	t.Helper()
	p := parsedPlaylist{text: text}
	var parts []float64
	msn := uint64(0)
	attr := func(line, key string) string {
		i := strings.Index(line, key+"=")
		if i < 0 {
			return ""
		}
		v := line[i+len(key)+1:]
		if strings.HasPrefix(v, `"`) {
			return v[1 : 1+strings.Index(v[1:], `"`)]
		}
		if j := strings.IndexByte(v, ','); j >= 0 {
			v = v[:j]
		}
		return v
	}
	num := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("number %q in:\n%s", s, text)
		}
		return f
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			p.target = int(num(strings.TrimPrefix(l, "#EXT-X-TARGETDURATION:")))
		case strings.HasPrefix(l, "#EXT-X-PART-INF:"):
			p.partTarget = num(attr(l, "PART-TARGET"))
		case strings.HasPrefix(l, "#EXT-X-SERVER-CONTROL:"):
			p.partHold = num(attr(l, "PART-HOLD-BACK"))
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			p.mediaSeq = uint64(num(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:")))
			msn = p.mediaSeq
		case strings.HasPrefix(l, "#EXT-X-MAP:"):
			p.maps = append(p.maps, attr(l, "URI"))
		case l == "#EXT-X-DISCONTINUITY":
			p.disconts++
		case strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"):
			if _, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:")); err != nil {
				t.Fatalf("bad date %q", l)
			}
			p.dates++
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			parts = append(parts, num(attr(l, "DURATION")))
		case strings.HasPrefix(l, "#EXTINF:"):
			d := num(strings.TrimSuffix(strings.TrimPrefix(l, "#EXTINF:"), ","))
			i++
			ep := ""
			if len(p.maps) > 0 {
				ep = p.maps[len(p.maps)-1]
			}
			p.segs = append(p.segs, plSeg{msn: msn, uri: lines[i], dur: d, parts: parts, epoch: ep})
			parts = nil
			msn++
		case l == "#EXT-X-ENDLIST":
			p.ended = true
		case strings.HasPrefix(l, "#EXT-X-PRELOAD-HINT:"):
			p.preloadHint = true
		}
	}
	p.open = parts
	return p
}

func (p parsedPlaylist) listed() float64 {
	var d float64
	for _, s := range p.segs {
		d += s.dur
	}
	for _, d2 := range p.open {
		d += d2
	}
	return d
}

// checkInvariants checks a sequence of playlists as one player polling
// them would see them.
func checkInvariants(t *testing.T, name string, pls []parsedPlaylist) {
	t.Helper()
	type params struct {
		td       int
		pt, hold float64
	}
	byEpoch := map[string]params{}
	seen := map[uint64]plSeg{}
	fullWindow := false
	for i, p := range pls {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s: playlist %d: %s\n%s", name, i, fmt.Sprintf(format, args...), p.text)
		}
		if len(p.maps) == 0 {
			fail("no EXT-X-MAP")
		}
		newest := p.maps[len(p.maps)-1]
		cur := params{p.target, p.partTarget, p.partHold}
		if prev, ok := byEpoch[newest]; ok && prev != cur {
			fail("TARGETDURATION/PART-TARGET/PART-HOLD-BACK changed within epoch %s: %+v -> %+v", newest, prev, cur)
		}
		byEpoch[newest] = cur
		if p.partHold < 2*p.partTarget {
			fail("PART-HOLD-BACK %.3f under twice PART-TARGET %.3f", p.partHold, p.partTarget)
		}
		for _, s := range p.segs {
			if int(math.Round(s.dur)) > p.target {
				fail("EXTINF %.3f rounds above TARGETDURATION %d", s.dur, p.target)
			}
			checkParts(fail, s.parts, p.partTarget, true)
			if old, ok := seen[s.msn]; ok && (old.uri != s.uri || old.dur != s.dur) {
				fail("segment %d changed: %+v -> %+v", s.msn, old, s)
			}
			seen[s.msn] = s
		}
		checkParts(fail, p.open, p.partTarget, false)
		if len(p.maps) != p.disconts+1 {
			fail("%d maps, %d discontinuities", len(p.maps), p.disconts)
		}
		// Once the window has filled, eviction must leave at least three
		// target durations listed.
		if p.listed() >= 3*float64(p.target) {
			fullWindow = true
		} else if fullWindow {
			fail("window %.3f s under 3 × target duration %d", p.listed(), p.target)
		}
		if i > 0 && p.mediaSeq < pls[i-1].mediaSeq {
			fail("media sequence went back")
		}
		if p.dates == 0 {
			fail("no EXT-X-PROGRAM-DATE-TIME")
		}
	}
}

func checkParts(fail func(string, ...any), parts []float64, pt float64, complete bool) {
	for j, d := range parts {
		if d > pt {
			fail("part %.3f over PART-TARGET %.3f", d, pt)
		}
		last := j == len(parts)-1
		if !last && d < 0.85*pt {
			fail("part %.3f (not last of its segment) under 85%% of PART-TARGET %.3f", d, pt)
		}
	}
}

// streamSpec is synthetic broadcaster output.
type streamSpec struct {
	video     bool
	gopFrames int // keyframe every gopFrames frames at 30 fps
	// From frame gopFrom on, a keyframe every gopLater frames instead (an
	// encoder whose keyframe interval grows mid-stream).
	gopFrom, gopLater int
	audio             bool
	seconds           float64
	// audioGap skips audio frames in [gapAt, gapAt+gapLen) of media time:
	// the packager makes one long sample (a long chunk).
	gapAt, gapLen time.Duration
}

// hlsHarness is a seeder, its origin and a manual clock.
type hlsHarness struct {
	t   *testing.T
	s   *seeder.Seeder
	clk *clock
	h   http.Handler
	t0  time.Time
	// recorded playlists, distinct consecutive texts
	texts []string
}

func newHLSHarness(t *testing.T) *hlsHarness {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, _, _ := newSeeder(t, seeder.Config{Now: clk.Now, KeyRotation: -1})
	return &hlsHarness{t: t, s: s, clk: clk, h: s.Origin().Handler(), t0: clk.Now()}
}

func (h *hlsHarness) get(path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// poll records the playlist if it changed; it reports the status code.
func (h *hlsHarness) poll() int {
	rec := h.get("/hls/demo/index.m3u8")
	if rec.Code == http.StatusOK {
		if n := len(h.texts); n == 0 || h.texts[n-1] != rec.Body.String() {
			h.texts = append(h.texts, rec.Body.String())
		}
	}
	return rec.Code
}

func (h *hlsHarness) parsed() []parsedPlaylist {
	var out []parsedPlaylist
	for _, txt := range h.texts {
		out = append(out, parsePlaylist(h.t, txt))
	}
	return out
}

// publish runs one publish of spec starting at media time base (the clock
// follows the media), polling the playlist after every access unit.
func (h *hlsHarness) publish(spec streamSpec, start time.Time) *seeder.Publish {
	t := h.t
	p, err := h.s.StartPublish("demo", "rtmp", true, 0, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if spec.video {
		if err := p.VideoConfig(media.VideoConfig{SPS: testSPS, PPS: testPPS}); err != nil {
			t.Fatal(err)
		}
	}
	if spec.audio {
		if err := p.AudioConfig(media.AudioConfig{Codec: media.AAC, ASC: []byte{0x11, 0x90}, SampleRate: 48000, Channels: 2}); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Duration(spec.seconds * float64(time.Second))
	frame := time.Second / 30
	aframe := func(n int) time.Duration { return time.Duration(n) * 1024 * time.Second / 48000 }
	vi, ai := 0, 0
	for {
		vd, ad := time.Duration(vi)*frame, aframe(ai)
		if !spec.video {
			vd = end
		}
		if !spec.audio {
			ad = end
		}
		if vd >= end && ad >= end {
			break
		}
		var au media.AccessUnit
		if spec.video && vd <= ad {
			key := vi%spec.gopFrames == 0
			if spec.gopLater > 0 && vi >= spec.gopFrom {
				key = (vi-spec.gopFrom)%spec.gopLater == 0
			}
			nal := []byte{0x41, 0x9a, byte(vi), 0x01}
			if key {
				nal = []byte{0x65, 0x88, byte(vi), 0x00}
			}
			au = media.AccessUnit{Kind: media.Video, DTS: vd, PTS: vd, Key: key, NALUs: [][]byte{nal}}
			vi++
		} else {
			ai++
			if spec.gapLen > 0 && ad >= spec.gapAt && ad < spec.gapAt+spec.gapLen {
				continue
			}
			au = media.AccessUnit{Kind: media.Audio, DTS: ad, PTS: ad, Key: true, Frame: []byte{0x21, 0x10, 0x04, byte(ai)}}
		}
		h.clk.set(start.Add(au.DTS + 20*time.Millisecond))
		if err := p.WriteAU(au); err != nil {
			t.Fatal(err)
		}
		h.poll()
	}
	return p
}

// TestLLHLSPlaylistInvariants: TARGETDURATION, PART-TARGET and
// PART-HOLD-BACK stay put within an epoch, every segment and part fits
// them, listed segments never change, and the window keeps at least three
// target durations: with an OBS-default 250-frame GOP (8.3 s), a 1 s GOP,
// and audio only with one long chunk (a 1.2 s hole in the audio).
func TestLLHLSPlaylistInvariants(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec streamSpec
	}{
		{"gop250", streamSpec{video: true, gopFrames: 250, audio: true, seconds: 60}},
		{"gop30", streamSpec{video: true, gopFrames: 30, audio: true, seconds: 45}},
		{"audio-only long chunk", streamSpec{audio: true, seconds: 40, gapAt: 15 * time.Second, gapLen: 1200 * time.Millisecond}},
		// The target duration stays 1: 3 s GOPs are cut into segments
		// that do not all start with a keyframe.
		{"gop grows 1 s to 3 s", streamSpec{video: true, gopFrames: 30, gopFrom: 300, gopLater: 90, audio: true, seconds: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHLSHarness(t)
			h.publish(tc.spec, h.t0)
			pls := h.parsed()
			if len(pls) < 20 {
				t.Fatalf("only %d distinct playlists", len(pls))
			}
			checkInvariants(t, tc.name, pls)
			last := pls[len(pls)-1]
			if tc.spec.gopFrames == 250 && last.target < 9 {
				t.Fatalf("target duration %d for an 8.3 s GOP", last.target)
			}
		})
	}
}

// TestLLHLSReconnect: an OBS reconnect 2 s after a disconnect keeps the
// playlist answering with the old epoch's segments, then lists the new
// epoch after an EXT-X-DISCONTINUITY with its own EXT-X-MAP; EXT-X-ENDLIST
// appears only after the grace period.
func TestLLHLSReconnect(t *testing.T) {
	h := newHLSHarness(t)
	spec := streamSpec{video: true, gopFrames: 30, audio: true, seconds: 12}
	p := h.publish(spec, h.t0)
	p.End(nil)
	before := parsePlaylist(t, h.texts[len(h.texts)-1])
	oldSeg := before.segs[len(before.segs)-1].uri
	// Two seconds without a publisher: still 200, still listed, no end.
	for i := range 8 {
		h.clk.set(h.clk.Now().Add(250 * time.Millisecond))
		if code := h.poll(); code != http.StatusOK {
			t.Fatalf("playlist %d during the reconnect gap: HTTP %d", i, code)
		}
		pl := parsePlaylist(t, h.texts[len(h.texts)-1])
		if pl.ended {
			t.Fatalf("EXT-X-ENDLIST %v after the publisher left:\n%s", time.Duration(i+1)*250*time.Millisecond, pl.text)
		}
		// No parts and no hint while nobody publishes: hls.js would take
		// listed parts to mean that the next segment continues this
		// epoch's timeline, and reject the next epoch.
		if strings.Contains(pl.text, "#EXT-X-PART:") || pl.preloadHint {
			t.Fatalf("parts listed while no one publishes:\n%s", pl.text)
		}
	}
	h.publish(spec, h.clk.Now())
	pls := h.parsed()
	checkInvariants(t, "reconnect", pls)
	last := pls[len(pls)-1]
	if len(last.maps) != 2 || last.disconts != 1 || last.maps[0] == last.maps[1] {
		t.Fatalf("new epoch not marked with a discontinuity and a new map:\n%s", last.text)
	}
	if last.segs[0].epoch != last.maps[0] {
		t.Fatalf("previous epoch's segments no longer listed:\n%s", last.text)
	}
	if rec := h.get("/hls/demo/" + oldSeg); rec.Code != http.StatusOK {
		t.Fatalf("listed segment %s of the previous epoch: HTTP %d", oldSeg, rec.Code)
	}
	// The end: no EXT-X-ENDLIST within the grace period, then one.
	h.s.Origin().EndGrace = 10 * time.Second
	p2 := h.publish(streamSpec{video: true, gopFrames: 30, audio: true, seconds: 1}, h.clk.Now())
	p2.End(nil)
	h.clk.set(h.clk.Now().Add(5 * time.Second))
	h.poll()
	if parsePlaylist(t, h.texts[len(h.texts)-1]).ended {
		t.Fatal("EXT-X-ENDLIST within the grace period")
	}
	h.clk.set(h.clk.Now().Add(6 * time.Second))
	h.poll()
	if pl := parsePlaylist(t, h.texts[len(h.texts)-1]); !pl.ended || pl.preloadHint {
		t.Fatalf("no EXT-X-ENDLIST after the grace period:\n%s", pl.text)
	}
}
