package vparams

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/internal/x265test"
	"github.com/banyan-live/banyan/media"
)

// Parameter sets of a real x264 main-profile 640x360 stream.
var (
	sps264, _ = hex.DecodeString("674d401eeca05017fcb80880000003008000001e078b16cb")
	pps264, _ = hex.DecodeString("68ebe3cb20")
)

func TestParse(t *testing.T) {
	h := x265test.Config(t, "x265.hevc")
	small := x265test.Config(t, "x265-128x72.hevc")
	a := av1test.Config(t)
	withExt := append([]byte{a.SeqHeader[0] | 0x04, 0x00}, a.SeqHeader[1:]...)
	tests := []struct {
		name    string
		in      media.VideoConfig
		codec   string
		w, h    int
		wantErr string
	}{
		{name: "h264", in: media.VideoConfig{SPS: sps264, PPS: pps264}, codec: "avc1.4d401e", w: 640, h: 360},
		{name: "h265", in: h, codec: "hvc1.1.6.L60.90", w: 192, h: 108},
		{name: "h265 small", in: small, codec: "hvc1.1.6.L", w: 128, h: 72},
		{name: "av1", in: a, codec: "av01.0.", w: 320, h: 180},
		{name: "av1 extension header", in: media.VideoConfig{Codec: media.AV1, SeqHeader: withExt}, codec: "av01.0.", w: 320, h: 180},
		{name: "av1 without sequence header", in: media.VideoConfig{Codec: media.AV1}, wantErr: "sequence header missing"},
		{name: "av1 frame OBU", in: media.VideoConfig{Codec: media.AV1, SeqHeader: []byte{0x30, 0x10}}, wantErr: "not a sequence header"},
		{name: "av1 truncated", in: media.VideoConfig{Codec: media.AV1, SeqHeader: a.SeqHeader[:3]}, wantErr: "parse AV1"},
		{name: "av1 with an SPS", in: media.VideoConfig{Codec: media.AV1, SeqHeader: a.SeqHeader, SPS: sps264}, wantErr: "no VPS, SPS"},
		{name: "h264 with a VPS", in: media.VideoConfig{VPS: h.VPS, SPS: sps264, PPS: pps264}, wantErr: "no VPS"},
		{name: "h264 PPS is an SPS", in: media.VideoConfig{SPS: sps264, PPS: sps264}, wantErr: "PPS"},
		{name: "h264 short SPS", in: media.VideoConfig{SPS: sps264[:3], PPS: pps264}, wantErr: "too short"},
		{name: "h265 without VPS", in: media.VideoConfig{Codec: media.H265, SPS: h.SPS, PPS: h.PPS}, wantErr: "VPS"},
		{name: "h265 SPS in the PPS place", in: media.VideoConfig{Codec: media.H265, VPS: h.VPS, SPS: h.SPS, PPS: h.SPS}, wantErr: "PPS"},
		{name: "h265 H.264 SPS", in: media.VideoConfig{Codec: media.H265, VPS: h.VPS, SPS: sps264, PPS: h.PPS}, wantErr: "not an SPS"},
		{name: "h265 truncated SPS", in: media.VideoConfig{Codec: media.H265, VPS: h.VPS, SPS: h.SPS[:20], PPS: h.PPS}, wantErr: "parse SPS"},
		{name: "huge", in: media.VideoConfig{SPS: make([]byte, MaxParamSetSize+1), PPS: pps264}, wantErr: "exceeds"},
		{name: "opus", in: media.VideoConfig{Codec: media.Opus, SPS: sps264, PPS: pps264}, wantErr: "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.Codec, tt.codec) || got.Width != tt.w || got.Height != tt.h {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	h := x265test.Config(f, "x265.hevc")
	f.Add(false, sps264, pps264)
	f.Add(true, h.SPS, h.PPS)
	f.Add(false, av1test.Config(f).SeqHeader, []byte{})
	f.Fuzz(func(t *testing.T, h265 bool, sps, pps []byte) {
		c := media.VideoConfig{SPS: sps, PPS: pps}
		if h265 {
			c.Codec, c.VPS = media.H265, h.VPS
		}
		if len(pps) == 0 {
			c = media.VideoConfig{Codec: media.AV1, SeqHeader: sps}
		}
		in, err := Parse(c)
		if err == nil && (in.Codec == "" || in.Width <= 0 || in.Height <= 0 || in.Width > MaxPictureSize || in.Height > MaxPictureSize) {
			t.Fatalf("accepted %+v", in)
		}
	})
}
