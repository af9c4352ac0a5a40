package cmaf_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// TestFFprobe packages real libx264 and libx265 output (with B-frames) and
// AAC from ffmpeg, writes init+chunks as one fragmented MP4 and has ffprobe
// decode it: every frame must be there, with the source's presentation
// times, and the codec string names the codec.
func TestFFprobe(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	for _, tt := range []struct {
		codec  media.Codec
		name   string // as ffprobe names it
		prefix string // of the RFC 6381 codec string
	}{
		{media.H264, "h264", "avc1.4d"},
		// libx265 Main profile: hvc1.1.6.L<level>.90.
		{media.H265, "hevc", "hvc1.1.6.L"},
	} {
		t.Run(tt.name, func(t *testing.T) { ffprobeCodec(t, ffmpeg, ffprobe, tt.codec, tt.name, tt.prefix) })
	}
}

func ffprobeCodec(t *testing.T, ffmpeg, ffprobe string, codec media.Codec, name, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dir := t.TempDir()
	m := e2e.EncodeTestMediaCodec(t, ctx, ffmpeg, ffprobe, dir, "320x240", 3, codec)
	if len(m.VideoAUs) != 90 {
		t.Fatalf("%d video AUs, want 90", len(m.VideoAUs))
	}
	vts := m.Ticks
	var video, audio []fed
	for _, au := range m.VideoAUs {
		video = append(video, fed{au: au})
	}
	for _, au := range m.AudioAUs {
		audio = append(audio, fed{au: au})
	}

	p, r := newPackager(t, cmaf.Config{})
	configure(t, p, &m.Video, &m.Audio)
	feedAll(t, p, interleave(video, audio, 0))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	eps := parseOutput(t, r)
	if len(eps) != 1 {
		t.Fatalf("%d epochs", len(eps))
	}
	if in := eps[0].init; !strings.HasPrefix(in.VideoCodec, prefix) || in.Width != 320 || in.Height != 240 {
		t.Fatalf("init: codec %q %dx%d", in.VideoCodec, in.Width, in.Height)
	}
	wantAudio := 0
	for _, a := range audio {
		if a.au.DTS >= video[0].au.DTS {
			wantAudio++
		}
	}
	out := writeMP4(t, dir, eps[0])

	got := e2e.FrameCounts(t, ctx, ffprobe, out)
	if got["video/"+name] != strconv.Itoa(len(video)) || got["audio/aac"] != strconv.Itoa(wantAudio) {
		t.Fatalf("ffprobe frame counts %v, want video %d audio %d", got, len(video), wantAudio)
	}

	// Presentation times survive: the packets' PTS relative to the first
	// DTS match the source's (B-frame reordering included).
	var outPTS []int64
	for _, line := range e2e.Lines(e2e.Run(t, ctx, ffprobe, "-v", "error",
		"-select_streams", "v:0", "-show_entries", "packet=pts", "-of", "csv=p=0", out)) {
		v, err := strconv.ParseInt(strings.TrimSuffix(line, ","), 10, 64)
		if err != nil {
			t.Fatalf("ffprobe line %q", line)
		}
		outPTS = append(outPTS, v)
	}
	if len(outPTS) != len(vts) {
		t.Fatalf("%d packets out, %d in", len(outPTS), len(vts))
	}
	origin := eps[0].samples[cmaf.VideoTrackID][0].dts
	for i := range vts {
		if outPTS[i]-origin != vts[i].PTS-vts[0].DTS {
			t.Fatalf("packet %d: pts %d (rel %d), source rel %d", i, outPTS[i], outPTS[i]-origin, vts[i].PTS-vts[0].DTS)
		}
	}
	// And ffmpeg decodes it without complaint.
	if msg, err := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-nostdin", "-i", out, "-f", "null", "-").CombinedOutput(); err != nil || len(msg) != 0 {
		t.Fatalf("ffmpeg decode: %v %s", err, msg)
	}
	t.Logf("%d chunks, %d video, %d audio frames decoded by ffprobe; MIME %s", len(eps[0].chunks), len(video), wantAudio, eps[0].init.MIME())
}

