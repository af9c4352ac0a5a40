package flv

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/x265test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/hevc"
)

// x265Sets reads the VPS, SPS and PPS of a real libx265 stream from
// media/hevc's testdata.
func x265Sets(t testing.TB, file string) (vps, sps, pps []byte) {
	t.Helper()
	v := x265test.Config(t, file)
	return v.VPS, v.SPS, v.PPS
}

// exVideo builds an enhanced RTMP video tag: frame type, packet type,
// FourCC, and the body after them.
func exVideo(frameType, pktType byte, fourcc string, body ...[]byte) []byte {
	b := append([]byte{0x80 | frameType<<4 | pktType}, fourcc...)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

func hvcC(t testing.TB, vps, sps, pps []byte) []byte {
	t.Helper()
	ptl, err := hevc.PTLFromSPS(sps)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := hevc.DecoderConfig{PTL: ptl, VPS: [][]byte{vps}, SPS: [][]byte{sps}, PPS: [][]byte{pps}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// Slice NAL units: only their type matters to the converter.
var (
	hevcIDR   = []byte{hevc.NALUTypeIDRWRADL << 1, 1, 0xaf, 0x01}
	hevcCRA   = []byte{hevc.NALUTypeCRA << 1, 1, 0xaf, 0x02}
	hevcTrail = []byte{1 << 1, 1, 0xd0, 0x03} // TRAIL_R
	hevcSEI   = []byte{hevc.NALUTypeSEIPrefix << 1, 1, 5, 0}
)

func TestConverterHEVC(t *testing.T) {
	vps, sps, pps := x265Sets(t, "x265.hevc")
	c, s, _ := newTestConverter()
	steps := []struct {
		ts   uint32
		body []byte
	}{
		{0, exVideo(FrameInter, exCodedFramesX, "hvc1", avcc(hevcTrail))}, // before the header: dropped
		{0, exVideo(FrameKey, exSequenceStart, "hvc1", hvcC(t, vps, sps, pps))},
		{0, exVideo(FrameKey, exSequenceStart, "hvc1", hvcC(t, vps, sps, pps))},            // repeated: nothing new
		{0, exVideo(FrameInter, exCodedFrames, "hvc1", []byte{0, 0, 33}, avcc(hevcTrail))}, // before a keyframe: dropped
		{33, exVideo(FrameKey, exCodedFrames, "hvc1", []byte{0, 0, 66}, avcc(hevcSEI, hevcIDR))},
		{67, exVideo(FrameInter, exCodedFrames, "hvc1", []byte{0, 0, 100}, avcc(hevcTrail))},
		{100, exVideo(FrameInter, exCodedFramesX, "hvc1", avcc(hevcTrail))},
		{133, exVideo(FrameKey, exCodedFramesX, "hvc1", avcc(hevcCRA))},
		{133, exVideo(FrameCommand, exMetadata, "hvc1", []byte{2, 0, 0})}, // HDR metadata: ignored
	}
	for i, st := range steps {
		if err := c.Video(st.ts, st.body); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if len(s.vcfgs) != 1 {
		t.Fatalf("%d video configs, want 1", len(s.vcfgs))
	}
	if v := s.vcfgs[0]; v.Codec != media.H265 || !bytes.Equal(v.VPS, vps) || !bytes.Equal(v.SPS, sps) || !bytes.Equal(v.PPS, pps) {
		t.Fatalf("config %+v", v)
	}
	v := s.kind(media.Video)
	type want struct {
		dts, pts int
		key      bool
	}
	wants := []want{{0, 66, true}, {34, 134, false}, {67, 67, false}, {100, 100, true}}
	if len(v) != len(wants) {
		t.Fatalf("%d AUs, want %d: %+v", len(v), len(wants), v)
	}
	for i, w := range wants {
		if v[i].DTS != ms*time.Duration(w.dts) || v[i].PTS != ms*time.Duration(w.pts) || v[i].Key != w.key {
			t.Fatalf("AU %d: dts %v pts %v key %v, want %+v", i, v[i].DTS, v[i].PTS, v[i].Key, w)
		}
	}
	if st := c.Stats(); st.DroppedVideo != 2 || st.Keyframes != 2 || st.VideoConfigs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestConverterInbandParameterSets: a keyframe whose in-band parameter sets
// differ from the sequence header's becomes a new configuration before it
// (the packager starts a new epoch there); the same sets again, or sets on
// an inter frame, change nothing; sets that do not parse are ignored.
// Before, the packager dropped in-band sets from the samples and kept the
// old ones in the init: the new pictures did not decode.
func TestConverterInbandParameterSets(t *testing.T) {
	vps, sps, pps := x265Sets(t, "x265.hevc")
	vps2, sps2, pps2 := x265Sets(t, "x265-128x72.hevc")
	sps264b := mustHex("6742c00cd901419f9f011000000300100000030320f142a480")
	pps264b := mustHex("68cb83cb20")
	tests := []struct {
		name   string
		header []byte
		frames [][]byte
		want   []media.VideoConfig
	}{
		{
			name:   "H.264",
			header: seqHeader(),
			frames: [][]byte{
				videoTag(1, 1, 0, avcc(testSPS, testPPS, idrNALU)),   // the same sets: no change
				videoTag(2, 1, 0, avcc(sps264b, pps264b, interNALU)), // not a keyframe: ignored
				videoTag(1, 1, 0, avcc(sps264b, pps264b, idrNALU)),   // new sets
				videoTag(1, 1, 0, avcc(sps264b, pps264b, idrNALU)),
				videoTag(1, 1, 0, avcc([]byte{0x67, 0xff}, idrNALU)), // unparseable SPS: ignored
			},
			want: []media.VideoConfig{{SPS: testSPS, PPS: testPPS}, {SPS: sps264b, PPS: pps264b}},
		},
		{
			name:   "H.265",
			header: exVideo(FrameKey, exSequenceStart, "hvc1", hvcC(t, vps, sps, pps)),
			frames: [][]byte{
				exVideo(FrameKey, exCodedFramesX, "hvc1", avcc(vps, sps, pps, hevcIDR)),
				exVideo(FrameKey, exCodedFramesX, "hvc1", avcc(vps2, sps2, pps2, hevcIDR)),
				exVideo(FrameInter, exCodedFramesX, "hvc1", avcc(hevcTrail)),
				exVideo(FrameKey, exCodedFramesX, "hvc1", avcc(pps, hevcCRA)), // only the PPS changes
			},
			want: []media.VideoConfig{
				{Codec: media.H265, VPS: vps, SPS: sps, PPS: pps},
				{Codec: media.H265, VPS: vps2, SPS: sps2, PPS: pps2},
				{Codec: media.H265, VPS: vps2, SPS: sps2, PPS: pps},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, lc := newTestConverter()
			if err := c.Video(0, tt.header); err != nil {
				t.Fatal(err)
			}
			for i, f := range tt.frames {
				n := len(s.aus)
				if err := c.Video(uint32(i*33), f); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if len(s.aus) != n+1 {
					t.Fatalf("frame %d not passed on", i)
				}
			}
			if len(s.vcfgs) != len(tt.want) {
				t.Fatalf("%d configs, want %d", len(s.vcfgs), len(tt.want))
			}
			for i, w := range tt.want {
				if !sameVideoConfig(s.vcfgs[i], w) {
					t.Fatalf("config %d: %+v, want %+v", i, s.vcfgs[i], w)
				}
			}
			if st := c.Stats(); st.InbandConfigs != uint64(len(tt.want)-1) {
				t.Fatalf("stats %+v", st)
			}
			if tt.name == "H.264" && lc.count("unusable in-band parameter sets") != 1 {
				t.Fatal("the unparseable SPS was not logged once")
			}
		})
	}
}

func (s *recSink) Unsupported(kind media.Kind, codec string) {
	s.unsupported = append(s.unsupported, kind.String()+" "+codec)
}

// TestConverterDropsUnsupportedVideo: with DropUnsupported a VP9
// publish keeps its audio, the video is dropped and reported once.
func TestConverterDropsUnsupportedVideo(t *testing.T) {
	s := &recSink{}
	lc := &logCounter{}
	c := NewConverter(Config{Sink: s, Logger: slog.New(lc), DropUnsupported: true})
	if err := c.Audio(0, aacHeader()); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		ts := uint32(i * 21)
		if err := c.Video(ts, exVideo(FrameKey, exSequenceStart, "vp09", []byte{1, 0, 0, 0})); err != nil {
			t.Fatal(err)
		}
		if err := c.Video(ts, exVideo(FrameInter, exCodedFrames, "vp09", []byte{0x12, 0})); err != nil {
			t.Fatal(err)
		}
		if err := c.Audio(ts, aacFrame(byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.kind(media.Audio)) != 10 || len(s.kind(media.Video)) != 0 || len(s.vcfgs) != 0 {
		t.Fatalf("audio %d video %d", len(s.kind(media.Audio)), len(s.kind(media.Video)))
	}
	if len(s.unsupported) != 1 || !strings.Contains(s.unsupported[0], "VP9") || lc.count("unsupported video codec") != 1 {
		t.Fatalf("reported %q, logged %d times", s.unsupported, lc.count("unsupported video codec"))
	}
	if st := c.Stats(); st.UnsupportedVideo != 20 {
		t.Fatalf("stats %+v", st)
	}
	// Unsupported audio too ends the publish: there is nothing to play.
	err := c.Audio(210, []byte{0x2f, 0xff, 0xfb})
	if !errors.Is(err, ErrNothingPlayable) || !errors.Is(err, ErrUnsupportedCodec) ||
		!strings.Contains(err.Error(), "VP9") || !strings.Contains(err.Error(), "MP3") {
		t.Fatalf("MP3 after VP9: %v, want nothing playable naming both codecs", err)
	}
}

// FuzzHEVCVideo feeds enhanced RTMP hvc1 messages built around fuzzed
// bytes (as a sequence start, as coded frames with and without a
// composition time) to a converter that already has a configuration.
func FuzzHEVCVideo(f *testing.F) {
	vps, sps, pps := x265Sets(f, "x265.hevc")
	vps2, sps2, pps2 := x265Sets(f, "x265-128x72.hevc")
	f.Add(uint32(0), byte(exSequenceStart), hvcC(f, vps2, sps2, pps2))
	f.Add(uint32(33), byte(exCodedFrames), append([]byte{0, 0, 33}, avcc(hevcIDR)...))
	f.Add(uint32(33), byte(exCodedFramesX), avcc(vps2, sps2, pps2, hevcIDR))
	f.Add(uint32(33), byte(exCodedFramesX), avcc([]byte{0x42, 0x01, 0x01}, hevcCRA))
	f.Fuzz(func(t *testing.T, ts uint32, pkt byte, body []byte) {
		c := NewConverter(Config{Sink: &checkSink{t: t, last: map[media.Kind]time.Duration{}}, DropUnsupported: true})
		if err := c.Video(0, exVideo(FrameKey, exSequenceStart, "hvc1", hvcC(t, vps, sps, pps))); err != nil {
			t.Fatal(err)
		}
		_ = c.Video(0, exVideo(FrameKey, exCodedFramesX, "hvc1", avcc(hevcIDR)))
		for i, ft := range []byte{FrameKey, FrameInter, FrameKey} {
			_ = c.Video(ts+uint32(i*33), exVideo(ft, pkt&0x0f, "hvc1", body))
		}
		_ = c.Video(ts+100, body)
		_ = c.Video(ts+133, exVideo(FrameKey, exCodedFramesX, "hvc1", avcc(hevcIDR)))
	})
}

// TestConverterDropsUnsupportedAudio: with DropUnsupported, audio the
// packager cannot take (MP3, Opus over enhanced RTMP, AAC Main) is
// dropped and reported once, however many packets come, and the H.264
// video goes on as a video-only stream. It used to end the publish, and
// OBS reconnected in a loop.
func TestConverterDropsUnsupportedAudio(t *testing.T) {
	for _, tt := range []struct {
		name        string
		codec       string
		header, raw []byte // header nil: none
	}{
		{name: "MP3", codec: "MP3", raw: []byte{0x2f, 0xff, 0xfb, 0x90, 0x64}},
		{name: "MP3 8 kHz", codec: "MP3 8 kHz", raw: []byte{0xe2, 0xff, 0xf3}},
		{name: "enhanced Opus", codec: "Opus (enhanced RTMP)",
			header: append(append([]byte{0x90}, "Opus"...), "OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"...),
			raw:    append([]byte{0x91}, "Opus\xf8\xff\xfe"...)},
		{name: "AAC Main", codec: "AAC object type 1", header: []byte{0xaf, 0, 0x0a, 0x10}, raw: aacFrame(1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &recSink{}
			lc := &logCounter{}
			c := NewConverter(Config{Sink: s, Logger: slog.New(lc), DropUnsupported: true})
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(c.Video(0, seqHeader()))
			msgs := 0
			if tt.header != nil {
				must(c.Audio(0, tt.header))
				msgs++
			}
			const frames = 300 // 10 s of video, 14 s of audio packets
			for i := range frames {
				v := interFrame(0)
				if i%30 == 0 {
					v = idrFrame(0)
				}
				must(c.Video(uint32(i*33), v))
				for j := range 2 {
					must(c.Audio(uint32(i*33+j*16), tt.raw))
					msgs++
				}
			}
			if v, a := s.kind(media.Video), s.kind(media.Audio); len(v) != frames || len(a) != 0 || len(s.acfgs) != 0 {
				t.Fatalf("%d video AUs, %d audio frames, %d audio configs; want %d, 0, 0", len(v), len(a), len(s.acfgs), frames)
			}
			if len(s.unsupported) != 1 || s.unsupported[0] != "audio "+tt.codec {
				t.Fatalf("reported %q, want once %q", s.unsupported, "audio "+tt.codec)
			}
			if n := lc.count("rtmp: unsupported audio codec, audio dropped; video continues"); n != 1 {
				t.Fatalf("logged %d times", n)
			}
			if st := c.Stats(); st.UnsupportedAudio != uint64(msgs) || st.DroppedAudio != 0 {
				t.Fatalf("stats %+v, want %d unsupported audio messages", st, msgs)
			}
		})
	}
}

// TestConverterNothingPlayable: with DropUnsupported, a publish left with
// no track to carry still fails, naming the codecs: both tracks refused
// (at once), or one refused and no other track configured within
// NothingPlayableWait of its media (an audio-only MP3 publish).
func TestConverterNothingPlayable(t *testing.T) {
	mp3 := []byte{0x2f, 0xff, 0xfb, 0x90}
	vp9 := exVideo(FrameKey, exSequenceStart, "vp09", []byte{1, 0, 0, 0})

	c := NewConverter(Config{Sink: &recSink{}, DropUnsupported: true})
	if err := c.Audio(0, mp3); err != nil {
		t.Fatal(err)
	}
	err := c.Video(0, vp9)
	if !errors.Is(err, ErrNothingPlayable) || !errors.Is(err, ErrUnsupportedCodec) ||
		!strings.Contains(err.Error(), "video codec VP9") || !strings.Contains(err.Error(), "audio codec MP3") {
		t.Fatalf("VP9 after MP3: %v", err)
	}

	c = NewConverter(Config{Sink: &recSink{}, DropUnsupported: true})
	wait := uint32(NothingPlayableWait / time.Millisecond)
	for ts := uint32(1000); ts < 1000+wait; ts += 26 {
		if err := c.Audio(ts, mp3); err != nil {
			t.Fatalf("at %d ms: %v", ts, err)
		}
	}
	err = c.Audio(1000+wait, mp3)
	if !errors.Is(err, ErrNothingPlayable) || !strings.Contains(err.Error(), "MP3") || !strings.Contains(err.Error(), "no video") {
		t.Fatalf("MP3 only, after %v: %v", NothingPlayableWait, err)
	}
}
