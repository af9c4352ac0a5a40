// Package flv turns FLV tag bodies, as carried by RTMP audio and video
// messages, into media.Sink calls: decoder configurations and timestamped
// access units. It is pure (no I/O) so it can be fuzzed and benchmarked.
//
// H.264 and H.265 video (legacy FLV or enhanced RTMP "avc1"/"hvc1"), AV1
// (enhanced RTMP "av01") and AAC audio are supported; anything else returns an error matching
// ErrUnsupportedCodec that names the codec.
package flv

import (
	"errors"
	"fmt"

	"github.com/banyan-live/banyan/media"
)

// ErrUnsupportedCodec matches (errors.Is) every UnsupportedCodecError.
var ErrUnsupportedCodec = errors.New("flv: unsupported codec")

// UnsupportedCodecError names a codec the ingest cannot carry.
type UnsupportedCodecError struct {
	Kind  media.Kind
	Codec string // human-readable, e.g. "HEVC (enhanced RTMP hvc1)", "MP3"
}

func (e *UnsupportedCodecError) Error() string {
	return fmt.Sprintf("flv: unsupported %s codec %s", e.Kind, e.Codec)
}

// Is makes errors.Is(err, ErrUnsupportedCodec) true.
func (e *UnsupportedCodecError) Is(target error) bool { return target == ErrUnsupportedCodec }

// Video frame types (FLV spec E.4.3.1).
const (
	FrameKey        = 1
	FrameInter      = 2
	FrameDisposable = 3
	FrameGenKey     = 4
	FrameCommand    = 5 // video info / command frame, carries no picture
)

// Packet types of an AVC video tag (AVCPacketType). Enhanced RTMP packets
// for the "avc1" and "hvc1" FourCCs, and legacy HEVC tags (codec id 12,
// laid out like AVC), are normalised to these.
const (
	AVCSequenceHeader = 0
	AVCNALU           = 1
	AVCEndOfSequence  = 2
	// AVCIgnore marks an enhanced-RTMP packet the converter skips
	// (PacketTypeMetadata: HDR colour info; MPEG2TSSequenceStart).
	AVCIgnore = 0xff
)

// Legacy FLV video codec ids.
const (
	videoCodecH263    = 2
	videoCodecScreen  = 3
	videoCodecVP6     = 4
	videoCodecVP6A    = 5
	videoCodecScreen2 = 6
	videoCodecAVC     = 7
	videoCodecHEVC    = 12 // non-standard, common in Chinese CDNs
	videoCodecAV1     = 13 // non-standard
)

// Enhanced RTMP video packet types (veovera enhanced-rtmp v1/v2).
const (
	exSequenceStart        = 0
	exCodedFrames          = 1
	exSequenceEnd          = 2
	exCodedFramesX         = 3
	exMetadata             = 4
	exMPEG2TSSequenceStart = 5
	exMultitrack           = 6
	exModEx                = 7
)

// VideoTag is a parsed FLV video tag body. Data aliases the input.
type VideoTag struct {
	FrameType uint8
	Enhanced  bool   // enhanced RTMP (IsExHeader bit set)
	CodecID   uint8  // legacy FLV codec id (7 for AVC); 0 when Enhanced
	FourCC    string // enhanced RTMP FourCC, e.g. "avc1"; "" when legacy
	// Codec is media.H264, media.H265 or media.AV1 (0 for a command frame).
	Codec      media.Codec
	PacketType uint8  // AVCSequenceHeader, AVCNALU, AVCEndOfSequence or AVCIgnore
	CTS        int32  // composition time offset in ms (signed 24-bit)
	Data       []byte // config record, AVCC NAL units, AV1 OBUs, or nil
}

