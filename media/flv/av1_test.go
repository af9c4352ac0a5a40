package flv

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
)

// av1C is an AV1CodecConfigurationRecord carrying seqHdr (media/av1's
// form), or none when seqHdr is nil, as OBS may send it.
func av1C(seqHdr []byte) []byte {
	rec := []byte{0x81, 0x00, 0x0c, 0x00}
	if seqHdr != nil {
		rec = av1.AppendSample(rec, [][]byte{seqHdr})
	}
	return rec
}

// TestAV1Publish: an enhanced-RTMP AV1 publish (OBS 30+) is carried, not
// refused: the av1C record configures the track and every temporal unit
// reaches the sink as its OBUs, key frames marked, timed by the RTMP
// clock with no composition offset.
func TestAV1Publish(t *testing.T) {
	cfg := av1test.Config(t)
	tus := av1test.TUs(t)
	c, s, _ := newTestConverter()
	if err := c.Video(0, exVideo(FrameKey, exSequenceStart, "av01", av1C(cfg.SeqHeader))); err != nil {
		t.Fatal(err)
	}
	for i, tu := range tus {
		ft := byte(FrameInter)
		if i%av1test.KeyEvery == 0 {
			ft = FrameKey
		}
		if err := c.Video(uint32(i*33), exVideo(ft, exCodedFrames, "av01", tu)); err != nil {
			t.Fatalf("TU %d: %v", i, err)
		}
	}
	if len(s.vcfgs) != 1 || s.vcfgs[0].Codec != media.AV1 || !bytes.Equal(s.vcfgs[0].SeqHeader, cfg.SeqHeader) {
		t.Fatalf("configs %+v", s.vcfgs)
	}
	aus := s.kind(media.Video)
	if len(aus) != len(tus) {
		t.Fatalf("%d AUs, want %d", len(aus), len(tus))
	}
	for i, au := range aus {
		if au.Key != (i%av1test.KeyEvery == 0) || au.DTS != time.Duration(i*33)*ms || au.PTS != au.DTS {
			t.Fatalf("AU %d: key %v dts %v pts %v", i, au.Key, au.DTS, au.PTS)
		}
		if got := av1.AppendSample(nil, au.NALUs); !bytes.Equal(got, tus[i][2:]) {
			t.Fatalf("AU %d does not carry the TU's OBUs", i)
		}
	}
	if st := c.Stats(); st.Keyframes != 3 || st.InbandConfigs != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAV1ConfigInBand: a sequence start without config OBUs (or an MPEG-2
// TS sequence start) leaves the track to be configured by the first key
// frame's sequence header; inter frames before it are dropped. A key frame
// with a different sequence header (a new resolution) is a new
// configuration, counted as in-band.
func TestAV1ConfigInBand(t *testing.T) {
	tus := av1test.TUs(t)
	small := av1test.FileTUs(t, av1test.Small)
	c, s, lc := newTestConverter()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Video(0, exVideo(FrameKey, exMPEG2TSSequenceStart, "av01", []byte{0x80, 0x04})))
	must(c.Video(0, exVideo(FrameKey, exSequenceStart, "av01", av1C(nil))))
	must(c.Video(0, exVideo(FrameInter, exCodedFrames, "av01", tus[1])))
	for i := range av1test.KeyEvery {
		must(c.Video(uint32(33+i*33), exVideo(FrameInter, exCodedFrames, "av01", tus[i])))
	}
	for i, tu := range small {
		must(c.Video(uint32(1000+i*33), exVideo(FrameInter, exCodedFrames, "av01", tu)))
	}
	if len(s.vcfgs) != 2 || !bytes.Equal(s.vcfgs[0].SeqHeader, av1test.Config(t).SeqHeader) ||
		!bytes.Equal(s.vcfgs[1].SeqHeader, av1test.FileConfig(t, av1test.Small).SeqHeader) {
		t.Fatalf("%d configs", len(s.vcfgs))
	}
	v := s.kind(media.Video)
	if len(v) != av1test.KeyEvery+len(small) || !v[0].Key || !v[av1test.KeyEvery].Key {
		t.Fatalf("%d AUs", len(v))
	}
	if st := c.Stats(); st.DroppedVideo != 1 || st.InbandConfigs != 1 {
		t.Fatalf("stats %+v", st)
	}
	if lc.count("video before the AV1 sequence header dropped") != 1 {
		t.Fatal("the dropped frame was not logged")
	}
}

// TestAV1BadInput: broken AV1 ends the publish with an error, never a
// panic, and a broken in-band sequence header leaves the old one in force.
func TestAV1BadInput(t *testing.T) {
	cfg := av1test.Config(t)
	for name, body := range map[string][]byte{
		"record marker":     exVideo(FrameKey, exSequenceStart, "av01", []byte{0x01, 0, 0, 0}),
		"record OBUs":       exVideo(FrameKey, exSequenceStart, "av01", []byte{0x81, 0, 0, 0, 0x0a, 0x09}),
		"record not parsed": exVideo(FrameKey, exSequenceStart, "av01", av1C([]byte{0x08, 0xff})),
		"frame OBUs":        exVideo(FrameKey, exCodedFrames, "av01", []byte{0x12, 0x00, 0x32, 0x09, 0x10}),
		"first in-band header": exVideo(FrameKey, exCodedFrames, "av01",
			av1.AppendSample(nil, [][]byte{{0x08, 0xff}, {0x30, 0x10}})),
	} {
		c, _, _ := newTestConverter()
		if err := c.Video(0, body); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	c, s, _ := newTestConverter()
	if err := c.Video(0, exVideo(FrameKey, exSequenceStart, "av01", av1C(cfg.SeqHeader))); err != nil {
		t.Fatal(err)
	}
	bad := av1.AppendSample(nil, [][]byte{{0x08, 0xff}, {0x30, 0x10}})
	if err := c.Video(0, exVideo(FrameKey, exCodedFrames, "av01", bad)); err != nil {
		t.Fatalf("a bad in-band header ended the publish: %v", err)
	}
	if len(s.vcfgs) != 1 || len(s.kind(media.Video)) != 1 {
		t.Fatalf("%d configs, %d AUs", len(s.vcfgs), len(s.kind(media.Video)))
	}
}

// FuzzAV1Video feeds enhanced-RTMP av01 messages built around fuzzed bytes
// to a converter that has a configuration.
func FuzzAV1Video(f *testing.F) {
	tus := av1test.TUs(f)
	f.Add(uint32(0), byte(exCodedFrames), tus[0])
	f.Add(uint32(33), byte(exCodedFrames), tus[1])
	f.Add(uint32(33), byte(exSequenceStart), av1C(av1test.FileConfig(f, av1test.Small).SeqHeader))
	cfg := av1test.Config(f)
	f.Fuzz(func(t *testing.T, ts uint32, pkt byte, body []byte) {
		c := NewConverter(Config{Sink: &checkSink{t: t, last: map[media.Kind]time.Duration{}}, Logger: slog.New(&logCounter{}), DropUnsupported: true})
		if err := c.Video(0, exVideo(FrameKey, exSequenceStart, "av01", av1C(cfg.SeqHeader))); err != nil {
			t.Fatal(err)
		}
		_ = c.Video(0, exVideo(FrameKey, exCodedFrames, "av01", tus[0]))
		for i, ft := range []byte{FrameKey, FrameInter} {
			_ = c.Video(ts+uint32(i*33), exVideo(ft, pkt&0x0f, "av01", body))
		}
		_ = c.Video(ts+100, exVideo(FrameInter, exCodedFrames, "av01", tus[1]))
	})
}
