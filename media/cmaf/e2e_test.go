package cmaf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// TestFFprobe packages real libx264 output (with B-frames) and AAC from
// ffmpeg, writes init+chunks as one fragmented MP4 and has ffprobe decode
// it: every frame must be there, with the source's presentation times.
func TestFFprobe(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.ts")
	e2e.Run(t, ctx, ffmpeg, "-v", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "96k", "-f", "mpegts", src)
	vFile, aFile := filepath.Join(dir, "v.h264"), filepath.Join(dir, "a.aac")
	e2e.Run(t, ctx, ffmpeg, "-v", "error", "-nostdin", "-i", src,
		"-map", "0:v", "-c", "copy", "-bsf:v", "h264_metadata=aud=insert", "-f", "h264", vFile,
		"-map", "0:a", "-c", "copy", "-f", "adts", aFile)

	// Video: split the Annex-B stream into AUs at the delimiters; the
	// demuxer gives each packet's PTS/DTS in the same (decode) order.
	type ts struct{ pts, dts int64 }
	var vts []ts
	for _, line := range e2e.Lines(e2e.Run(t, ctx, ffprobe, "-v", "error",
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
		vts = append(vts, ts{pts, dts})
	}
	raw, err := os.ReadFile(vFile)
	if err != nil {
		t.Fatal(err)
	}
	var aus [][][]byte
	for _, n := range e2e.SplitAnnexB(raw) {
		if h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter || len(aus) == 0 {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], n)
	}
	if len(aus) != len(vts) || len(aus) != 90 {
		t.Fatalf("%d AUs, %d timestamps", len(aus), len(vts))
	}
	var vcfg media.VideoConfig
	for _, n := range aus[0] {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			vcfg.SPS = n
		case h264.NALUTypePPS:
			vcfg.PPS = n
		}
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / 90000 }
	var video []fed
	for i, au := range aus {
		video = append(video, fed{au: media.AccessUnit{
			Kind: media.Video, DTS: tick(vts[i].dts), PTS: tick(vts[i].pts), Key: h264.IsRandomAccess(au), NALUs: au,
		}})
	}

	// Audio: ADTS frames, timed from the first audio packet's PTS.
	araw, err := os.ReadFile(aFile)
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
	a0 := strings.TrimSpace(string(e2e.Run(t, ctx, ffprobe, "-v", "error", "-select_streams", "a:0",
		"-show_entries", "packet=pts", "-read_intervals", "%+#1", "-of", "csv=p=0", src)))
	aStart, err := strconv.ParseInt(strings.TrimSuffix(e2e.Lines([]byte(a0))[0], ","), 10, 64)
	if err != nil {
		t.Fatalf("audio start %q", a0)
	}
	var audio []fed
	for n, pkt := range adts {
		d := tick(aStart) + time.Duration(n)*1024*time.Second/time.Duration(pkt.SampleRate)
		audio = append(audio, fed{au: media.AccessUnit{Kind: media.Audio, DTS: d, PTS: d, Key: true, Frame: pkt.AU}})
	}

	p, r := newPackager(t, cmaf.Config{})
	configure(t, p, &vcfg, &media.AudioConfig{Codec: media.AAC, ASC: asc, SampleRate: adts[0].SampleRate, Channels: 1})
	feedAll(t, p, interleave(video, audio, 0))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	eps := parseOutput(t, r)
	if len(eps) != 1 {
		t.Fatalf("%d epochs", len(eps))
	}
	wantAudio := 0
	for _, a := range audio {
		if a.au.DTS >= video[0].au.DTS {
			wantAudio++
		}
	}
	var file bytes.Buffer
	file.Write(eps[0].init.Data)
	for _, c := range eps[0].chunks {
		file.Write(c.Data)
	}
	out := filepath.Join(dir, "out.mp4")
	if err := os.WriteFile(out, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var probe struct {
		Streams []struct {
			CodecType    string `json:"codec_type"`
			CodecName    string `json:"codec_name"`
			NbReadFrames string `json:"nb_read_frames"`
			Width        int    `json:"width"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(e2e.Run(t, ctx, ffprobe, "-v", "error", "-count_frames", "-show_streams", "-of", "json", out), &probe); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range probe.Streams {
		got[s.CodecType+"/"+s.CodecName] = s.NbReadFrames
	}
	if got["video/h264"] != strconv.Itoa(len(video)) || got["audio/aac"] != strconv.Itoa(wantAudio) {
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
		if outPTS[i]-origin != vts[i].pts-vts[0].dts {
			t.Fatalf("packet %d: pts %d (rel %d), source rel %d", i, outPTS[i], outPTS[i]-origin, vts[i].pts-vts[0].dts)
		}
	}
	// And ffmpeg decodes it without complaint.
	if msg, err := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-nostdin", "-i", out, "-f", "null", "-").CombinedOutput(); err != nil || len(msg) != 0 {
		t.Fatalf("ffmpeg decode: %v %s", err, msg)
	}
	t.Logf("%d chunks, %d video, %d audio frames decoded by ffprobe; MIME %s", len(eps[0].chunks), len(video), wantAudio, eps[0].init.MIME())
}
