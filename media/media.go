// Package media holds the codec-neutral types that every ingest (RTMP, WHIP)
// produces and the CMAF packager consumes: track configurations and
// timestamped access units. It does no I/O.
package media

import "time"

// Kind tells a video track from an audio track.
type Kind uint8

const (
	Video Kind = iota + 1
	Audio
)

func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	}
	return "unknown"
}

// Codec names a supported codec.
type Codec uint8

const (
	H264 Codec = iota + 1
	AAC
	Opus
	H265
	AV1
)

func (c Codec) String() string {
	switch c {
	case H264:
		return "h264"
	case AAC:
		return "aac"
	case Opus:
		return "opus"
	case H265:
		return "h265"
	case AV1:
		return "av1"
	}
	return "unknown"
}

// VideoConfig is the decoder configuration of an H.264, H.265 or AV1 track.
type VideoConfig struct {
	// Codec is H264, H265 or AV1; the zero value means H264.
	Codec Codec
	VPS   []byte // one video parameter set (H265 only)
	SPS   []byte // one sequence parameter set, without start code or length
	PPS   []byte // one picture parameter set
	// SeqHeader is AV1's sequence header OBU (AV1 only), in the form
	// media/av1 splits OBUs into: header without the size field, payload.
	SeqHeader []byte
}

// VideoCodec is c.Codec with the zero value read as H264.
func (c VideoConfig) VideoCodec() Codec {
	if c.Codec == 0 {
		return H264
	}
	return c.Codec
}

// AudioConfig is the decoder configuration of an audio track.
type AudioConfig struct {
	Codec Codec
	// ASC is the raw AAC AudioSpecificConfig (Codec == AAC).
	ASC []byte
	// SampleRate and Channels describe the decoded audio; for AAC they are
	// taken from the ASC, for Opus they come from the SDP (48000, 2).
	SampleRate int
	Channels   int
}

// AccessUnit is one decodable unit of one track: a video frame (one or more
// NAL units) or one audio frame.
type AccessUnit struct {
	Kind Kind
	// DTS is the decode time since the start of the publish; PTS = DTS + the
	// composition offset (B-frames make PTS > DTS).
	DTS time.Duration
	PTS time.Duration
	// Key marks an IDR video frame (AV1: a key frame). Audio frames are
	// always sync samples.
	Key bool
	// NALUs holds the NAL units of a video frame (no start codes, no length
	// prefixes); for AV1, the temporal unit's OBUs as media/av1 splits
	// them. Frame holds one audio frame. Exactly one is set.
	NALUs [][]byte
	Frame []byte
}

// Sink receives what an ingest produces. Config changes may arrive at any
// time; an implementation treats a changed config as a new epoch. Calls come
// from one goroutine per publish; errors end the publish.
type Sink interface {
	VideoConfig(VideoConfig) error
	AudioConfig(AudioConfig) error
	WriteAU(AccessUnit) error
}