// ParseVideoTag parses the header of an FLV video tag body. It returns an
// *UnsupportedCodecError for codecs other than H.264, H.265 and AV1. Command frames
// (FrameType 5) are returned with no further parsing.
func ParseVideoTag(b []byte) (VideoTag, error) {
	var t VideoTag
	if len(b) < 1 {
		return t, errors.New("flv: empty video tag")
	}
	if b[0]&0x80 != 0 {
		return parseExVideoTag(b)
	}
	t.FrameType = b[0] >> 4
	t.CodecID = b[0] & 0x0f
	if t.FrameType == FrameCommand {
		return t, nil
	}
	if t.FrameType < FrameKey || t.FrameType > FrameGenKey {
		return t, fmt.Errorf("flv: invalid video frame type %d", t.FrameType)
	}
	switch t.CodecID {
	case videoCodecAVC:
		t.Codec = media.H264
	case videoCodecHEVC:
		t.Codec = media.H265
	default:
		return t, &UnsupportedCodecError{Kind: media.Video, Codec: legacyVideoCodecName(t.CodecID)}
	}
	if len(b) < 5 {
		return t, fmt.Errorf("flv: %v video tag of %d bytes, need 5", t.Codec, len(b))
	}
	t.PacketType = b[1]
	if t.PacketType > AVCEndOfSequence {
		return t, fmt.Errorf("flv: invalid AVCPacketType %d", t.PacketType)
	}
	t.CTS = int24(b[2:5])
	t.Data = b[5:]
	return t, nil
}

func parseExVideoTag(b []byte) (VideoTag, error) {
	t := VideoTag{Enhanced: true}
	t.FrameType = (b[0] >> 4) & 0x07
	pt := b[0] & 0x0f
	if pt == exMultitrack || pt == exModEx {
		return t, &UnsupportedCodecError{Kind: media.Video, Codec: fmt.Sprintf("enhanced RTMP packet type %d (multitrack/ModEx)", pt)}
	}
	if len(b) < 5 {
		return t, fmt.Errorf("flv: enhanced video tag of %d bytes, need 5", len(b))
	}
	t.FourCC = fourCCString(b[1:5])
	switch t.FourCC {
	case "avc1":
		t.Codec = media.H264
	case "hvc1":
		t.Codec = media.H265
	case "av01":
		t.Codec = media.AV1
	default:
		return t, &UnsupportedCodecError{Kind: media.Video, Codec: exVideoCodecName(t.FourCC)}
	}
	if t.FrameType == FrameCommand && pt != exMetadata {
		return t, nil
	}
	if t.FrameType < FrameKey || t.FrameType > FrameCommand {
		return t, fmt.Errorf("flv: invalid video frame type %d", t.FrameType)
	}
	body := b[5:]
	switch pt {
	case exSequenceStart:
		t.PacketType, t.Data = AVCSequenceHeader, body
	case exCodedFrames:
		if t.Codec == media.AV1 {
			// AV1 frames carry no composition time: a temporal unit
			// is decoded when it is shown.
			t.PacketType, t.Data = AVCNALU, body
			break
		}
		if len(body) < 3 {
			return t, fmt.Errorf("flv: enhanced coded frame of %d bytes, need 3", len(body))
		}
		t.PacketType, t.CTS, t.Data = AVCNALU, int24(body[:3]), body[3:]
	case exCodedFramesX:
		// Composition time 0: no B-frames (OBS sends it for those).
		t.PacketType, t.Data = AVCNALU, body
	case exSequenceEnd:
		t.PacketType = AVCEndOfSequence
	case exMetadata:
		t.PacketType = AVCIgnore
	case exMPEG2TSSequenceStart:
		// The spec defines it for AV1 only: an MPEG-2 TS AV1 descriptor
		// in place of the av1C record. The sequence header comes in-band
		// with the first key frame, which configures the track.
		t.PacketType = AVCIgnore
	default:
		return t, fmt.Errorf("flv: invalid enhanced video packet type %d", pt)
	}
	return t, nil
}

// int24 sign-extends a big-endian 24-bit value.
func int24(b []byte) int32 {
	return int32(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8) >> 8
}

