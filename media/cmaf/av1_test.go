package cmaf_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/cmaf"
)

// TestAV1Epochs: AV1 temporal units, as the RTMP converter passes them,
// become av01 samples: each the TU's OBUs with their sizes and without the
// temporal delimiter (the AV1 ISOBMFF binding), key frames as sync
// samples. A new sequence header starts a new epoch at its key frame,
// whose init carries it in av1C.
func TestAV1Epochs(t *testing.T) {
	big, small := av1test.Config(t), av1test.FileConfig(t, av1test.Small)
	bigTUs, smallTUs := av1test.TUs(t), av1test.FileTUs(t, av1test.Small)
	p, r := newPackager(t, cmaf.Config{TrackWait: 10 * time.Millisecond})
	n := 0
	write := func(tus [][]byte) {
		t.Helper()
		for i, tu := range tus {
			obus, err := av1.Split(nil, tu)
			if err != nil {
				t.Fatal(err)
			}
			d := time.Duration(n) * time.Second / 30
			n++
			if err := p.WriteAU(media.AccessUnit{Kind: media.Video, DTS: d, PTS: d, Key: i%av1test.KeyEvery == 0, NALUs: obus}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.VideoConfig(big); err != nil {
		t.Fatal(err)
	}
	write(bigTUs)
	if err := p.VideoConfig(small); err != nil {
		t.Fatal(err)
	}
	write(smallTUs)
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	eps := parseOutput(t, r)
	if len(eps) != 2 {
		t.Fatalf("%d epochs, want 2", len(eps))
	}
	for i, want := range []struct {
		cfg  media.VideoConfig
		tus  [][]byte
		w, h int
	}{{big, bigTUs, 320, 180}, {small, smallTUs, 160, 90}} {
		e := eps[i]
		if e.init.Width != want.w || e.init.Height != want.h || e.init.VideoCodec != "av01.0.00M.08" {
			t.Fatalf("epoch %d: %s %dx%d", i, e.init.VideoCodec, e.init.Width, e.init.Height)
		}
		c, ok := e.parsed.Tracks[0].Codec.(*codecs.AV1)
		if !ok || !bytes.Equal(c.SequenceHeader, want.cfg.SeqHeader) {
			t.Fatalf("epoch %d: init codec %T", i, e.parsed.Tracks[0].Codec)
		}
		s := e.samples[cmaf.VideoTrackID]
		if len(s) != len(want.tus) {
			t.Fatalf("epoch %d: %d samples, want %d", i, len(s), len(want.tus))
		}
		for j, smp := range s {
			if smp.sync != (j%av1test.KeyEvery == 0) || !bytes.Equal(smp.payload, want.tus[j][2:]) {
				t.Fatalf("epoch %d sample %d: sync %v, payload %d bytes (TU %d)", i, j, smp.sync, len(smp.payload), len(want.tus[j]))
			}
		}
	}
}
