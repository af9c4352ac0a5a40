package cmaf_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// TestPackagerAV feeds 10 s of synthetic H.264 (with and without B-frames)
// plus audio and checks, after parsing the output with mediacommon, that
// every sample comes back with its exact DTS, PTS, sync flag and payload,
// that chunks are about 250 ms and keyframes start chunks.
func TestPackagerAV(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       genOpts
		audio   media.AudioConfig
		flush   bool
		codecs  string
		vOffT   int64 // expected tfdt shift of video, ticks
		aOffT   int64
		audioTS uint32
	}{
		{
			name:  "bframes-aac-flushed",
			o:     genOpts{dur: 10 * time.Second, fps: 30, bframes: true, gop: 60, audioRate: 48000},
			audio: audioAAC, flush: true, codecs: "avc1.64001f,mp4a.40.2", audioTS: 48000,
		},
		{
			name:  "bframes-aac-unflushed",
			o:     genOpts{dur: 10 * time.Second, fps: 30, bframes: true, gop: 60, audioRate: 48000},
			audio: audioAAC, flush: false, codecs: "avc1.64001f,mp4a.40.2", audioTS: 48000,
		},
		{
			name:  "25fps-audio-lag",
			o:     genOpts{dur: 10 * time.Second, fps: 25, gop: 50, audioRate: 48000, audioLag: 80 * time.Millisecond},
			audio: audioAAC, flush: true, codecs: "avc1.64001f,mp4a.40.2", audioTS: 48000,
		},
		{
			// B-frame encoders start DTS below zero; the timeline is shifted.
			name:  "negative-start-dts",
			o:     genOpts{dur: 10 * time.Second, fps: 30, bframes: true, gop: 60, audioRate: 48000, videoStartFrames: -2},
			audio: audioAAC, flush: true, codecs: "avc1.64001f,mp4a.40.2", vOffT: 6000, aOffT: 3200, audioTS: 48000,
		},
		{
			name:  "opus",
			o:     genOpts{dur: 10 * time.Second, fps: 30, bframes: true, gop: 90, audioRate: 48000, audioFrame: 960},
			audio: audioOpus, flush: true, codecs: "avc1.64001f,Opus", audioTS: 48000,
		},
		{
			name:  "one-hour-in",
			o:     genOpts{dur: 4 * time.Second, fps: 60, bframes: true, gop: 120, audioRate: 48000, dtsBase: time.Hour},
			audio: audioAAC, flush: true, codecs: "avc1.64001f,mp4a.40.2",
			vOffT: 3600 * 90000, aOffT: 3600 * 48000, audioTS: 48000,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{FirstEpoch: 3})
			configure(t, p, &videoHigh, &tc.audio)
			video, audio := genVideo(tc.o), genAudio(tc.o)
			feedAll(t, p, interleave(video, audio, tc.o.audioLag))
			if tc.flush {
				if err := p.Flush(); err != nil {
					t.Fatal(err)
				}
			}

			eps := parseOutput(t, r)
			if len(eps) != 1 {
				t.Fatalf("%d epochs, want 1", len(eps))
			}
			ep := eps[0]
			if ep.init.Epoch != 3 || ep.init.Codecs != tc.codecs {
				t.Fatalf("init epoch %d codecs %q", ep.init.Epoch, ep.init.Codecs)
			}
			if ep.init.Width != 1280 || ep.init.Height != 720 {
				t.Fatalf("init size %dx%d", ep.init.Width, ep.init.Height)
			}
			checkInitTracks(t, ep, tc.audioTS)

			// Audio before the first keyframe is dropped.
			var wantAudio []fed
			for _, a := range audio {
				if a.au.DTS >= video[0].au.DTS {
					wantAudio = append(wantAudio, a)
				}
			}
			wantVideo := video
			gv, ga := ep.samples[cmaf.VideoTrackID], ep.samples[cmaf.AudioTrackID]
			if !tc.flush {
				// Without Flush, the held sample and the still-open chunk
				// are missing: at most one chunk's worth plus the held one.
				missV, missA := len(wantVideo)-len(gv), len(wantAudio)-len(ga)
				maxV := int(cmaf.DefaultChunkDuration*time.Duration(tc.o.fps)/time.Second) + 2
				maxA := 2 * maxV * tc.o.audioRate / 1024 / tc.o.fps
				if missV < 1 || missV > maxV || missA < 1 || missA > maxA {
					t.Fatalf("unflushed: %d video, %d audio samples missing", missV, missA)
				}
				wantVideo, wantAudio = wantVideo[:len(gv)], wantAudio[:len(ga)]
			}
			checkTrack(t, "video", gv, wantVideo, tc.vOffT)
			checkTrack(t, "audio", ga, wantAudio, tc.aOffT)
			if tc.flush {
				// The final sample reuses the previous duration.
				for _, s := range [][]gotSample{gv, ga} {
					if n := len(s); s[n-1].dur != s[n-2].dur {
						t.Fatalf("final duration %d, previous %d", s[n-1].dur, s[n-2].dur)
					}
				}
			}

			// Chunks: ~250 ms, cut at the frame boundary nearest the target
			// or earlier at a keyframe; one Keyframe chunk per GOP.
			frame := time.Second / time.Duration(tc.o.fps)
			target := cmaf.DefaultChunkDuration
			keys, sum := 0, time.Duration(0)
			for i, c := range ep.chunks {
				sum += c.Duration
				if c.Keyframe {
					keys++
				}
				if c.Discontinuity != (i == 0) {
					t.Fatalf("chunk %d: Discontinuity=%v", i, c.Discontinuity)
				}
				if i == len(ep.chunks)-1 {
					continue
				}
				if c.Duration > target+frame/2+time.Millisecond {
					t.Fatalf("chunk %d: duration %v", i, c.Duration)
				}
				if !ep.chunks[i+1].Keyframe && c.Duration < target-frame/2-time.Millisecond {
					t.Fatalf("chunk %d: duration %v, not ended by a keyframe", i, c.Duration)
				}
			}
			wantKeys := 0
			for _, v := range wantVideo {
				if v.au.Key {
					wantKeys++
				}
			}
			if keys != wantKeys {
				t.Fatalf("%d Keyframe chunks, want %d", keys, wantKeys)
			}
			last := gv[len(gv)-1]
			if want := ticksDur(last.dts+int64(last.dur)-gv[0].dts, cmaf.VideoTimescale); absDur(sum-want) > time.Millisecond {
				t.Fatalf("chunk durations sum to %v, video spans %v", sum, want)
			}
			st := p.Stats()
			if st.Chunks != uint64(len(ep.chunks)) || st.Samples != uint64(len(gv)+len(ga)) || st.Epochs != 1 {
				t.Fatalf("stats %+v", st)
			}
			t.Logf("%d chunks, %d video + %d audio samples", len(ep.chunks), len(gv), len(ga))
		})
	}
}

