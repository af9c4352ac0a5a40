package cmaf_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/banyan-live/banyan/internal/x265test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// TestHEVCConfigChangeStartsEpoch: H.265 parameter sets that change (a
// new resolution sent in-band, as the RTMP converter passes it on) start a
// new epoch at the next IRAP picture, whose init carries the new hvcC; the
// same sets again change nothing. Parameter sets and delimiters stay out of
// the samples; CRA pictures are sync samples like IDRs.
func TestHEVCConfigChangeStartsEpoch(t *testing.T) {
	big := x265test.Config(t, "x265.hevc")
	small := x265test.Config(t, "x265-128x72.hevc")
	// Video only: do not wait for an audio track.
	p, r := newPackager(t, cmaf.Config{TrackWait: 10 * time.Millisecond})
	idr := []byte{0x26, 0x01, 0xaf, 0x01}   // IDR_W_RADL
	cra := []byte{0x2a, 0x01, 0xaf, 0x02}   // CRA_NUT
	trail := []byte{0x02, 0x01, 0xd0, 0x03} // TRAIL_R
	aud := []byte{0x46, 0x01, 0x10}         // AUD_NUT
	frame := func(i int, nalus ...[]byte) media.AccessUnit {
		d := time.Duration(i) * time.Second / 30
		return media.AccessUnit{Kind: media.Video, DTS: d, PTS: d, NALUs: nalus}
	}
	steps := []any{
		big,
		frame(0, aud, big.VPS, big.SPS, big.PPS, idr),
		frame(1, aud, trail),
		frame(2, cra),
		big, // repeated: nothing new
		frame(3, trail),
		small, // the change waits for an IRAP picture
		frame(4, trail),
		frame(5, small.VPS, small.SPS, small.PPS, idr),
		frame(6, trail),
	}
	for i, st := range steps {
		var err error
		switch v := st.(type) {
		case media.VideoConfig:
			err = p.VideoConfig(v)
		case media.AccessUnit:
			err = p.WriteAU(v)
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	eps := parseOutput(t, r)
	if len(eps) != 2 {
		t.Fatalf("%d epochs, want 2", len(eps))
	}
	for i, want := range []struct {
		cfg     media.VideoConfig
		w       int
		samples int
		sync    int
	}{{big, 192, 4, 2}, {small, 128, 2, 1}} {
		e := eps[i]
		if e.init.Width != want.w || e.init.VideoCodec[:5] != "hvc1." {
			t.Fatalf("epoch %d: %s %dx%d", i, e.init.VideoCodec, e.init.Width, e.init.Height)
		}
		h, ok := e.parsed.Tracks[0].Codec.(*codecs.H265)
		if !ok || !bytes.Equal(h.SPS, want.cfg.SPS) || !bytes.Equal(h.VPS, want.cfg.VPS) {
			t.Fatalf("epoch %d: init codec %T", i, e.parsed.Tracks[0].Codec)
		}
		s := e.samples[cmaf.VideoTrackID]
		sync := 0
		for _, smp := range s {
			if smp.sync {
				sync++
			}
		}
		if len(s) != want.samples || sync != want.sync {
			t.Fatalf("epoch %d: %d samples, %d sync, want %d and %d", i, len(s), sync, want.samples, want.sync)
		}
	}
	// Only the picture itself is in the sample.
	if got, want := eps[1].samples[cmaf.VideoTrackID][0].payload, append([]byte{0, 0, 0, byte(len(idr))}, idr...); !bytes.Equal(got, want) {
		t.Fatalf("IDR sample % x, want % x", got, want)
	}
	// frame 4 (before the new IRAP) was coded against the new sets: dropped.
	if st := p.Stats(); st.DroppedAUs != 1 {
		t.Fatalf("stats %+v", st)
	}
}
