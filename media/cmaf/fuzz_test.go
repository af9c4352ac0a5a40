package cmaf_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/internal/x265test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// FuzzPackager drives configuration and AU calls from fuzz bytes: any
// sequence must neither panic nor produce output that mediacommon cannot
// parse or that breaks the invariants parseEvents checks (sequence numbers,
// tfdt continuity, keyframes first in their chunk and in their epoch).
func FuzzPackager(f *testing.F) {
	// Seeds: configs, a keyframe, frames and audio; a config change; jumps.
	f.Add([]byte{0, 0, 1, 0, 2, 1, 33, 0, 5, 40, 5, 0, 21, 3, 0, 33, 0, 9, 5, 0, 21, 7})
	f.Add([]byte{1, 2, 5, 0, 20, 5, 0, 20, 5, 0, 20, 5, 0, 20, 0, 1, 2, 1, 0, 0, 4, 0, 33, 7})
	f.Add([]byte{0, 0, 1, 0, 2, 1, 0, 0, 3, 0x80, 0, 2, 1, 0xff, 0x00, 4, 0, 33, 5, 0xff, 0xf0, 7})
	f.Add([]byte{0, 3, 1, 4, 2, 0, 0, 3, 0, 0, 3, 0, 1, 2, 0x81, 0x10, 0x00, 5, 0x7f, 0xff})
	f.Add([]byte{0, 3, 2, 0x04 | 1, 0, 10, 2, 0x04, 33, 10, 5, 0, 21, 7})
	f.Add([]byte{0, 5, 2, 0x01, 0, 10, 2, 0x00, 33, 10, 5, 0, 21, 0, 6, 2, 0x03, 33, 0x30, 7})
	hevcVideo = x265test.Config(f, "x265.hevc")
	av1Video = av1test.Config(f)
	f.Fuzz(fuzzOne)
}

// hevcVideo is the parameter sets of media/hevc's libx265 testdata, and
// av1Video the sequence header of media/av1's SVT-AV1 testdata.
var hevcVideo, av1Video media.VideoConfig

// fuzzOne runs one fuzz input.
func fuzzOne(t *testing.T, data []byte) {
	var events []any
	p, err := cmaf.New(cmaf.Config{
		OnInit:  func(i cmaf.Init) error { events = append(events, i); return nil },
		OnChunk: func(c cmaf.Chunk) error { events = append(events, c); return nil },
		Logger:  quietLogger(),
		// Small waits so that short inputs reach every state.
		TrackWait:    100 * time.Millisecond,
		KeyframeWait: 300 * time.Millisecond,
		MaxGap:       2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(err error) {
		if err == nil || errors.Is(err, cmaf.ErrFlushed) {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "cmaf: ") || strings.Contains(msg, "marshal") || strings.Contains(msg, "deliver") {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	var vdts, adts time.Duration
	next := func(n int) []byte {
		if len(data) < n {
			b := make([]byte, n)
			copy(b, data)
			data = nil
			return b
		}
		b := data[:n]
		data = data[n:]
		return b
	}
	for ops := 0; len(data) > 0 && ops < 4000; ops++ {
		op := next(1)[0]
		switch op % 8 {
		case 0:
			c := []media.VideoConfig{videoHigh, videoBase, {SPS: next(6), PPS: ppsHigh}, hevcVideo,
				{Codec: media.H265, VPS: hevcVideo.VPS, SPS: append([]byte{0x42, 0x01}, next(16)...), PPS: hevcVideo.PPS},
				av1Video, {Codec: media.AV1, SeqHeader: append([]byte{0x08}, next(12)...)},
			}[int(next(1)[0])%7]
			check(p.VideoConfig(c))
		case 1:
			c := []media.AudioConfig{audioAAC, audioAAC2, audioOpus,
				{Codec: media.Opus, Channels: 1},
				{Codec: media.AAC, ASC: next(2)},
			}[int(next(1)[0])%5]
			check(p.AudioConfig(c))
		case 2, 3, 4:
			b := next(3)
			step := time.Duration(int8(b[1])) * time.Millisecond
			if b[0]&0x80 != 0 {
				step *= 1000 // occasionally a jump of seconds
			}
			vdts += step
			key := b[0]&1 != 0
			typ := byte(0x41)
			if key {
				typ = 0x65
				if b[0]&4 != 0 {
					typ = 0x26 // H.265 IDR_W_RADL (an H.264 SEI)
				}
			}
			if b[0]&2 != 0 {
				typ = b[2] // arbitrary NAL type, including SPS/PPS/AUD
			}
			nalu := make([]byte, 1+int(b[2])%64)
			nalu[0] = typ
			pts := vdts + time.Duration(b[0]>>2&7)*33*time.Millisecond
			check(p.WriteAU(media.AccessUnit{Kind: media.Video, DTS: vdts, PTS: pts, Key: key, NALUs: [][]byte{nalu}}))
		case 5, 6:
			b := next(2)
			step := time.Duration(int8(b[0])) * time.Millisecond
			if op&0x80 != 0 {
				step *= 1000
			}
			adts += step
			check(p.WriteAU(media.AccessUnit{Kind: media.Audio, DTS: adts, PTS: adts, Key: true, Frame: make([]byte, int(b[1])%300)}))
		case 7:
			check(p.Flush())
		}
	}
	check(p.Flush())
	if _, err := parseEvents(events); err != nil {
		t.Fatalf("output does not parse: %v", err)
	}
}