func fourCCString(b []byte) string {
	// A hostile FourCC ends up in logs: keep it printable.
	out := make([]byte, 4)
	for i, c := range b[:4] {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

func legacyVideoCodecName(id uint8) string {
	switch id {
	case videoCodecH263:
		return "Sorenson H.263"
	case videoCodecScreen:
		return "Screen video"
	case videoCodecVP6:
		return "On2 VP6"
	case videoCodecVP6A:
		return "On2 VP6 with alpha"
	case videoCodecScreen2:
		return "Screen video v2"
	case videoCodecHEVC:
		return "HEVC (FLV codec id 12)"
	case videoCodecAV1:
		return "AV1 (FLV codec id 13)"
	}
	return fmt.Sprintf("FLV video codec id %d", id)
}

func exVideoCodecName(fourcc string) string {
	switch fourcc {
	case "hvc1":
		return "HEVC (enhanced RTMP hvc1)"
	case "av01":
		return "AV1 (enhanced RTMP av01)"
	case "vp09":
		return "VP9 (enhanced RTMP vp09)"
	case "vp08":
		return "VP8 (enhanced RTMP vp08)"
	}
	return fmt.Sprintf("enhanced RTMP FourCC %q", fourcc)
}

// Sound formats (FLV spec E.4.2.1).
const (
	soundPCM         = 0
	soundADPCM       = 1
	soundMP3         = 2
	soundPCMLE       = 3
	soundNelly16k    = 4
	soundNelly8k     = 5
	soundNelly       = 6
	soundG711A       = 7
	soundG711U       = 8
	soundExHeader    = 9 // enhanced RTMP v2; reserved in legacy FLV
	soundAAC         = 10
	soundSpeex       = 11
	soundMP38k       = 14
	soundDeviceSpec  = 15
	aacSequenceHdr   = 0
	aacRaw           = 1
	exAudioMultitrck = 5
)

// Packet types of an AAC audio tag (AACPacketType).
const (
	AACSequenceHeader = aacSequenceHdr
	AACRaw            = aacRaw
)

// AudioTag is a parsed FLV audio tag body. Data aliases the input.
type AudioTag struct {
	SoundFormat   uint8
	SoundRate     uint8 // 0: 5.5 kHz … 3: 44 kHz; meaningless for AAC
	SoundSize     uint8 // 0: 8-bit, 1: 16-bit
	SoundType     uint8 // 0: mono, 1: stereo
	AACPacketType uint8
	Data          []byte
}

// ParseAudioTag parses the header of an FLV audio tag body. It returns an
// *UnsupportedCodecError for formats other than AAC.
func ParseAudioTag(b []byte) (AudioTag, error) {
	var t AudioTag
	if len(b) < 1 {
		return t, errors.New("flv: empty audio tag")
	}
	t.SoundFormat = b[0] >> 4
	t.SoundRate = (b[0] >> 2) & 0x03
	t.SoundSize = (b[0] >> 1) & 0x01
	t.SoundType = b[0] & 0x01
	if t.SoundFormat != soundAAC {
		return t, &UnsupportedCodecError{Kind: media.Audio, Codec: audioCodecName(b)}
	}
	if len(b) < 2 {
		return t, errors.New("flv: AAC audio tag of 1 byte, need 2")
	}
	t.AACPacketType = b[1]
	if t.AACPacketType > aacRaw {
		return t, fmt.Errorf("flv: invalid AACPacketType %d", t.AACPacketType)
	}
	t.Data = b[2:]
	return t, nil
}

func audioCodecName(b []byte) string {
	switch b[0] >> 4 {
	case soundPCM:
		return "Linear PCM"
	case soundADPCM:
		return "ADPCM"
	case soundMP3:
		return "MP3"
	case soundPCMLE:
		return "Linear PCM little endian"
	case soundNelly16k, soundNelly8k, soundNelly:
		return "Nellymoser"
	case soundG711A:
		return "G.711 A-law"
	case soundG711U:
		return "G.711 mu-law"
	case soundExHeader:
		if b[0]&0x0f == exAudioMultitrck {
			return "enhanced RTMP multitrack audio"
		}
		if len(b) >= 5 {
			switch cc := fourCCString(b[1:5]); cc {
			case "Opus":
				return "Opus (enhanced RTMP)"
			case "mp4a":
				return "AAC (enhanced RTMP mp4a)"
			case ".mp3":
				return "MP3 (enhanced RTMP)"
			case "fLaC":
				return "FLAC (enhanced RTMP)"
			case "ac-3":
				return "AC-3 (enhanced RTMP)"
			case "ec-3":
				return "E-AC-3 (enhanced RTMP)"
			default:
				return fmt.Sprintf("enhanced RTMP audio FourCC %q", cc)
			}
		}
		return "enhanced RTMP audio"
	case soundSpeex:
		return "Speex"
	case soundMP38k:
		return "MP3 8 kHz"
	case soundDeviceSpec:
		return "device-specific sound"
	}
	return fmt.Sprintf("FLV sound format %d", b[0]>>4)
}
