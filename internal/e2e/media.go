package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/banyan-live/banyan/internal/ivf"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
)

// TestMedia is ffmpeg's test picture and a 440 Hz tone, encoded (libx264
// or libx265 with B-frames and a 1 s GOP, AAC) and demuxed into what an ingest hands
// the packager: configurations and access units with the source's times.
type TestMedia struct {
	Video media.VideoConfig
	Audio media.AudioConfig
	// VideoAUs in decode order; Ticks are their PTS and DTS in the
	// source's 90 kHz clock, as ffprobe printed them.
	VideoAUs []media.AccessUnit
	Ticks    []Ticks
	AudioAUs []media.AccessUnit
}

// Ticks is one video packet's timestamps in 90 kHz units.
type Ticks struct{ PTS, DTS int64 }

// EncodeTestMedia encodes seconds of size (e.g. "320x240") test media with
// ffmpeg in dir and splits it into access units, timed by ffprobe.
func EncodeTestMedia(t testing.TB, ctx context.Context, ffmpeg, ffprobe, dir, size string, seconds int) TestMedia {
	t.Helper()
	return EncodeTestMediaCodec(t, ctx, ffmpeg, ffprobe, dir, size, seconds, media.H264)
}

// EncodeTestMediaCodec is EncodeTestMedia with H.264 (libx264), H.265
// (libx265, Main profile, B-frames, keyint 30) or AV1 (SVT-AV1, low delay,
// keyint 30) video.
func EncodeTestMediaCodec(t testing.TB, ctx context.Context, ffmpeg, ffprobe, dir, size string, seconds int, codec media.Codec) TestMedia {
	t.Helper()
	if codec == media.AV1 {
		return encodeAV1TestMedia(t, ctx, ffmpeg, dir, size, seconds)
	}
	venc := []string{"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "30"}
	if codec == media.H265 {
		venc = []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=30:bframes=2:log-level=error"}
	}
	return encodeTestMedia(t, ctx, ffmpeg, ffprobe, dir, size, seconds, codec, venc)
}

// EncodeX264Defaults is EncodeTestMedia with libx264 at its defaults (preset
// medium: up to 3 B-frames in a pyramid, adaptive B-frame placement, a
// 250-frame GOP with scene cuts), what an untuned broadcaster sends, plus
// extra encoder arguments.
func EncodeX264Defaults(t testing.TB, ctx context.Context, ffmpeg, ffprobe, dir, size string, seconds int, extra ...string) TestMedia {
	t.Helper()
	return encodeTestMedia(t, ctx, ffmpeg, ffprobe, dir, size, seconds, media.H264, append([]string{"-c:v", "libx264"}, extra...))
}

func encodeTestMedia(t testing.TB, ctx context.Context, ffmpeg, ffprobe, dir, size string, seconds int, codec media.Codec, venc []string) TestMedia {
	t.Helper()
	src := filepath.Join(dir, "src.ts")
	ext, bsf := "h264", "h264_metadata=aud=insert"
	if codec == media.H265 {
		ext, bsf = "hevc", "hevc_metadata=aud=insert"
	}
	Run(t, ctx, ffmpeg, append(append([]string{"-v", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds)}, venc...),
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-f", "mpegts", src)...)
	vFile, aFile := filepath.Join(dir, "v."+ext), filepath.Join(dir, "a.aac")
	Run(t, ctx, ffmpeg, "-v", "error", "-nostdin", "-i", src,
		"-map", "0:v", "-c", "copy", "-bsf:v", bsf, "-f", ext, vFile,
		"-map", "0:a", "-c", "copy", "-f", "adts", aFile)

	var m TestMedia
	// Video: the Annex-B stream splits into AUs at the delimiters; the
	// demuxer gives each packet's PTS/DTS in the same (decode) order.
	for _, line := range Lines(Run(t, ctx, ffprobe, "-v", "error",
		"-select_streams", "v:0", "-show_entries", "packet=pts,dts", "-of", "csv=p=0", src)) {
		f := strings.Split(line, ",")
		if len(f) < 2 {
			t.Fatalf("ffprobe line %q", line)
		}
		pts, err1 := strconv.ParseInt(f[0], 10, 64)
		dts, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ffprobe line %q", line)
		}
		m.Ticks = append(m.Ticks, Ticks{pts, dts})
	}
	raw, err := os.ReadFile(vFile)
	if err != nil {
		t.Fatal(err)
	}
	// NAL unit types of the delimiter and the parameter sets.
	nalType := func(n []byte) uint8 { return n[0] & 0x1f }
	aud, vps, sps, pps := uint8(h264.NALUTypeAccessUnitDelimiter), uint8(0xff), uint8(h264.NALUTypeSPS), uint8(h264.NALUTypePPS)
	isKey := h264.IsRandomAccess
	if codec == media.H265 {
		nalType = func(n []byte) uint8 { return (n[0] >> 1) & 0x3f }
		aud, vps, sps, pps = uint8(h265.NALUType_AUD_NUT), uint8(h265.NALUType_VPS_NUT), uint8(h265.NALUType_SPS_NUT), uint8(h265.NALUType_PPS_NUT)
		isKey = h265.IsRandomAccess
		m.Video.Codec = media.H265
	}
	var aus [][][]byte
	for _, n := range SplitAnnexB(raw) {
		if nalType(n) == aud || len(aus) == 0 {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], n)
	}
	if len(aus) != len(m.Ticks) {
		t.Fatalf("%d AUs, %d timestamps", len(aus), len(m.Ticks))
	}
	for _, n := range aus[0] {
		switch nalType(n) {
		case vps:
			m.Video.VPS = n
		case sps:
			m.Video.SPS = n
		case pps:
			m.Video.PPS = n
		}
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / 90000 }
	for i, au := range aus {
		m.VideoAUs = append(m.VideoAUs, media.AccessUnit{
			Kind: media.Video, DTS: tick(m.Ticks[i].DTS), PTS: tick(m.Ticks[i].PTS), Key: isKey(au), NALUs: au,
		})
	}

	// Audio: ADTS frames, timed from the first audio packet's PTS.
	a0 := Lines(Run(t, ctx, ffprobe, "-v", "error", "-select_streams", "a:0",
		"-show_entries", "packet=pts", "-read_intervals", "%+#1", "-of", "csv=p=0", src))
	if len(a0) == 0 {
		t.Fatal("ffprobe found no audio packet")
	}
	aStart, err := strconv.ParseInt(strings.TrimSuffix(a0[0], ","), 10, 64)
	if err != nil {
		t.Fatalf("audio start %q", a0)
	}
	m.Audio, m.AudioAUs = readADTS(t, aFile, tick(aStart))
	return m
}

