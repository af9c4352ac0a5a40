package flv

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/media"
)

// Parameter sets of a real x264 main-profile 640x360 stream.
var (
	testSPS = mustHex("674d401eeca05017fcb80880000003008000001e078b16cb")
	testPPS = mustHex("68ebe3cb20")
	// AAC-LC, 48 kHz, stereo.
	testASC = []byte{0x11, 0x90}
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func avcRecord(sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1, byte(len(sps) >> 8), byte(len(sps))}
	b = append(b, sps...)
	b = append(b, 1, byte(len(pps)>>8), byte(len(pps)))
	return append(b, pps...)
}

func putInt24(b []byte, v int32) {
	var tmp [4]byte
	binary.BigEndian.PutUint32(tmp[:], uint32(v))
	copy(b, tmp[1:])
}

// videoTag builds a legacy AVC video tag body.
func videoTag(frameType, pktType byte, cts int32, payload []byte) []byte {
	b := []byte{frameType<<4 | 7, pktType, 0, 0, 0}
	putInt24(b[2:], cts)
	return append(b, payload...)
}

func seqHeader() []byte { return videoTag(1, 0, 0, avcRecord(testSPS, testPPS)) }

// avcc joins NAL units with 4-byte length prefixes.
func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

var (
	idrNALU   = []byte{0x65, 0x88, 0x84, 0x00, 0x10}
	interNALU = []byte{0x41, 0x9a, 0x22}
	seiNALU   = []byte{0x06, 0x05, 0x01, 0xff}
)

func idrFrame(cts int32) []byte   { return videoTag(1, 1, cts, avcc(seiNALU, idrNALU)) }
func interFrame(cts int32) []byte { return videoTag(2, 1, cts, avcc(interNALU)) }
func aacHeader() []byte           { return append([]byte{0xaf, 0}, testASC...) }
func aacFrame(n byte) []byte      { return []byte{0xaf, 1, 0x21, n, 0x42} }

// recSink records every call.
type recSink struct {
	mu      sync.Mutex
	vcfgs   []media.VideoConfig
	acfgs   []media.AudioConfig
	aus     []media.AccessUnit
	discont []time.Duration
	meta    []Metadata
	err     error // returned by WriteAU when set

	unsupported []string
}

func (s *recSink) VideoConfig(c media.VideoConfig) error {
	s.vcfgs = append(s.vcfgs, c)
	return nil
}
func (s *recSink) AudioConfig(c media.AudioConfig) error {
	s.acfgs = append(s.acfgs, c)
	return nil
}
func (s *recSink) WriteAU(au media.AccessUnit) error {
	if s.err != nil {
		return s.err
	}
	s.aus = append(s.aus, au)
	return nil
}
func (s *recSink) Discontinuity(at time.Duration) error {
	s.discont = append(s.discont, at)
	return nil
}
func (s *recSink) Metadata(m Metadata) error {
	s.meta = append(s.meta, m)
	return nil
}

func (s *recSink) kind(k media.Kind) []media.AccessUnit {
	var out []media.AccessUnit
	for _, au := range s.aus {
		if au.Kind == k {
			out = append(out, au)
		}
	}
	return out
}

// logCounter counts log records per message.
type logCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msgs == nil {
		l.msgs = map[string]int{}
	}
	l.msgs[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for m, c := range l.msgs {
		if strings.Contains(m, sub) {
			n += c
		}
	}
	return n
}

func newTestConverter() (*Converter, *recSink, *logCounter) {
	s := &recSink{}
	lc := &logCounter{}
	return NewConverter(Config{Sink: s, Logger: slog.New(lc)}), s, lc
}

const ms = time.Millisecond