func checkInitTracks(t *testing.T, ep *gotEpoch, audioTS uint32) {
	t.Helper()
	for _, tr := range ep.parsed.Tracks {
		switch c := tr.Codec.(type) {
		case *codecs.H264:
			if tr.ID != cmaf.VideoTrackID || tr.TimeScale != cmaf.VideoTimescale || string(c.SPS) != string(spsHigh) {
				t.Fatalf("video track %d timescale %d", tr.ID, tr.TimeScale)
			}
		case *codecs.MPEG4Audio:
			if tr.ID != cmaf.AudioTrackID || tr.TimeScale != audioTS || c.Config.SampleRate != 48000 || c.Config.ChannelConfig != 2 {
				t.Fatalf("aac track %d timescale %d config %+v", tr.ID, tr.TimeScale, c.Config)
			}
		case *codecs.Opus:
			if tr.ID != cmaf.AudioTrackID || tr.TimeScale != 48000 || c.ChannelCount != 2 {
				t.Fatalf("opus track %d timescale %d channels %d", tr.ID, tr.TimeScale, c.ChannelCount)
			}
		default:
			t.Fatalf("unexpected codec %T", c)
		}
	}
}

// step is one call on the packager in a scripted scenario.
type step struct {
	at    time.Duration // feed AUs with delivery DTS < at before running this step
	video *media.VideoConfig
	audio *media.AudioConfig
}