// readADTS reads an ADTS file into its configuration and frames, the
// first at start.
func readADTS(t testing.TB, file string, start time.Duration) (media.AudioConfig, []media.AccessUnit) {
	t.Helper()
	araw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var adts mpeg4audio.ADTSPackets
	if err := adts.Unmarshal(araw); err != nil {
		t.Fatal(err)
	}
	asc, err := (&mpeg4audio.AudioSpecificConfig{
		Type: adts[0].Type, SampleRate: adts[0].SampleRate, ChannelConfig: adts[0].ChannelConfig,
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfg := media.AudioConfig{Codec: media.AAC, ASC: asc, SampleRate: adts[0].SampleRate, Channels: int(adts[0].ChannelConfig)}
	aus := make([]media.AccessUnit, 0, len(adts))
	for n, pkt := range adts {
		d := start + time.Duration(n)*1024*time.Second/time.Duration(pkt.SampleRate)
		aus = append(aus, media.AccessUnit{Kind: media.Audio, DTS: d, PTS: d, Key: true, Frame: pkt.AU})
	}
	return cfg, aus
}

// encodeAV1TestMedia encodes with SVT-AV1 in its low-delay structure (what
// OBS's live AV1 encoders send: no reordering, PTS = DTS) straight to IVF,
// and the tone to ADTS; both start at 0. Ticks are the frames' times.
func encodeAV1TestMedia(t testing.TB, ctx context.Context, ffmpeg, dir, size string, seconds int) TestMedia {
	t.Helper()
	vFile, aFile := filepath.Join(dir, "v.ivf"), filepath.Join(dir, "a.aac")
	// -t on each input: an output's -t would bound only the first file.
	secs := strconv.Itoa(seconds)
	Run(t, ctx, ffmpeg, "-v", "error", "-nostdin",
		"-t", secs, "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-t", secs, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-svtav1-params", "pred-struct=1",
		"-pix_fmt", "yuv420p", "-f", "ivf", vFile,
		"-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-f", "adts", aFile)
	raw, err := os.ReadFile(vFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ivf.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if f.TimebaseNum == 0 || f.TimebaseDen == 0 {
		t.Fatalf("IVF timebase %d/%d", f.TimebaseNum, f.TimebaseDen)
	}
	m := TestMedia{Video: media.VideoConfig{Codec: media.AV1}}
	for i, fr := range f.Frames {
		obus, err := av1.Split(nil, fr.Data)
		if err != nil {
			t.Fatalf("TU %d: %v", i, err)
		}
		if i == 0 {
			if m.Video.SeqHeader = av1.SequenceHeader(obus); m.Video.SeqHeader == nil {
				t.Fatal("no sequence header in the first TU")
			}
		}
		tk := int64(fr.PTS) * 90000 * int64(f.TimebaseNum) / int64(f.TimebaseDen)
		d := time.Duration(tk) * time.Second / 90000
		m.Ticks = append(m.Ticks, Ticks{tk, tk})
		m.VideoAUs = append(m.VideoAUs, media.AccessUnit{Kind: media.Video, DTS: d, PTS: d, Key: av1.IsKey(obus, false), NALUs: obus})
	}
	m.Audio, m.AudioAUs = readADTS(t, aFile, 0)
	return m
}