func TestParseVideoTag(t *testing.T) {
	ex := func(b0 byte, fourcc string, rest ...byte) []byte {
		return append(append([]byte{b0}, fourcc...), rest...)
	}
	tests := []struct {
		name      string
		in        []byte
		want      VideoTag
		wantErr   bool
		unsupport string // substring of the codec name when unsupported
	}{
		{name: "sequence header", in: videoTag(1, 0, 0, []byte{1, 2}), want: VideoTag{FrameType: 1, CodecID: 7, PacketType: 0, Data: []byte{1, 2}}},
		{name: "NALU with CTS 67", in: videoTag(2, 1, 67, []byte{9}), want: VideoTag{FrameType: 2, CodecID: 7, PacketType: 1, CTS: 67, Data: []byte{9}}},
		{name: "negative CTS -1", in: []byte{0x27, 1, 0xff, 0xff, 0xff}, want: VideoTag{FrameType: 2, CodecID: 7, PacketType: 1, CTS: -1, Data: []byte{}}},
		{name: "most negative CTS", in: []byte{0x27, 1, 0x80, 0, 0}, want: VideoTag{FrameType: 2, CodecID: 7, PacketType: 1, CTS: -8388608, Data: []byte{}}},
		{name: "largest CTS", in: []byte{0x27, 1, 0x7f, 0xff, 0xff}, want: VideoTag{FrameType: 2, CodecID: 7, PacketType: 1, CTS: 8388607, Data: []byte{}}},
		{name: "end of sequence", in: []byte{0x17, 2, 0, 0, 0}, want: VideoTag{FrameType: 1, CodecID: 7, PacketType: 2, Data: []byte{}}},
		{name: "command frame", in: []byte{0x57, 0}, want: VideoTag{FrameType: 5, CodecID: 7}},
		{name: "empty", in: nil, wantErr: true},
		{name: "AVC header short", in: []byte{0x17, 1, 0, 0}, wantErr: true},
		{name: "frame type 0", in: []byte{0x07, 1, 0, 0, 0}, wantErr: true},
		{name: "frame type 6", in: []byte{0x67, 1, 0, 0, 0}, wantErr: true},
		{name: "AVCPacketType 3", in: []byte{0x17, 3, 0, 0, 0}, wantErr: true},
		{name: "Sorenson", in: []byte{0x22, 0}, unsupport: "H.263"},
		{name: "VP6", in: []byte{0x14, 0}, unsupport: "VP6"},
		{name: "legacy HEVC id 12", in: []byte{0x1c, 0, 0, 0, 0}, want: VideoTag{FrameType: 1, CodecID: 12, Codec: media.H265, PacketType: 0, Data: []byte{}}},
		{name: "enhanced HEVC seq start", in: ex(0x90, "hvc1", 1, 2), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "hvc1", Codec: media.H265, PacketType: 0, Data: []byte{1, 2}}},
		{name: "enhanced HEVC coded frames", in: ex(0xa1, "hvc1", 0xff, 0xff, 0xdf, 7), want: VideoTag{FrameType: 2, Enhanced: true, FourCC: "hvc1", Codec: media.H265, PacketType: 1, CTS: -33, Data: []byte{7}}},
		{name: "enhanced HEVC coded frames X", in: ex(0x93, "hvc1", 7, 8), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "hvc1", Codec: media.H265, PacketType: 1, Data: []byte{7, 8}}},
		{name: "enhanced HEVC MPEG2-TS sequence start", in: ex(0x95, "hvc1", 1), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "hvc1", Codec: media.H265, PacketType: AVCIgnore}},
		{name: "enhanced AV1 MPEG2-TS sequence start", in: ex(0x95, "av01", 1), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "av01", Codec: media.AV1, PacketType: AVCIgnore}},
		{name: "enhanced AV1 seq start", in: ex(0x90, "av01", 0x81, 0, 0x0c, 0), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "av01", Codec: media.AV1, PacketType: 0, Data: []byte{0x81, 0, 0x0c, 0}}},
		// AV1 coded frames have no composition time: the body is OBUs.
		{name: "enhanced AV1 coded frames", in: ex(0x91, "av01", 0x12, 0), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "av01", Codec: media.AV1, PacketType: 1, Data: []byte{0x12, 0}}},
		{name: "legacy AV1 id 13", in: []byte{0x1d, 0, 0, 0, 0}, unsupport: "AV1 (FLV codec id 13)"},
		{name: "enhanced VP9", in: ex(0x91, "vp09"), unsupport: "VP9"},
		{name: "enhanced junk fourcc", in: ex(0x91, "\x00\x01ab"), unsupport: `"??ab"`},
		{name: "enhanced multitrack", in: []byte{0x96, 0, 0, 0, 0, 0}, unsupport: "multitrack"},
		{name: "enhanced short", in: []byte{0x90, 'a', 'v'}, wantErr: true},
		{name: "enhanced avc1 seq start", in: ex(0x90, "avc1", 1, 2), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "avc1", PacketType: 0, Data: []byte{1, 2}}},
		{name: "enhanced avc1 coded frames", in: ex(0xa1, "avc1", 0, 0, 40, 7), want: VideoTag{FrameType: 2, Enhanced: true, FourCC: "avc1", PacketType: 1, CTS: 40, Data: []byte{7}}},
		{name: "enhanced avc1 coded frames X", in: ex(0xa3, "avc1", 7), want: VideoTag{FrameType: 2, Enhanced: true, FourCC: "avc1", PacketType: 1, Data: []byte{7}}},
		{name: "enhanced avc1 coded frames short", in: ex(0xa1, "avc1", 0), wantErr: true},
		{name: "enhanced avc1 sequence end", in: ex(0x92, "avc1"), want: VideoTag{FrameType: 1, Enhanced: true, FourCC: "avc1", PacketType: 2}},
		{name: "enhanced avc1 metadata", in: ex(0xd4, "avc1", 2), want: VideoTag{FrameType: 5, Enhanced: true, FourCC: "avc1", PacketType: AVCIgnore}},
		{name: "enhanced avc1 bad packet type", in: ex(0x9f, "avc1"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVideoTag(tt.in)
			if tt.unsupport != "" {
				var ue *UnsupportedCodecError
				if !errors.Is(err, ErrUnsupportedCodec) || !errors.As(err, &ue) || ue.Kind != media.Video || !strings.Contains(ue.Codec, tt.unsupport) {
					t.Fatalf("err = %v, want unsupported video codec naming %q", err, tt.unsupport)
				}
				return
			}
			if tt.wantErr {
				if err == nil || errors.Is(err, ErrUnsupportedCodec) {
					t.Fatalf("err = %v, want a parse error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.FrameType != tt.want.FrameType || got.Enhanced != tt.want.Enhanced || got.CodecID != tt.want.CodecID ||
				got.FourCC != tt.want.FourCC || got.PacketType != tt.want.PacketType || got.CTS != tt.want.CTS ||
				(tt.want.Codec != 0 && got.Codec != tt.want.Codec) ||
				!bytes.Equal(got.Data, tt.want.Data) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseAudioTag(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		want      AudioTag
		wantErr   bool
		unsupport string
	}{
		{name: "AAC header", in: []byte{0xaf, 0, 0x11, 0x90}, want: AudioTag{SoundFormat: 10, SoundRate: 3, SoundSize: 1, SoundType: 1, AACPacketType: 0, Data: []byte{0x11, 0x90}}},
		{name: "AAC raw", in: []byte{0xae, 1, 7}, want: AudioTag{SoundFormat: 10, SoundRate: 3, SoundSize: 1, SoundType: 0, AACPacketType: 1, Data: []byte{7}}},
		{name: "AAC short", in: []byte{0xaf}, wantErr: true},
		{name: "AACPacketType 2", in: []byte{0xaf, 2}, wantErr: true},
		{name: "empty", in: nil, wantErr: true},
		{name: "MP3", in: []byte{0x2f, 0xff}, unsupport: "MP3"},
		{name: "MP3 8k", in: []byte{0xef}, unsupport: "MP3 8 kHz"},
		{name: "Speex", in: []byte{0xb6}, unsupport: "Speex"},
		{name: "Nellymoser", in: []byte{0x6e}, unsupport: "Nellymoser"},
		{name: "G.711", in: []byte{0x72}, unsupport: "G.711"},
		{name: "PCM", in: []byte{0x3f}, unsupport: "PCM"},
		{name: "enhanced Opus", in: append([]byte{0x90}, "Opus"...), unsupport: "Opus"},
		{name: "enhanced multitrack", in: []byte{0x95, 0}, unsupport: "multitrack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAudioTag(tt.in)
			if tt.unsupport != "" {
				var ue *UnsupportedCodecError
				if !errors.As(err, &ue) || !errors.Is(err, ErrUnsupportedCodec) || ue.Kind != media.Audio || !strings.Contains(ue.Codec, tt.unsupport) {
					t.Fatalf("err = %v, want unsupported audio codec naming %q", err, tt.unsupport)
				}
				if !strings.Contains(err.Error(), tt.unsupport) {
					t.Fatalf("error text %q does not name the codec", err)
				}
				return
			}
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.SoundFormat != tt.want.SoundFormat || got.SoundRate != tt.want.SoundRate || got.SoundSize != tt.want.SoundSize ||
				got.SoundType != tt.want.SoundType || got.AACPacketType != tt.want.AACPacketType || !bytes.Equal(got.Data, tt.want.Data) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConverterBasicAV(t *testing.T) {
	c, s, _ := newTestConverter()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Video(0, seqHeader()))
	must(c.Audio(0, aacHeader()))
	// Decode order I P B B with CTS as x264 -bf 2 writes them.
	must(c.Video(0, idrFrame(67)))
	must(c.Audio(0, aacFrame(0)))
	must(c.Audio(21, aacFrame(1)))
	must(c.Video(33, interFrame(100)))
	must(c.Audio(43, aacFrame(2)))
	must(c.Video(67, interFrame(0)))
	must(c.Video(100, interFrame(0)))

	if len(s.vcfgs) != 1 || !bytes.Equal(s.vcfgs[0].SPS, testSPS) || !bytes.Equal(s.vcfgs[0].PPS, testPPS) {
		t.Fatalf("video configs: %+v", s.vcfgs)
	}
	if len(s.acfgs) != 1 || s.acfgs[0].Codec != media.AAC || s.acfgs[0].SampleRate != 48000 || s.acfgs[0].Channels != 2 || !bytes.Equal(s.acfgs[0].ASC, testASC) {
		t.Fatalf("audio configs: %+v", s.acfgs)
	}
	v := s.kind(media.Video)
	wantV := []struct {
		dts, pts time.Duration
		key      bool
	}{{0, 67 * ms, true}, {33 * ms, 133 * ms, false}, {67 * ms, 67 * ms, false}, {100 * ms, 100 * ms, false}}
	if len(v) != len(wantV) {
		t.Fatalf("%d video AUs, want %d", len(v), len(wantV))
	}
	for i, w := range wantV {
		if v[i].DTS != w.dts || v[i].PTS != w.pts || v[i].Key != w.key {
			t.Errorf("video %d: dts %v pts %v key %v; want %v %v %v", i, v[i].DTS, v[i].PTS, v[i].Key, w.dts, w.pts, w.key)
		}
	}
	if len(v[0].NALUs) != 2 || !bytes.Equal(v[0].NALUs[0], seiNALU) || !bytes.Equal(v[0].NALUs[1], idrNALU) || v[0].Frame != nil {
		t.Fatalf("IDR NALUs: %x", v[0].NALUs)
	}
	a := s.kind(media.Audio)
	if len(a) != 3 || a[0].DTS != 0 || a[1].DTS != aacAt(1) || a[2].DTS != aacAt(2) || !a[2].Key || a[2].PTS != a[2].DTS {
		t.Fatalf("audio: %+v", a)
	}
	if !bytes.Equal(a[1].Frame, []byte{0x21, 1, 0x42}) || a[1].NALUs != nil {
		t.Fatalf("audio frame %x", a[1].Frame)
	}
	if st := c.Stats(); st.VideoAUs != 4 || st.AudioFrames != 3 || st.Keyframes != 1 || st.Discontinuities != 0 || st.Clamped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConverterDropsBeforeSequenceHeader(t *testing.T) {
	c, s, lc := newTestConverter()
	for i := 0; i < 5; i++ {
		if err := c.Video(uint32(i*33), idrFrame(0)); err != nil {
			t.Fatal(err)
		}
		if err := c.Audio(uint32(i*21), aacFrame(byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.aus) != 0 || len(s.vcfgs) != 0 {
		t.Fatalf("frames before the header reached the sink: %d AUs", len(s.aus))
	}
	if n := lc.count("before the AVC sequence header"); n != 1 {
		t.Fatalf("%d log lines for dropped video, want 1", n)
	}
	if n := lc.count("before the AAC sequence header"); n != 1 {
		t.Fatalf("%d log lines for dropped audio, want 1", n)
	}
	if st := c.Stats(); st.DroppedVideo != 5 || st.DroppedAudio != 5 {
		t.Fatalf("stats %+v", st)
	}
	// Once the headers arrive, media flows, and the timeline starts at the
	// first delivered unit.
	if err := c.Video(200, seqHeader()); err != nil {
		t.Fatal(err)
	}
	if err := c.Video(200, idrFrame(0)); err != nil {
		t.Fatal(err)
	}
	if len(s.aus) != 1 || s.aus[0].DTS != 0 || !s.aus[0].Key {
		t.Fatalf("after header: %+v", s.aus)
	}
}

func TestConverterWaitsForKeyframe(t *testing.T) {
	c, s, lc := newTestConverter()
	_ = c.Video(0, seqHeader())
	_ = c.Video(0, interFrame(0))
	_ = c.Video(33, interFrame(0))
	_ = c.Video(67, idrFrame(0))
	_ = c.Video(100, interFrame(0))
	v := s.kind(media.Video)
	if len(v) != 2 || !v[0].Key || v[0].DTS != 0 || v[1].DTS != 33*ms {
		t.Fatalf("video: %+v", v)
	}
	if lc.count("waiting for an IDR") != 1 {
		t.Fatal("want one log line while waiting for a keyframe")
	}
	// End of sequence: the next inter frame is dropped, the next IDR flows.
	_ = c.Video(133, []byte{0x17, 2, 0, 0, 0})
	_ = c.Video(133, interFrame(0))
	_ = c.Video(167, idrFrame(0))
	v = s.kind(media.Video)
	if len(v) != 3 || !v[2].Key || v[2].DTS != 100*ms {
		t.Fatalf("after end of sequence: %+v", v)
	}
}

func TestConverterSequenceHeaderRepeatAndChange(t *testing.T) {
	c, s, _ := newTestConverter()
	_ = c.Video(0, seqHeader())
	_ = c.Video(0, idrFrame(0))
	_ = c.Video(33, seqHeader()) // identical repeat: not a new config
	_ = c.Video(33, interFrame(0))
	if len(s.vcfgs) != 1 || len(s.kind(media.Video)) != 2 {
		t.Fatalf("repeat header: %d configs, %d AUs", len(s.vcfgs), len(s.kind(media.Video)))
	}
	otherPPS := []byte{0x68, 0xee, 0x3c, 0x80}
	_ = c.Video(67, videoTag(1, 0, 0, avcRecord(testSPS, otherPPS)))
	_ = c.Video(67, interFrame(0)) // needs a keyframe after the change
	_ = c.Video(100, idrFrame(0))
	if len(s.vcfgs) != 2 || !bytes.Equal(s.vcfgs[1].PPS, otherPPS) {
		t.Fatalf("changed header: %+v", s.vcfgs)
	}
	if v := s.kind(media.Video); len(v) != 3 || !v[2].Key {
		t.Fatalf("after change: %+v", v)
	}
	// Same for audio.
	_ = c.Audio(0, aacHeader())
	_ = c.Audio(0, aacHeader())
	_ = c.Audio(0, []byte{0xaf, 0, 0x12, 0x10}) // 44.1 kHz stereo
	if len(s.acfgs) != 2 || s.acfgs[1].SampleRate != 44100 {
		t.Fatalf("audio configs: %+v", s.acfgs)
	}
}

func TestConverterSequenceHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		tag  []byte
	}{
		{"truncated record", videoTag(1, 0, 0, avcRecord(testSPS, testPPS)[:10])},
		{"no PPS", videoTag(1, 0, 0, []byte{1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x4d, 0x40, 0x1e, 0})},
		{"garbage SPS", videoTag(1, 0, 0, avcRecord([]byte{0x67, 0x4d, 0x40, 0x1e}, testPPS))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, _ := newTestConverter()
			if err := c.Video(0, tt.tag); err == nil {
				t.Fatal("no error")
			}
			if len(s.vcfgs) != 0 {
				t.Fatal("bad config reached the sink")
			}
		})
	}
	c, _, _ := newTestConverter()
	if err := c.Audio(0, []byte{0xaf, 0, 0x0a, 0x10}); !errors.Is(err, ErrUnsupportedCodec) { // AAC Main (object type 1)
		t.Fatalf("AAC Main: %v", err)
	}
	if err := c.Audio(0, []byte{0xaf, 0}); err == nil {
		t.Fatal("empty ASC accepted")
	}
}

func TestConverterMalformedFrame(t *testing.T) {
	c, s, _ := newTestConverter()
	_ = c.Video(0, seqHeader())
	bad := videoTag(1, 1, 0, []byte{0, 0, 0, 9, 0x65, 1})
	if err := c.Video(0, bad); err == nil {
		t.Fatal("overrunning NAL length accepted")
	}
	if len(s.aus) != 0 {
		t.Fatal("malformed frame reached the sink")
	}
	// An empty frame is not an error and produces nothing.
	if err := c.Video(0, videoTag(1, 1, 0, nil)); err != nil || len(s.aus) != 0 {
		t.Fatalf("empty frame: %v, %d AUs", err, len(s.aus))
	}
}

func TestConverterSinkErrorPropagates(t *testing.T) {
	c, s, _ := newTestConverter()
	_ = c.Video(0, seqHeader())
	s.err = errors.New("packager full")
	if err := c.Video(0, idrFrame(0)); err != s.err {
		t.Fatalf("err = %v", err)
	}
}

func TestConverterTimestamps(t *testing.T) {
	type ev struct {
		video bool
		ts    uint32
	}
	tests := []struct {
		name     string
		events   []ev
		wantV    []time.Duration
		wantA    []time.Duration
		discont  int
		clamped  uint64
		maxSkewA time.Duration // max |video - audio| at the end, if > 0
	}{
		{
			name:   "32-bit wrap-around",
			events: []ev{{true, math.MaxUint32 - 40}, {false, math.MaxUint32 - 30}, {true, math.MaxUint32 - 7}, {false, math.MaxUint32 - 9}, {true, 26}, {false, 12}},
			wantV:  []time.Duration{0, 33 * ms, 67 * ms},
			wantA:  []time.Duration{10 * ms, 10*ms + aacAt(1), 10*ms + aacAt(2)},
		},
		{
			name:   "interleave across tracks is fine",
			events: []ev{{false, 0}, {false, 21}, {false, 43}, {true, 0}, {false, 64}, {true, 33}, {true, 67}, {false, 85}},
			wantV:  []time.Duration{0, 33 * ms, 67 * ms},
			wantA:  []time.Duration{0, aacAt(1), aacAt(2), aacAt(3), aacAt(4)},
		},
		{
			name:    "encoder restart: backwards jump rebases both tracks",
			events:  []ev{{true, 5000}, {false, 5000}, {true, 5033}, {false, 5021}, {true, 0}, {false, 0}, {true, 33}, {false, 21}},
			wantV:   []time.Duration{0, 33 * ms, 66 * ms, 99 * ms},
			wantA:   []time.Duration{0, aacAt(1), 66 * ms, 66*ms + aacAt(1)},
			discont: 1,
		},
		{
			name:    "forward jump beyond MaxJump rebases",
			events:  []ev{{true, 1000}, {true, 1033}, {true, 60000}, {true, 60033}},
			wantV:   []time.Duration{0, 33 * ms, 66 * ms, 99 * ms},
			discont: 1,
		},
		{
			name:   "forward gap within MaxJump is kept",
			events: []ev{{true, 0}, {true, 33}, {true, 3033}},
			wantV:  []time.Duration{0, 33 * ms, 3033 * ms},
		},
		{
			name:   "one track silent for 7 s is not a jump",
			events: []ev{{true, 0}, {false, 0}, {true, 3000}, {true, 6000}, {true, 7000}, {false, 7010}},
			wantV:  []time.Duration{0, 3000 * ms, 6000 * ms, 7000 * ms},
			wantA:  []time.Duration{0, 7010 * ms},
		},
		{
			name:    "small step back is clamped",
			events:  []ev{{true, 100}, {true, 133}, {true, 120}, {true, 167}},
			wantV:   []time.Duration{0, 33 * ms, 34 * ms, 67 * ms},
			clamped: 1,
		},
		{
			name:    "equal video timestamps are made increasing",
			events:  []ev{{true, 0}, {true, 0}, {true, 33}},
			wantV:   []time.Duration{0, 1 * ms, 33 * ms},
			clamped: 1,
		},
		{
			name:    "second track starting before the first is clamped to zero",
			events:  []ev{{true, 100}, {false, 80}, {false, 101}},
			wantV:   []time.Duration{0},
			wantA:   []time.Duration{0, aacAt(1)}, // AAC: by the sample count
			clamped: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, _ := newTestConverter()
			_ = c.Video(0, seqHeader())
			_ = c.Audio(0, aacHeader())
			for _, e := range tt.events {
				var err error
				if e.video {
					err = c.Video(e.ts, idrFrame(0))
				} else {
					err = c.Audio(e.ts, aacFrame(0))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			check := func(name string, aus []media.AccessUnit, want []time.Duration) {
				t.Helper()
				if len(aus) != len(want) {
					t.Fatalf("%s: %d AUs, want %d", name, len(aus), len(want))
				}
				for i := range want {
					if aus[i].DTS != want[i] {
						got := make([]time.Duration, len(aus))
						for j := range aus {
							got[j] = aus[j].DTS
						}
						t.Fatalf("%s DTS = %v, want %v", name, got, want)
					}
				}
			}
			check("video", s.kind(media.Video), tt.wantV)
			check("audio", s.kind(media.Audio), tt.wantA)
			if len(s.discont) != tt.discont || c.Stats().Discontinuities != uint64(tt.discont) {
				t.Fatalf("discontinuities: sink %v, stats %d, want %d", s.discont, c.Stats().Discontinuities, tt.discont)
			}
			if c.Stats().Clamped != tt.clamped {
				t.Fatalf("clamped %d, want %d", c.Stats().Clamped, tt.clamped)
			}
		})
	}
}

// aacAt is the time of AAC frame n at 48 kHz: 1024 samples each.
func aacAt(n int) time.Duration { return time.Duration(n) * 1024 * time.Second / 48000 }

// TestConverterAACSampleClock: AAC frame times follow the sample count,
// not RTMP's whole milliseconds (which make durations alternate 21/22 ms),
// a hole in the audio restarts the count at the frame after it, and a
// frame whose timestamp steps back is dropped rather than squeezed in.
func TestConverterAACSampleClock(t *testing.T) {
	truncMs := func(n int) uint32 { return uint32(aacAt(n) / time.Millisecond) }
	var steady []uint32
	var want []time.Duration
	for n := range 200 {
		steady = append(steady, truncMs(n))
		want = append(want, aacAt(n))
	}
	for _, tc := range []struct {
		name     string
		ts       []uint32
		want     []time.Duration
		backward uint64
	}{
		{"whole-millisecond timestamps", steady, want, 0},
		{"hole of 200 ms", []uint32{0, 21, 42, 64, 264, 285, 307},
			[]time.Duration{0, aacAt(1), aacAt(2), aacAt(3), 264 * ms, 264*ms + aacAt(1), 264*ms + aacAt(2)}, 0},
		{"small step back drops the frame", []uint32{0, 21, 42, 40, 64, 85},
			[]time.Duration{0, aacAt(1), aacAt(2), aacAt(3), aacAt(4)}, 1},
		{"repeated timestamp drops the frame", []uint32{0, 21, 21, 42},
			[]time.Duration{0, aacAt(1), aacAt(2)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s, _ := newTestConverter()
			_ = c.Audio(0, aacHeader())
			for _, ts := range tc.ts {
				if err := c.Audio(ts, aacFrame(0)); err != nil {
					t.Fatal(err)
				}
			}
			var got []time.Duration
			for _, au := range s.kind(media.Audio) {
				got = append(got, au.DTS)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DTS %v\nwant %v", got, tc.want)
			}
			if b := c.Stats().BackwardAudio; b != tc.backward {
				t.Fatalf("%d frames dropped for stepping back, want %d", b, tc.backward)
			}
		})
	}
}

func TestConverterUnsupportedCodecs(t *testing.T) {
	c, s, _ := newTestConverter()
	err := c.Video(0, append([]byte{0x90}, "vp09\x01\x02"...))
	var ue *UnsupportedCodecError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "VP9") {
		t.Fatalf("VP9: %v", err)
	}
	if err := c.Audio(0, []byte{0x2f, 0xff, 0xfb}); !errors.Is(err, ErrUnsupportedCodec) || !strings.Contains(err.Error(), "MP3") {
		t.Fatalf("MP3: %v", err)
	}
	if len(s.aus)+len(s.vcfgs)+len(s.acfgs) != 0 {
		t.Fatal("unsupported codec reached the sink")
	}
}

// amf builds AMF0 values for tests.
type amf []byte

func (a amf) str(s string) amf {
	a = append(a, amfString, byte(len(s)>>8), byte(len(s)))
	return append(a, s...)
}
func (a amf) key(s string) amf { return append(append(a, byte(len(s)>>8), byte(len(s))), s...) }
func (a amf) num(f float64) amf {
	a = append(a, amfNumber)
	return binary.BigEndian.AppendUint64(a, math.Float64bits(f))
}
func (a amf) boolean(v bool) amf {
	if v {
		return append(a, amfBoolean, 1)
	}
	return append(a, amfBoolean, 0)
}
func (a amf) end() amf { return append(a, 0, 0, amfObjectEnd) }

// ffmpegMetadata is onMetaData as the ffmpeg FLV muxer writes it.
func ffmpegMetadata() []byte {
	a := amf(nil).str("onMetaData")
	a = append(a, amfECMAArray, 0, 0, 0, 9)
	a = a.key("duration").num(0)
	a = a.key("width").num(640)
	a = a.key("height").num(360)
	a = a.key("videodatarate").num(0)
	a = a.key("framerate").num(30)
	a = a.key("videocodecid").num(7)
	a = a.key("audiodatarate").num(125)
	a = a.key("audiosamplerate").num(48000)
	a = a.key("stereo").boolean(true)
	a = a.key("audiocodecid").num(10)
	a = a.key("encoder").str("Lavf61.7.100")
	return a.end()
}

func TestParseMetadata(t *testing.T) {
	md, err := ParseMetadata(ffmpegMetadata())
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata{Width: 640, Height: 360, FrameRate: 30, AudioBitrate: 125, VideoCodec: "7", AudioCodec: "10",
		AudioSampleRate: 48000, AudioChannels: 2, Encoder: "Lavf61.7.100"}
	if md != want {
		t.Fatalf("got %+v\nwant %+v", md, want)
	}
	// OBS style: object, string codec ids, hostile values.
	a := append(amf(nil), amfObject)
	a = a.key("width").num(math.NaN())
	a = a.key("height").num(-5)
	a = a.key("fps").num(59.94)
	a = a.key("videocodecid").str("avc1")
	a = a.key("encoder").str(strings.Repeat("x", 1000))
	md, err = ParseMetadata(a.end())
	if err != nil {
		t.Fatal(err)
	}
	if md.Width != 0 || md.Height != 0 || md.FrameRate != 59.94 || md.VideoCodec != "avc1" || len(md.Encoder) != maxMetaString {
		t.Fatalf("got %+v", md)
	}
	if _, err := ParseMetadata(amf(nil).str("onMetaData")); err == nil {
		t.Fatal("metadata without an object accepted")
	}
	if _, err := ParseMetadata([]byte{0x11, 0x0a}); err == nil {
		t.Fatal("AMF3 accepted")
	}
}

func TestConverterMetadataReachesSink(t *testing.T) {
	c, s, lc := newTestConverter()
	for i := 0; i < 3; i++ {
		if _, err := c.Metadata(ffmpegMetadata()); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.meta) != 3 || s.meta[0].Width != 640 {
		t.Fatalf("sink metadata: %+v", s.meta)
	}
	if lc.count("rtmp: metadata") != 1 {
		t.Fatal("unchanged metadata logged more than once")
	}
}

func TestDecodeAMF0(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []any
		wantErr bool
	}{
		{name: "connect-like", in: append(amf(nil).str("connect").num(1), append(append(amf(nil), amfObject).key("app").str("live").end(), amfNull)...),
			want: []any{"connect", 1.0, map[string]any{"app": "live"}, nil}},
		{name: "strict array", in: []byte{amfStrictArray, 0, 0, 0, 2, amfNull, amfBoolean, 1}, want: []any{[]any{nil, true}}},
		{name: "long string", in: []byte{amfLongString, 0, 0, 0, 2, 'h', 'i'}, want: []any{"hi"}},
		{name: "date", in: []byte{amfDate, 0x40, 0x59, 0, 0, 0, 0, 0, 0, 0, 0}, want: []any{100.0}},
		{name: "undefined", in: []byte{amfUndefined}, want: []any{nil}},
		{name: "typed object", in: amf{amfTypedObject, 0, 1, 'C'}.key("a").num(2).end(), want: []any{map[string]any{"a": 2.0}}},
		{name: "ECMA array cut at end of input", in: amf{amfECMAArray, 0, 0, 0, 1}.key("a").num(1), want: []any{map[string]any{"a": 1.0}}},
		{name: "strict array count lies", in: []byte{amfStrictArray, 0x7f, 0xff, 0xff, 0xff, amfNull}, wantErr: true},
		{name: "long string overruns", in: []byte{amfLongString, 0xff, 0xff, 0xff, 0xff, 'a'}, wantErr: true},
		{name: "string overruns", in: []byte{amfString, 0, 5, 'a'}, wantErr: true},
		{name: "number short", in: []byte{amfNumber, 1, 2}, wantErr: true},
		{name: "reference", in: []byte{amfReference, 0, 1}, wantErr: true},
		{name: "AMF3", in: []byte{amfAVMPlus, 1}, wantErr: true},
		{name: "object end alone", in: []byte{amfObjectEnd}, wantErr: true},
		{name: "object without end", in: amf{amfObject}.key("a").num(1), wantErr: true},
		{name: "empty key without end marker", in: []byte{amfObject, 0, 0, amfNull}, wantErr: true},
		{name: "unknown marker", in: []byte{0x42}, wantErr: true},
		{name: "nesting bomb", in: bytes.Repeat([]byte{amfStrictArray, 0, 0, 0, 1}, MaxAMF0Depth+2), wantErr: true},
		{name: "object nesting bomb", in: bytes.Repeat([]byte{amfObject, 0, 1, 'k'}, MaxAMF0Depth+2), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeAMF0(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %#v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalAny(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	// Exactly MaxAMF0Depth levels of nesting are fine.
	deep := append(bytes.Repeat([]byte{amfStrictArray, 0, 0, 0, 1}, MaxAMF0Depth), amfNull)
	if _, err := DecodeAMF0(deep); err != nil {
		t.Fatalf("depth %d: %v", MaxAMF0Depth, err)
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalAny(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalAny(x[k], y[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// checkSink asserts the invariants every Converter output must keep.
type checkSink struct {
	t    *testing.T
	last map[media.Kind]time.Duration
}

func (s *checkSink) VideoConfig(c media.VideoConfig) error {
	if c.Codec == media.AV1 {
		if len(c.SeqHeader) == 0 || len(c.SPS)+len(c.PPS)+len(c.VPS) != 0 {
			s.t.Fatal("AV1 config without a sequence header, or with parameter sets")
		}
		return nil
	}
	if len(c.SPS) == 0 || len(c.PPS) == 0 || (c.Codec == media.H265) != (len(c.VPS) > 0) {
		s.t.Fatal("empty parameter set")
	}
	return nil
}
func (s *checkSink) AudioConfig(media.AudioConfig) error { return nil }
func (s *checkSink) WriteAU(au media.AccessUnit) error {
	if last, ok := s.last[au.Kind]; ok && au.DTS <= last {
		s.t.Fatalf("%s DTS %v after %v", au.Kind, au.DTS, last)
	}
	s.last[au.Kind] = au.DTS
	if au.Kind == media.Video {
		if len(au.NALUs) == 0 || au.Frame != nil {
			s.t.Fatal("video AU without NAL units")
		}
		for _, n := range au.NALUs {
			if len(n) == 0 {
				s.t.Fatal("empty NAL unit")
			}
		}
	} else if len(au.Frame) == 0 || au.NALUs != nil {
		s.t.Fatal("audio AU without a frame")
	}
	return nil
}

func FuzzVideoTag(f *testing.F) {
	f.Add(uint32(0), seqHeader())
	f.Add(uint32(33), idrFrame(67))
	f.Add(uint32(66), interFrame(-33))
	f.Add(uint32(math.MaxUint32), []byte{0x17, 2, 0, 0, 0})
	f.Add(uint32(5), append([]byte{0x91}, "avc1\x00\x00\x10\x00\x00\x00\x01\x65"...))
	f.Add(uint32(5), append([]byte{0x90}, "hvc1"...))
	f.Fuzz(func(t *testing.T, ts uint32, body []byte) {
		_, _ = ParseVideoTag(body)
		c := NewConverter(Config{Sink: &checkSink{t: t, last: map[media.Kind]time.Duration{}}})
		if err := c.Video(0, seqHeader()); err != nil {
			t.Fatal(err)
		}
		_ = c.Video(0, idrFrame(0))
		// The fuzzed body, as a frame and as a header, then a normal
		// frame: nothing may panic and DTS must stay increasing.
		_ = c.Video(ts, body)
		_ = c.Video(ts+33, body)
		_ = c.Video(ts+66, idrFrame(0))
	})
}

func FuzzAudioTag(f *testing.F) {
	f.Add(uint32(0), aacHeader())
	f.Add(uint32(21), aacFrame(1))
	f.Add(uint32(21), []byte{0xaf, 0, 0xf8, 0xff, 0xff, 0xff})
	f.Add(uint32(0), []byte{0x2f, 0xff})
	f.Fuzz(func(t *testing.T, ts uint32, body []byte) {
		_, _ = ParseAudioTag(body)
		c := NewConverter(Config{Sink: &checkSink{t: t, last: map[media.Kind]time.Duration{}}})
		_ = c.Audio(ts, body)
		if err := c.Audio(0, aacHeader()); err != nil {
			t.Fatal(err)
		}
		_ = c.Audio(ts, body)
		_ = c.Audio(ts+21, aacFrame(1))
	})
}

func FuzzMetadata(f *testing.F) {
	f.Add(ffmpegMetadata())
	f.Add([]byte{amfStrictArray, 0xff, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{amfObject, 0, 1, 'k'}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := DecodeAMF0(b)
		if err == nil && len(b) > 0 && len(vals) == 0 {
			t.Fatal("input consumed without values")
		}
		md, err := ParseMetadata(b)
		if err == nil && (len(md.Encoder) > maxMetaString || md.Width < 0 || md.FrameRate < 0) {
			t.Fatalf("unbounded metadata %+v", md)
		}
	})
}

// discardSink accepts everything.
type discardSink struct{}

func (discardSink) VideoConfig(media.VideoConfig) error { return nil }
func (discardSink) AudioConfig(media.AudioConfig) error { return nil }
func (discardSink) WriteAU(media.AccessUnit) error      { return nil }

// BenchmarkVideoTag measures tag parsing + AVCC splitting + timestamping
// for a typical 720p inter frame (AUD, SEI, 4 slices: ~24 KiB).
func BenchmarkVideoTag(b *testing.B) {
	slice := make([]byte, 6000)
	slice[0] = 0x41
	tag := videoTag(2, 1, 67, avcc([]byte{0x09, 0xf0}, seiNALU, slice, slice, slice, slice))
	c := NewConverter(Config{Sink: discardSink{}})
	if err := c.Video(0, seqHeader()); err != nil {
		b.Fatal(err)
	}
	if err := c.Video(0, idrFrame(0)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tag)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Video(uint32(33+i*33), tag); err != nil {
			b.Fatal(err)
		}
	}
}
