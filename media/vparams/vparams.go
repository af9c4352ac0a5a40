// Package vparams validates a video decoder configuration (H.264 or H.265
// parameter sets, an AV1 sequence header) and reads what the ingest logs and the packager need from
// it: the RFC 6381 codec string, the picture size and the frame rate. The
// RTMP converter checks in-band parameter sets with it before it hands them
// on, so that what it passes is what the packager accepts.
package vparams

import (
	"errors"
	"fmt"

	mcav1 "github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/hevc"
)

// Bounds on hostile input.
const (
	MaxParamSetSize = 4096
	MaxPictureSize  = 16384 // width and height
)

// Info is what a valid configuration says about the stream.
type Info struct {
	Codec         string // RFC 6381: avc1.PPCCLL, hvc1.P.C.TL.CC or av01.P.LLT.DD
	Width, Height int
	FPS           float64 // from the SPS (AV1: sequence header) timing info; 0 or NaN when absent
	// PTL is the H.265 SPS's general profile_tier_level (zero otherwise).
	PTL [hevc.PTLSize]byte
	// ReducedStill is AV1's reduced_still_picture_header: every frame is
	// a key frame.
	ReducedStill bool
}

// Parse validates c and describes it.
func Parse(c media.VideoConfig) (Info, error) {
	var in Info
	if len(c.VPS) > MaxParamSetSize || len(c.SPS) > MaxParamSetSize || len(c.PPS) > MaxParamSetSize || len(c.SeqHeader) > MaxParamSetSize {
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
	case media.AV1:
		if len(c.VPS)+len(c.SPS)+len(c.PPS) != 0 {
			return in, errors.New("AV1 has no VPS, SPS or PPS")
		}
		if err := parseAV1(c.SeqHeader, &in); err != nil {
			return in, err
		}
	default:
		return in, fmt.Errorf("unsupported video codec %v", c.Codec)
	}
	if in.Width <= 0 || in.Height <= 0 || in.Width > MaxPictureSize || in.Height > MaxPictureSize {
		return in, fmt.Errorf("picture size %dx%d out of range", in.Width, in.Height)
	}
	return in, nil
}

// parseAV1 reads an AV1 sequence header OBU (media/av1's form).
func parseAV1(obu []byte, in *Info) error {
	if av1.Type(obu) != av1.OBUSequenceHeader {
		return errors.New("AV1 sequence header missing or not a sequence header OBU")
	}
	if obu[0]&0x04 != 0 {
		// A sequence header belongs to every layer; mediacommon reads
		// a one-byte header, so drop the extension byte.
		if len(obu) < 2 {
			return errors.New("AV1 sequence header truncated")
		}
		obu = append([]byte{obu[0] &^ 0x04}, obu[2:]...)
	}
	var sh mcav1.SequenceHeader
	if err := sh.Unmarshal(obu); err != nil {
		return fmt.Errorf("parse AV1 sequence header: %w", err)
	}
	if len(sh.SeqLevelIdx) == 0 || len(sh.SeqTier) == 0 {
		return errors.New("AV1 sequence header without an operating point")
	}
	in.Width, in.Height, in.ReducedStill = sh.Width(), sh.Height(), sh.ReducedStillPictureHeader
	if ti := sh.TimingInfo; ti != nil && ti.NumUnitsInDisplayTick > 0 {
		in.FPS = float64(ti.TimeScale) / float64(ti.NumUnitsInDisplayTick)
	}
	cc := sh.ColorConfig
	fixed := [2]byte{sh.SeqProfile<<5 | sh.SeqLevelIdx[0]&0x1f,
		bit(sh.SeqTier[0])<<7 | bit(cc.HighBitDepth)<<6 | bit(cc.TwelveBit)<<5 | bit(cc.MonoChrome)<<4 |
			bit(cc.SubsamplingX)<<3 | bit(cc.SubsamplingY)<<2 | byte(cc.ChromaSamplePosition)&0x03}
	in.Codec = av1.CodecString(fixed)
	return nil
}

func bit(b bool) byte {
	if b {
		return 1
	}
	return 0
}