// runScript feeds aus in order and runs each step's config call once the
// stream reaches its time.
func runScript(t *testing.T, p *cmaf.Packager, aus []media.AccessUnit, steps []step) {
	t.Helper()
	si := 0
	for _, au := range aus {
		for si < len(steps) && au.DTS >= steps[si].at {
			configure(t, p, steps[si].video, steps[si].audio)
			si++
		}
		if err := p.WriteAU(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestEpochs checks that configuration changes start new epochs at the
// right place, with sequence numbers restarting and timelines continuing.
func TestEpochs(t *testing.T) {
	o := genOpts{dur: 8 * time.Second, fps: 30, bframes: true, gop: 30, audioRate: 48000}
	video, audio := genVideo(o), genAudio(o)
	aus := interleave(video, audio, 0)

	type wantEpoch struct {
		epoch  uint32
		codecs string
		video  int // samples
		audio  int
	}
	countV := func(from, to time.Duration) int {
		n := 0
		for _, v := range video {
			if v.au.DTS >= from && v.au.DTS < to {
				n++
			}
		}
		return n
	}
	countA := func(from, to time.Duration) int {
		n := 0
		for _, a := range audio {
			if a.au.DTS >= from && a.au.DTS < to {
				n++
			}
		}
		return n
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	end := sec(100)
	for _, tc := range []struct {
		name  string
		first *media.VideoConfig
		steps []step
		want  []wantEpoch
		// totals when a config change drops AUs
		dropVideo int
	}{
		{
			name:  "same-config-repeated",
			steps: []step{{at: sec(2), video: &videoHigh, audio: &audioAAC}, {at: sec(3.5), video: &videoHigh}},
			want:  []wantEpoch{{5, "avc1.64001f,mp4a.40.2", len(video), len(audio)}},
		},
		{
			// SPS change on a GOP boundary: the keyframe starts epoch 6;
			// audio keeps flowing (its config did not change).
			name:  "sps-change-at-keyframe",
			steps: []step{{at: sec(3), video: &videoBase}},
			want: []wantEpoch{
				{5, "avc1.64001f,mp4a.40.2", countV(0, sec(3)), countA(0, sec(3))},
				{6, "avc1.42c01e,mp4a.40.2", countV(sec(3), end), countA(sec(3), end)},
			},
		},
		{
			// SPS change mid-GOP: the frames until the next keyframe belong
			// to the new parameter sets but cannot be decoded: dropped.
			name:  "sps-change-mid-gop",
			steps: []step{{at: sec(3.5), video: &videoBase}},
			want: []wantEpoch{
				{5, "avc1.64001f,mp4a.40.2", countV(0, sec(3.5)-1), countA(0, sec(4))},
				{6, "avc1.42c01e,mp4a.40.2", countV(sec(4), end), countA(sec(4), end)},
			},
		},
		{
			// New ASC: new-config audio waits for the next keyframe; audio
			// older than it is dropped.
			name:  "asc-change",
			steps: []step{{at: sec(3.5), audio: &audioAAC2}},
			want: []wantEpoch{
				{5, "avc1.64001f,mp4a.40.2", countV(0, sec(4)), countA(0, sec(3.5))},
				{6, "avc1.64001f,mp4a.40.2", countV(sec(4), end), countA(sec(4), end)},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{FirstEpoch: 5})
			configure(t, p, &videoHigh, &audioAAC)
			runScript(t, p, aus, tc.steps)
			eps := parseOutput(t, r)
			if len(eps) != len(tc.want) {
				t.Fatalf("%d epochs, want %d", len(eps), len(tc.want))
			}
			for i, w := range tc.want {
				e := eps[i]
				if e.init.Epoch != w.epoch || e.init.Codecs != w.codecs {
					t.Fatalf("epoch %d: %d %q, want %d %q", i, e.init.Epoch, e.init.Codecs, w.epoch, w.codecs)
				}
				gv, ga := len(e.samples[cmaf.VideoTrackID]), len(e.samples[cmaf.AudioTrackID])
				if gv != w.video || ga != w.audio {
					t.Fatalf("epoch %d: %d video %d audio samples, want %d %d", w.epoch, gv, ga, w.video, w.audio)
				}
				if !e.chunks[0].Keyframe || e.chunks[0].Seq != 1 {
					t.Fatalf("epoch %d: first chunk %+v", w.epoch, e.chunks[0])
				}
				// A config change continues the timeline.
				if e.chunks[0].Discontinuity != (i == 0) {
					t.Fatalf("epoch %d: Discontinuity=%v", w.epoch, e.chunks[0].Discontinuity)
				}
			}
			if len(eps) == 2 {
				// Video tfdt continues across the switch: the new epoch's
				// first video sample is the keyframe at its own DTS.
				v0, v1 := eps[0].samples[cmaf.VideoTrackID], eps[1].samples[cmaf.VideoTrackID]
				first := v1[0]
				if first.dts%(cmaf.VideoTimescale) != 0 || !first.sync {
					t.Fatalf("epoch 2 starts at tick %d", first.dts)
				}
				last := v0[len(v0)-1]
				if tc.name == "sps-change-at-keyframe" && last.dts+int64(last.dur) != first.dts {
					t.Fatalf("video timeline gap: %d+%d vs %d", last.dts, last.dur, first.dts)
				}
				if ts := eps[1].timescale[cmaf.AudioTrackID]; tc.name == "asc-change" && ts != 44100 {
					t.Fatalf("new audio timescale %d", ts)
				}
			}
		})
	}
}

// TestSingleTrack covers streams without one of the tracks, late tracks and
// streams that start without a keyframe.
func TestSingleTrack(t *testing.T) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	for _, tc := range []struct {
		name   string
		o      genOpts
		video  *media.VideoConfig
		audio  *media.AudioConfig
		steps  []step
		mimes  []string
		checks func(t *testing.T, eps []*gotEpoch, video, audio []fed)
	}{
		{
			name:  "video-only",
			o:     genOpts{dur: 3 * time.Second, fps: 30, bframes: true, gop: 60},
			video: &videoHigh,
			mimes: []string{`video/mp4; codecs="avc1.64001f"`},
			checks: func(t *testing.T, eps []*gotEpoch, video, _ []fed) {
				checkTrack(t, "video", eps[0].samples[cmaf.VideoTrackID], video, 0)
			},
		},
		{
			name:  "aac-only",
			o:     genOpts{dur: 5 * time.Second, audioRate: 48000},
			audio: &audioAAC,
			mimes: []string{`audio/mp4; codecs="mp4a.40.2"`},
			checks: func(t *testing.T, eps []*gotEpoch, _, audio []fed) {
				checkTrack(t, "audio", eps[0].samples[cmaf.AudioTrackID], audio, 0)
				// Segments every ~2 s: chunks 0, and the first at ≥ 2 s, ≥ 4 s.
				keys := 0
				for _, c := range eps[0].chunks {
					if c.Keyframe {
						keys++
					}
					if c.Duration > 270*time.Millisecond {
						t.Fatalf("audio chunk of %v", c.Duration)
					}
				}
				if keys != 3 {
					t.Fatalf("%d segment starts in 5 s of audio", keys)
				}
			},
		},
		{
			name:  "opus-only",
			o:     genOpts{dur: 2 * time.Second, audioRate: 48000, audioFrame: 960},
			audio: &audioOpus,
			mimes: []string{`audio/mp4; codecs="Opus"`},
			checks: func(t *testing.T, eps []*gotEpoch, _, audio []fed) {
				checkTrack(t, "audio", eps[0].samples[cmaf.AudioTrackID], audio, 0)
			},
		},
		{
			// Audio's config arrives after the video-only init went out: a
			// new epoch with both tracks starts at the next keyframe.
			name:  "late-audio",
			o:     genOpts{dur: 6 * time.Second, fps: 30, gop: 60, audioRate: 48000},
			video: &videoHigh,
			steps: []step{{at: sec(2.5), audio: &audioAAC}},
			mimes: []string{`video/mp4; codecs="avc1.64001f"`, `video/mp4; codecs="avc1.64001f,mp4a.40.2"`},
			checks: func(t *testing.T, eps []*gotEpoch, video, audio []fed) {
				checkTrack(t, "video", allSamples(eps, cmaf.VideoTrackID), video, 0)
				var want []fed
				for _, a := range audio {
					if a.au.DTS >= sec(4) {
						want = append(want, a)
					}
				}
				checkTrack(t, "audio", eps[1].samples[cmaf.AudioTrackID], want, 0)
				if eps[1].chunks[0].Discontinuity {
					t.Fatal("late track flagged as discontinuity")
				}
			},
		},
		{
			// Ingest joined mid-GOP: frames before the first keyframe and
			// the audio before it are dropped.
			name:  "starts-without-keyframe",
			o:     genOpts{dur: 4 * time.Second, fps: 30, bframes: true, gop: 60, audioRate: 48000, skipLeadingFrames: 20},
			video: &videoHigh, audio: &audioAAC,
			mimes: []string{`video/mp4; codecs="avc1.64001f,mp4a.40.2"`},
			checks: func(t *testing.T, eps []*gotEpoch, video, audio []fed) {
				var wantV, wantA []fed
				for _, v := range video {
					if v.au.DTS >= sec(2) {
						wantV = append(wantV, v)
					}
				}
				for _, a := range audio {
					if a.au.DTS >= sec(2) {
						wantA = append(wantA, a)
					}
				}
				checkTrack(t, "video", eps[0].samples[cmaf.VideoTrackID], wantV, 0)
				checkTrack(t, "audio", eps[0].samples[cmaf.AudioTrackID], wantA, 0)
			},
		},
		{
			// Both configs known but the first keyframe is 6 s away (WHIP
			// before the PLI answer): audio-only after KeyframeWait, then
			// both tracks from the keyframe.
			name:  "keyframe-very-late",
			o:     genOpts{dur: 8 * time.Second, fps: 30, gop: 180, audioRate: 48000, skipLeadingFrames: 1},
			video: &videoHigh, audio: &audioAAC,
			mimes: []string{`audio/mp4; codecs="mp4a.40.2"`, `video/mp4; codecs="avc1.64001f,mp4a.40.2"`},
			checks: func(t *testing.T, eps []*gotEpoch, _, audio []fed) {
				checkTrack(t, "audio", allSamples(eps, cmaf.AudioTrackID), audio, 0)
				if v := eps[1].samples[cmaf.VideoTrackID]; len(v) != 60 || v[0].dts != 6*cmaf.VideoTimescale {
					t.Fatalf("video after the late keyframe: %d samples", len(v))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{})
			configure(t, p, tc.video, tc.audio)
			video, audio := genVideo(tc.o), genAudio(tc.o)
			runScript(t, p, interleave(video, audio, 0), tc.steps)
			eps := parseOutput(t, r)
			if len(eps) != len(tc.mimes) {
				t.Fatalf("%d epochs, want %d", len(eps), len(tc.mimes))
			}
			for i, m := range tc.mimes {
				if got := eps[i].init.MIME(); got != m {
					t.Fatalf("epoch %d MIME %q, want %q", i, got, m)
				}
			}
			tc.checks(t, eps, video, audio)
		})
	}
}

// TestDiscontinuity checks that timestamp jumps start a new epoch flagged
// Discontinuity while jitter does not.
func TestDiscontinuity(t *testing.T) {
	o := genOpts{dur: 4 * time.Second, fps: 30, gop: 30, audioRate: 48000}
	mk := func(base time.Duration) []media.AccessUnit {
		o := o
		o.dtsBase = base
		return interleave(genVideo(o), genAudio(o), 0)
	}
	for _, tc := range []struct {
		name   string
		aus    []media.AccessUnit
		epochs int
	}{
		{"backwards", append(mk(10*time.Second), mk(0)...), 2},
		{"forward-gap", append(mk(0), mk(time.Minute)...), 2},
		{"small-forward-gap", append(mk(0), mk(5*time.Second)...), 1},
		{"restart-twice", append(append(mk(20*time.Second), mk(0)...), mk(3*time.Second)...), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{})
			configure(t, p, &videoHigh, &audioAAC)
			feedAll(t, p, tc.aus)
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			eps := parseOutput(t, r)
			if len(eps) != tc.epochs {
				t.Fatalf("%d epochs, want %d", len(eps), tc.epochs)
			}
			nv := 0
			for _, e := range eps {
				c := e.chunks[0]
				if !c.Discontinuity || !c.Keyframe {
					t.Fatalf("epoch %d first chunk: %+v", e.init.Epoch, c)
				}
				nv += len(e.samples[cmaf.VideoTrackID])
			}
			if nv != 120*len(tc.aus)/len(mk(0)) {
				t.Fatalf("%d video samples", nv)
			}
		})
	}

	t.Run("config-change-with-restart", func(t *testing.T) {
		// A new SPS whose keyframe also restarts the clock: the new epoch
		// is a new timeline, flagged Discontinuity.
		p, r := newPackager(t, cmaf.Config{})
		configure(t, p, &videoHigh, &audioAAC)
		feedAll(t, p, mk(10*time.Second))
		configure(t, p, &videoBase, nil)
		feedAll(t, p, mk(0))
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		eps := parseOutput(t, r)
		if len(eps) != 2 || !eps[1].chunks[0].Discontinuity || eps[1].init.VideoCodec != "avc1.42c01e" {
			t.Fatalf("%d epochs", len(eps))
		}
		if v := eps[1].samples[cmaf.VideoTrackID]; len(v) != 120 || v[0].dts != 0 {
			t.Fatalf("restarted epoch: %d video samples", len(v))
		}
	})

	t.Run("jitter", func(t *testing.T) {
		p, r := newPackager(t, cmaf.Config{})
		configure(t, p, &videoHigh, nil)
		// Equal and slightly decreasing DTS stay on one timeline with
		// one-tick steps.
		dts := []time.Duration{0, 33, 33, 30, 100, 133}
		for i, d := range dts {
			d *= time.Millisecond
			err := p.WriteAU(media.AccessUnit{Kind: media.Video, DTS: d, PTS: d, Key: i == 0, NALUs: [][]byte{{0x65, byte(i)}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		eps := parseOutput(t, r)
		v := eps[0].samples[cmaf.VideoTrackID]
		if len(eps) != 1 || len(v) != len(dts) {
			t.Fatalf("%d epochs, %d samples", len(eps), len(v))
		}
		want := []int64{0, 2970, 2971, 2972, 9000, 11970}
		for i, s := range v {
			if s.dts != want[i] {
				t.Fatalf("sample %d dts %d, want %d", i, s.dts, want[i])
			}
		}
	})
}

// TestCodecStrings checks the RFC 6381 strings and timescales.
func TestCodecStrings(t *testing.T) {
	he := mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 24000, ChannelConfig: 2,
		ExtensionType: mpeg4audio.ObjectTypeSBR, ExtensionSampleRate: 48000}
	heASC, err := he.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		video       *media.VideoConfig
		audio       *media.AudioConfig
		codecs      string
		audioRate   int
		width, hght int
	}{
		{"high", &videoHigh, &audioAAC, "avc1.64001f,mp4a.40.2", 48000, 1280, 720},
		{"baseline", &videoBase, &audioAAC2, "avc1.42c01e,mp4a.40.2", 44100, 640, 360},
		{"he-aac", &videoBase, &media.AudioConfig{Codec: media.AAC, ASC: heASC}, "avc1.42c01e,mp4a.40.5", 48000, 640, 360},
		{"opus-mono", nil, &media.AudioConfig{Codec: media.Opus, Channels: 1}, "Opus", 48000, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{})
			configure(t, p, tc.video, tc.audio)
			o := genOpts{dur: 300 * time.Millisecond, audioRate: tc.audioRate}
			if tc.video != nil {
				o.fps, o.gop = 30, 30
			}
			feedAll(t, p, interleave(genVideo(o), genAudio(o), 0))
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			eps := parseOutput(t, r)
			in := eps[0].init
			if in.Codecs != tc.codecs || in.Width != tc.width || in.Height != tc.hght || in.SampleRate != tc.audioRate {
				t.Fatalf("init %q %dx%d %d Hz", in.Codecs, in.Width, in.Height, in.SampleRate)
			}
			if ts := eps[0].timescale[cmaf.AudioTrackID]; ts != uint32(tc.audioRate) {
				t.Fatalf("audio timescale %d", ts)
			}
		})
	}
}