// TestX264Defaults packages libx264 at its defaults (B-pyramid, adaptive
// B-frames: what an untuned broadcaster sends) and checks every frame's
// decode and presentation time against the source's: the composition
// offsets of reference B-frames survive chunking. (Chunks are cut in decode
// order, so a chunk's frames may be shown interleaved with the next one's,
// as LL-DASH's and LL-HLS's chunks are; Chromium plays that without a
// stall, issue 22.)
func TestX264Defaults(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	for _, tt := range []struct {
		name  string
		extra []string
	}{
		{"defaults", nil},
		// What TestMeasureGlassToGlass publishes: a 1 s GOP.
		{"veryfast keyint 30", []string{"-preset", "veryfast", "-g", "30", "-sc_threshold", "0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()
			m := e2e.EncodeX264Defaults(t, ctx, ffmpeg, ffprobe, t.TempDir(), "320x240", 4, tt.extra...)
			_, ep := packageOne(t, &m.Video, nil, m.VideoAUs)
			got := ep.samples[cmaf.VideoTrackID]
			if len(got) != len(m.Ticks) {
				t.Fatalf("%d samples out, %d in", len(got), len(m.Ticks))
			}
			reordered := false
			for i, s := range got {
				src := m.Ticks[i]
				reordered = reordered || src.PTS-src.DTS != m.Ticks[0].PTS-m.Ticks[0].DTS
				if s.dts-got[0].dts != src.DTS-m.Ticks[0].DTS || s.pts-got[0].dts != src.PTS-m.Ticks[0].DTS {
					t.Fatalf("frame %d: dts/pts %d/%d after the first dts, source %d/%d", i,
						s.dts-got[0].dts, s.pts-got[0].dts, src.DTS-m.Ticks[0].DTS, src.PTS-m.Ticks[0].DTS)
				}
			}
			if !reordered {
				t.Fatal("no B-frames in the encode: the test tests nothing")
			}
		})
	}
}

// TestSilenceDecodes cuts 300 ms out of real AAC (mono and stereo), has the
// packager fill the hole with its silent frames, and has ffmpeg decode the
// result: every frame decodes, without complaint.
func TestSilenceDecodes(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	for _, tt := range []struct {
		name     string
		channels int
	}{
		{"mono", 1},
		{"stereo", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()
			dir := t.TempDir()
			m := e2e.EncodeX264Defaults(t, ctx, ffmpeg, ffprobe, dir, "160x120", 3, "-g", "30", "-ac", strconv.Itoa(tt.channels))
			if m.Audio.Channels != tt.channels {
				t.Fatalf("%d channels encoded", m.Audio.Channels)
			}
			const lost = 14
			audio := append(append([]media.AccessUnit{}, m.AudioAUs[:60]...), m.AudioAUs[60+lost:]...)
			var video, aud []fed
			for _, au := range m.VideoAUs {
				video = append(video, fed{au: au})
			}
			for _, au := range audio {
				aud = append(aud, fed{au: au})
			}
			p, ep := packageOne(t, &m.Video, &m.Audio, interleave(video, aud, 0))
			if n := p.Stats().SilenceFilled; n != 1 {
				t.Fatalf("%d holes filled", n)
			}
			out := writeMP4(t, dir, ep)
			want := lost
			for _, a := range audio {
				if a.DTS >= m.VideoAUs[0].DTS {
					want++
				}
			}
			if got := e2e.FrameCounts(t, ctx, ffprobe, out)["audio/aac"]; got != strconv.Itoa(want) {
				t.Fatalf("ffprobe decoded %s audio frames, want %d", got, want)
			}
			if msg, err := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-nostdin", "-i", out, "-f", "null", "-").CombinedOutput(); err != nil || len(msg) != 0 {
				t.Fatalf("ffmpeg decode: %v %s", err, msg)
			}
		})
	}
}
