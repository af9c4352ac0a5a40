package cmaf_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/banyan-live/banyan/media/cmaf"
)

// baseTimes is each track's tfdt in every fragment of b, in order.
func baseTimes(t *testing.T, b []byte) map[int][]uint64 {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	out := map[int][]uint64{}
	for _, p := range parts {
		for _, tr := range p.Tracks {
			out[tr.ID] = append(out[tr.ID], tr.BaseTime)
		}
	}
	return out
}

func TestShiftDecodeTimes(t *testing.T) {
	p, r := newPackager(t, cmaf.Config{})
	configure(t, p, &videoHigh, &audioAAC)
	o := genOpts{dur: 3 * time.Second, fps: 30, bframes: true, gop: 30, audioRate: 48000}
	feedAll(t, p, interleave(genVideo(o), genAudio(o), 0))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	scales, err := cmaf.Timescales(r.inits()[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if scales[1] != 90000 || scales[2] != 48000 {
		t.Fatalf("timescales %v, want video 90000 and audio 48000", scales)
	}
	// A segment: several chunks back to back, as LL-HLS serves them.
	var seg []byte
	for _, c := range r.chunks()[:3] {
		seg = append(seg, c.Data...)
	}
	orig := bytes.Clone(seg)
	before := baseTimes(t, seg)

	for _, tc := range []struct {
		name         string
		d            time.Duration
		video, audio int64 // ticks added
	}{
		{"30 s on", 30 * time.Second, 30 * 90000, 30 * 48000},
		{"rounded to the tick", 30*time.Second + 5*time.Microsecond, 30*90000 + 0, 30*48000 + 0},
		{"rounded up", 30*time.Second + 6*time.Microsecond, 30*90000 + 1, 30*48000 + 0},
		{"back to where it was", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cmaf.ShiftDecodeTimes(seg, scales, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(seg, orig) {
				t.Fatal("the input was changed")
			}
			if len(out) != len(seg) {
				t.Fatalf("%d bytes out of %d", len(out), len(seg))
			}
			after := baseTimes(t, out)
			for id, add := range map[int]int64{1: tc.video, 2: tc.audio} {
				if len(after[id]) != len(before[id]) || len(before[id]) == 0 {
					t.Fatalf("track %d: %d fragments, want %d", id, len(after[id]), len(before[id]))
				}
				for i := range before[id] {
					if got := int64(after[id][i]) - int64(before[id][i]); got != add {
						t.Errorf("track %d fragment %d: moved %d ticks, want %d", id, i, got, add)
					}
				}
			}
		})
	}

	for _, tc := range []struct {
		name   string
		frag   []byte
		scales map[uint32]uint32
		d      time.Duration
	}{
		{"before the timeline's start", seg, scales, -time.Hour},
		{"a track without a timescale", seg, map[uint32]uint32{1: 90000}, time.Second},
		{"truncated", seg[:len(seg)-1], scales, time.Second},
		{"a box larger than its container", append([]byte{0, 0, 1, 0, 'm', 'o', 'o', 'f'}, seg[8:40]...), scales, time.Second},
		{"a short header", []byte{0, 0, 0}, scales, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cmaf.ShiftDecodeTimes(tc.frag, tc.scales, tc.d); err == nil {
				t.Fatal("no error")
			}
		})
	}

	if _, err := cmaf.Timescales([]byte("not an init segment")); err == nil {
		t.Error("Timescales of garbage: no error")
	}
}