// TestInvalidInput checks that bad configurations and AUs get clear errors
// and leave the packager usable.
func TestInvalidInput(t *testing.T) {
	big := make([]byte, cmaf.MaxAudioAUSize+1)
	many := make([][]byte, cmaf.MaxNALUsPerAU+1)
	for i := range many {
		many[i] = []byte{0x41, 1}
	}
	for _, tc := range []struct {
		name string
		call func(p *cmaf.Packager) error
		want string
	}{
		{"short-sps", func(p *cmaf.Packager) error { return p.VideoConfig(media.VideoConfig{SPS: []byte{0x67}, PPS: ppsHigh}) }, "too short"},
		{"sps-not-sps", func(p *cmaf.Packager) error { return p.VideoConfig(media.VideoConfig{SPS: ppsHigh, PPS: ppsHigh}) }, "NAL type"},
		{"pps-missing", func(p *cmaf.Packager) error { return p.VideoConfig(media.VideoConfig{SPS: spsHigh}) }, "PPS"},
		{"sps-garbage", func(p *cmaf.Packager) error {
			return p.VideoConfig(media.VideoConfig{SPS: []byte{0x67, 0x64, 0, 0x1f, 0xff, 0xff, 0xff, 0xff}, PPS: ppsHigh})
		}, "SPS"},
		{"asc-garbage", func(p *cmaf.Packager) error {
			return p.AudioConfig(media.AudioConfig{Codec: media.AAC, ASC: []byte{0xff, 0xff}})
		}, "ASC"},
		{"asc-pce", func(p *cmaf.Packager) error {
			return p.AudioConfig(media.AudioConfig{Codec: media.AAC, ASC: []byte{0x11, 0x80}})
		}, "channel config 0"},
		{"opus-6ch", func(p *cmaf.Packager) error {
			return p.AudioConfig(media.AudioConfig{Codec: media.Opus, Channels: 6})
		}, "channels"},
		{"codec-h264-as-audio", func(p *cmaf.Packager) error {
			return p.AudioConfig(media.AudioConfig{Codec: media.H264})
		}, "unsupported audio codec"},
		{"kind-unknown", func(p *cmaf.Packager) error { return p.WriteAU(media.AccessUnit{Kind: 9}) }, "unknown kind"},
		{"video-with-frame", func(p *cmaf.Packager) error {
			return p.WriteAU(media.AccessUnit{Kind: media.Video, Frame: []byte{1}})
		}, "Frame set"},
		{"audio-with-nalus", func(p *cmaf.Packager) error {
			return p.WriteAU(media.AccessUnit{Kind: media.Audio, NALUs: [][]byte{{1}}})
		}, "NALUs set"},
		{"audio-too-big", func(p *cmaf.Packager) error { return p.WriteAU(media.AccessUnit{Kind: media.Audio, Frame: big}) }, "exceeds"},
		{"too-many-nalus", func(p *cmaf.Packager) error { return p.WriteAU(media.AccessUnit{Kind: media.Video, NALUs: many}) }, "exceed"},
		{"time-out-of-range", func(p *cmaf.Packager) error {
			return p.WriteAU(media.AccessUnit{Kind: media.Audio, DTS: 1 << 62, Frame: []byte{1}})
		}, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{})
			configure(t, p, &videoHigh, &audioAAC)
			err := tc.call(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "cmaf: ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			// Still usable: a valid stream packages normally.
			o := genOpts{dur: time.Second, fps: 30, gop: 30, audioRate: 48000}
			feedAll(t, p, interleave(genVideo(o), genAudio(o), 0))
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			if eps := parseOutput(t, r); len(eps) != 1 || len(eps[0].samples[cmaf.VideoTrackID]) != 30 {
				t.Fatalf("packager unusable after %s", tc.name)
			}
		})
	}

	t.Run("new-without-callbacks", func(t *testing.T) {
		if _, err := cmaf.New(cmaf.Config{}); err == nil {
			t.Fatal("New accepted a config without callbacks")
		}
	})
	t.Run("after-flush", func(t *testing.T) {
		p, _ := newPackager(t, cmaf.Config{})
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := p.WriteAU(media.AccessUnit{Kind: media.Audio, Frame: []byte{1}}); !errors.Is(err, cmaf.ErrFlushed) {
			t.Fatalf("after Flush: %v", err)
		}
	})
	t.Run("callback-error-is-sticky", func(t *testing.T) {
		boom := errors.New("boom")
		p, err := cmaf.New(cmaf.Config{
			OnInit:  func(cmaf.Init) error { return nil },
			OnChunk: func(cmaf.Chunk) error { return boom },
			Logger:  quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		configure(t, p, &videoHigh, &audioAAC)
		o := genOpts{dur: time.Second, fps: 30, gop: 30, audioRate: 48000}
		var got error
		for _, au := range interleave(genVideo(o), genAudio(o), 0) {
			if got = p.WriteAU(au); got != nil {
				break
			}
		}
		if !errors.Is(got, boom) {
			t.Fatalf("callback error not returned: %v", got)
		}
		if err := p.WriteAU(media.AccessUnit{Kind: media.Audio, Frame: []byte{1}}); !errors.Is(err, boom) {
			t.Fatalf("not sticky: %v", err)
		}
	})
	t.Run("parameter-sets-only-au", func(t *testing.T) {
		// An AU of only SPS/PPS/AUD carries no sample: dropped, no error.
		p, r := newPackager(t, cmaf.Config{})
		configure(t, p, &videoHigh, nil)
		if err := p.WriteAU(media.AccessUnit{Kind: media.Video, Key: true, NALUs: [][]byte{spsHigh, ppsHigh, {0x09, 0xf0}}}); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		if len(r.events) != 0 || p.Stats().DroppedAUs != 1 {
			t.Fatalf("events %d, stats %+v", len(r.events), p.Stats())
		}
	})
}

// TestIrregularVideo covers low frame rates and a video stall while audio
// keeps flowing: no sample is lost, chunks stay bounded, and audio-only
// chunks appear only during a real stall.
func TestIrregularVideo(t *testing.T) {
	for _, tc := range []struct {
		name           string
		video          []fed
		audio          []fed
		wantAudioOnly  bool
		maxChunk       time.Duration
		wantFirstIsKey bool
	}{
		{
			name:     "2fps",
			video:    genVideo(genOpts{dur: 6 * time.Second, fps: 2, gop: 4}),
			audio:    genAudio(genOpts{dur: 6 * time.Second, audioRate: 48000}),
			maxChunk: 500 * time.Millisecond,
		},
		{
			name: "stall-3s",
			video: append(genVideo(genOpts{dur: 2 * time.Second, fps: 30, gop: 30}),
				genVideo(genOpts{dur: 2 * time.Second, fps: 30, gop: 30, dtsBase: 5 * time.Second})...),
			audio:         genAudio(genOpts{dur: 7 * time.Second, audioRate: 48000}),
			wantAudioOnly: true,
			maxChunk:      3100 * time.Millisecond, // the frame before the stall lasts until it ends
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := newPackager(t, cmaf.Config{})
			configure(t, p, &videoHigh, &audioAAC)
			feedAll(t, p, interleave(tc.video, tc.audio, 0))
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			eps := parseOutput(t, r)
			if len(eps) != 1 {
				t.Fatalf("%d epochs", len(eps))
			}
			e := eps[0]
			if len(e.samples[cmaf.VideoTrackID]) != len(tc.video) || len(e.samples[cmaf.AudioTrackID]) != len(tc.audio) {
				t.Fatalf("%d/%d video, %d/%d audio samples", len(e.samples[cmaf.VideoTrackID]), len(tc.video),
					len(e.samples[cmaf.AudioTrackID]), len(tc.audio))
			}
			if !e.chunks[0].Keyframe {
				t.Fatal("first chunk is not a Keyframe chunk")
			}
			audioOnly := false
			for i, part := range e.parts {
				if len(part.Tracks) == 1 && part.Tracks[0].ID == cmaf.AudioTrackID {
					audioOnly = true
					// Video counts as stalled after four chunks of audio,
					// and at least a second.
					if e.chunks[i].Duration > max(4*cmaf.DefaultChunkDuration, time.Second)+50*time.Millisecond {
						t.Fatalf("audio-only chunk %d of %v", i, e.chunks[i].Duration)
					}
				}
				if e.chunks[i].Duration > tc.maxChunk {
					t.Fatalf("chunk %d of %v", i, e.chunks[i].Duration)
				}
			}
			if audioOnly != tc.wantAudioOnly {
				t.Fatalf("audio-only chunks: %v", audioOnly)
			}
		})
	}
}

