// Package vparams validates a video decoder configuration (H.264 or H.265
// parameter sets) and reads what the ingest logs and the packager need from
// it: the RFC 6381 codec string, the picture size and the frame rate. The
// RTMP converter checks in-band parameter sets with it before it hands them
// on, so that what it passes is what the packager accepts.
package vparams

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/hevc"
)

// Bounds on hostile input.
const (
	MaxParamSetSize = 4096
	MaxPictureSize  = 16384 // width and height
)

// Info is what a valid configuration says about the stream.
type Info struct {
	Codec         string // RFC 6381: avc1.PPCCLL or hvc1.P.C.TL.CC
	Width, Height int
	FPS           float64 // from the SPS timing info; 0 or NaN when absent
	// PTL is the H.265 SPS's general profile_tier_level (zero for H.264).
	PTL [hevc.PTLSize]byte
}

// Parse validates c and describes it.
func Parse(c media.VideoConfig) (Info, error) {
	var in Info
	if len(c.VPS) > MaxParamSetSize || len(c.SPS) > MaxParamSetSize || len(c.PPS) > MaxParamSetSize {
		return in, fmt.Errorf("parameter set exceeds %d bytes", MaxParamSetSize)
	}
	switch c.VideoCodec() {
	case media.H264:
		switch {
		case len(c.SPS) < 4:
			return in, fmt.Errorf("SPS of %d bytes is too short", len(c.SPS))
		case c.SPS[0]&0x1f != byte(h264.NALUTypeSPS):
			return in, fmt.Errorf("SPS has NAL type %d", c.SPS[0]&0x1f)
		case len(c.PPS) < 2 || c.PPS[0]&0x1f != byte(h264.NALUTypePPS):
			return in, errors.New("PPS missing or not a PPS")
		case len(c.VPS) != 0:
			return in, errors.New("H.264 has no VPS")
		}
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return in, fmt.Errorf("parse SPS: %w", err)
		}
		in.Width, in.Height, in.FPS = sps.Width(), sps.Height(), sps.FPS()
		// Bytes 1..3 follow the 1-byte NAL header directly; emulation
		// prevention cannot occur there because profile_idc is never 0.
		in.Codec = fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3])
	case media.H265:
		switch {
		case hevc.NALUType(c.VPS) != hevc.NALUTypeVPS || len(c.VPS) < 2:
			return in, errors.New("VPS missing or not a VPS")
		case hevc.NALUType(c.PPS) != hevc.NALUTypePPS || len(c.PPS) < 3:
			return in, errors.New("PPS missing or not a PPS")
		}
		ptl, err := hevc.PTLFromSPS(c.SPS)
		if err != nil {
			return in, err
		}
		var sps h265.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return in, fmt.Errorf("parse SPS: %w", err)
		}
		in.Width, in.Height, in.FPS = sps.Width(), sps.Height(), sps.FPS()
		in.Codec, in.PTL = hevc.CodecString("hvc1", ptl), ptl
	default:
		return in, fmt.Errorf("unsupported video codec %v", c.Codec)
	}
	if in.Width <= 0 || in.Height <= 0 || in.Width > MaxPictureSize || in.Height > MaxPictureSize {
		return in, fmt.Errorf("SPS picture size %dx%d out of range", in.Width, in.Height)
	}
	return in, nil
}