// TestPendingQueue covers audio waiting for the keyframe that starts its
// epoch: the wait queue stays bounded, and Flush still emits what waits.
func TestPendingQueue(t *testing.T) {
	t.Run("bounded-over-long-gop", func(t *testing.T) {
		o := genOpts{dur: 70 * time.Second, fps: 30, gop: 60 * 30, audioRate: 48000}
		video, audio := genVideo(o), genAudio(o)
		p, r := newPackager(t, cmaf.Config{})
		configure(t, p, &videoHigh, nil)
		runScript(t, p, interleave(video, audio, 0), []step{{at: 1500 * time.Millisecond, audio: &audioAAC}})
		eps := parseOutput(t, r)
		if len(eps) != 2 || eps[1].init.AudioCodec == "" {
			t.Fatalf("%d epochs", len(eps))
		}
		var want []fed
		for _, a := range audio {
			if a.au.DTS >= 60*time.Second {
				want = append(want, a)
			}
		}
		checkTrack(t, "audio", eps[1].samples[cmaf.AudioTrackID], want, 0)
		checkTrack(t, "video", allSamples(eps, cmaf.VideoTrackID), video, 0)
		if d := p.Stats().DroppedAUs; d < uint64(len(audio)-len(want))-100 {
			t.Fatalf("dropped %d", d)
		}
	})
	t.Run("flush-while-waiting", func(t *testing.T) {
		o := genOpts{dur: 3 * time.Second, fps: 30, gop: 300, audioRate: 48000}
		video, audio := genVideo(o), genAudio(o)
		p, r := newPackager(t, cmaf.Config{})
		configure(t, p, &videoHigh, nil)
		runScript(t, p, interleave(video, audio, 0), []step{{at: 2 * time.Second, audio: &audioAAC}})
		eps := parseOutput(t, r)
		// Video-only epoch, then the waiting audio as an audio-only epoch.
		if len(eps) != 2 || eps[0].init.Codecs != "avc1.64001f" || eps[1].init.Codecs != "mp4a.40.2" {
			t.Fatalf("%d epochs", len(eps))
		}
		if n := len(eps[1].samples[cmaf.AudioTrackID]); n < 45 {
			t.Fatalf("%d waiting audio samples emitted", n)
		}
	})
}

// TestAudioHoleSilence: a hole in AAC-LC (frames lost before the seeder)
// is filled with silent frames, each one frame long, so the timeline has
// audio wherever it says it has; a hole left to the frame before it as
// its duration stalled Chromium (issue 22). Holes over a second are left
// as they were.
func TestAudioHoleSilence(t *testing.T) {
	const spf = 1024
	for _, tc := range []struct {
		name       string
		audio      media.AudioConfig
		rate       int
		lost       int  // frames lost at frame 50
		extra      int  // and this many ticks more (not whole frames)
		wantFilled bool // with lost silent frames
	}{
		{"300 ms", audioAAC, 48000, 14, 0, true},
		{"one frame", audioAAC, 48000, 1, 0, true},
		{"not whole frames", audioAAC2, 44100, 10, 300, true},
		{"half a frame", audioAAC, 48000, 0, 512, false},
		{"over a second", audioAAC, 48000, 60, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			video := genVideo(genOpts{dur: 4 * time.Second, fps: 30, gop: 30})
			var audio []fed
			var ticks int64
			for n := range 4 * tc.rate / spf {
				if n == 50 {
					ticks += int64(tc.lost*spf + tc.extra)
				}
				d := time.Duration(ticks) * time.Second / time.Duration(tc.rate)
				audio = append(audio, fed{au: media.AccessUnit{Kind: media.Audio, DTS: d, PTS: d, Key: true, Frame: []byte{0xaa, byte(n)}}, dtsT: ticks})
				ticks += spf
			}
			p, ep := packageOne(t, &videoHigh, &tc.audio, interleave(video, audio, 0))
			got := ep.samples[cmaf.AudioTrackID]
			silent := 0
			if tc.wantFilled {
				silent = tc.lost + tc.extra/spf
			}
			if len(got) != len(audio)+silent {
				t.Fatalf("%d audio samples, %d fed, want %d silent ones", len(got), len(audio), silent)
			}
			// Every sample is one frame long but the last filler (and the
			// last sample), which takes what is not a whole frame; the
			// fed frames keep their times, the fillers are silence.
			fi := 0
			for i, s := range got[:len(got)-1] {
				want := uint32(spf)
				switch {
				case !tc.wantFilled && fi == 49:
					want = uint32(spf*(1+tc.lost) + tc.extra)
				case tc.wantFilled && i == 49+silent:
					want = uint32(spf + tc.extra%spf)
				}
				if s.dur != want {
					t.Fatalf("audio sample %d: duration %d, want %d", i, s.dur, want)
				}
				isFed := bytes.Equal(s.payload, audio[fi].au.Frame)
				if isFed {
					if wantT := got[0].dts + audio[fi].dtsT; s.dts != wantT {
						t.Fatalf("fed frame %d at %d ticks, want %d", fi, s.dts, wantT)
					}
					fi++
				} else if !tc.wantFilled || i < 50 || i >= 50+silent || len(s.payload) < 4 {
					t.Fatalf("audio sample %d: unexpected payload %x", i, s.payload)
				}
			}
			if n := p.Stats().SilenceFilled; (n == 1) != tc.wantFilled {
				t.Fatalf("%d holes filled", n)
			}
		})
	}
}
