package cmaf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/hevc"
	"github.com/banyan-live/banyan/media/vparams"
)

// videoParams is a validated H.264, H.265 or AV1 configuration.
type videoParams struct {
	codecID       media.Codec // H264, H265 or AV1
	vps, sps, pps []byte
	seqHdr        []byte             // AV1 sequence header OBU
	ptl           [hevc.PTLSize]byte // H265: the SPS's general profile_tier_level
	codec         string             // avc1.PPCCLL, hvc1.P.C.TL.CC or av01.P.LLT.DD
	width, height int
	defDur        uint32 // one frame at the SPS frame rate (or 30 fps), in 90 kHz ticks
}

func newVideoParams(c media.VideoConfig) (*videoParams, error) {
	in, err := vparams.Parse(c)
	if err != nil {
		return nil, err
	}
	v := &videoParams{codecID: c.VideoCodec(), codec: in.Codec, ptl: in.PTL, width: in.Width, height: in.Height}
	v.defDur = uint32(VideoTimescale / 30)
	if fps := in.FPS; fps >= 1 && fps <= 1000 && !math.IsNaN(fps) {
		v.defDur = uint32(math.Round(VideoTimescale / fps))
	}
	v.vps, v.sps, v.pps = bytes.Clone(c.VPS), bytes.Clone(c.SPS), bytes.Clone(c.PPS)
	v.seqHdr = bytes.Clone(c.SeqHeader)
	return v, nil
}

func (v *videoParams) equal(c media.VideoConfig) bool {
	return v.codecID == c.VideoCodec() && bytes.Equal(v.vps, c.VPS) && bytes.Equal(v.sps, c.SPS) &&
		bytes.Equal(v.pps, c.PPS) && bytes.Equal(v.seqHdr, c.SeqHeader)
}

// mp4Codec is the sample entry of the video track.
func (v *videoParams) mp4Codec() codecs.Codec {
	switch v.codecID {
	case media.H265:
		return &codecs.H265{VPS: v.vps, SPS: v.sps, PPS: v.pps}
	case media.AV1:
		return &codecs.AV1{SequenceHeader: v.seqHdr}
	}
	return &codecs.H264{SPS: v.sps, PPS: v.pps}
}

// audioParams is a validated audio configuration.
type audioParams struct {
	src      media.AudioConfig // as given, with ASC cloned, for equality
	rate     int               // track timescale
	channels int
	codec    string // mp4a.40.N or Opus
	mp4      codecs.Codec
	defDur   uint32 // one frame, in timescale ticks
	// silence is one silent raw AAC frame for filling holes in the audio
	// (AAC-LC, 1024 samples, mono or stereo), nil when there is none.
	silence []byte
}

// Silent AAC-LC frames (no spectral data, independent of the sample rate),
// as ffmpeg's AAC encoder writes silence: a single_channel_element, and a
// channel_pair_element.
var (
	silentAACMono   = []byte{0x01, 0x18, 0x20, 0x07}
	silentAACStereo = []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c}
)

func newAudioParams(c media.AudioConfig) (*audioParams, error) {
	a := &audioParams{src: c}
	a.src.ASC = bytes.Clone(c.ASC)
	switch c.Codec {
	case media.AAC:
		if len(c.ASC) < 2 || len(c.ASC) > MaxASCSize {
			return nil, fmt.Errorf("AAC ASC of %d bytes", len(c.ASC))
		}
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(c.ASC); err != nil {
			return nil, fmt.Errorf("parse AAC ASC: %w", err)
		}
		if asc.ChannelConfig == 0 {
			return nil, errors.New("AAC with a program config element (channel config 0) is not supported")
		}
		// The codec string names the ASC's own audio object type: 2 (LC),
		// or 5 / 29 for explicitly signalled HE-AAC v1 / v2.
		a.codec = "mp4a.40." + strconv.Itoa(int(c.ASC[0]>>3))
		a.mp4 = &codecs.MPEG4Audio{Config: asc}
		a.rate = c.SampleRate
		if a.rate <= 0 {
			a.rate = asc.SampleRate
			if asc.ExtensionSampleRate > 0 {
				a.rate = asc.ExtensionSampleRate
			}
		}
		a.channels = c.Channels
		if a.channels <= 0 {
			a.channels = asc.ChannelCount //nolint:staticcheck // set by Unmarshal from ChannelConfig
		}
		spf := 1024
		if asc.FrameLengthFlag {
			spf = 960
		}
		if asc.SampleRate > 0 {
			a.defDur = uint32(int64(spf) * int64(a.rate) / int64(asc.SampleRate))
		}
		if asc.Type == mpeg4audio.ObjectTypeAACLC && asc.ExtensionType == 0 && spf == 1024 && a.rate == asc.SampleRate {
			switch asc.ChannelConfig {
			case 1:
				a.silence = silentAACMono
			case 2:
				a.silence = silentAACStereo
			}
		}
	case media.Opus:
		// Opus in MP4 always uses a 48 kHz timescale; mediacommon writes
		// channel mapping family 0, which carries mono or stereo only.
		a.channels = c.Channels
		if a.channels == 0 {
			a.channels = 2
		}
		if a.channels < 1 || a.channels > 2 {
			return nil, fmt.Errorf("Opus with %d channels is not supported (1 or 2)", c.Channels)
		}
		a.rate = 48000
		// RFC 6381 names an MP4 track by its sample entry, "Opus"
		// (Encapsulation of Opus in ISOBMFF, 4.4): Safari accepts only
		// that spelling, and it is what an HLS CODECS attribute carries.
		// Players that want "opus" try it themselves (mse.SupportedMIME).
		a.codec = "Opus"
		a.mp4 = &codecs.Opus{ChannelCount: a.channels}
		a.defDur = 960
	default:
		return nil, fmt.Errorf("unsupported audio codec %v", c.Codec)
	}
	if a.rate < minAudioRate || a.rate > maxAudioRate {
		return nil, fmt.Errorf("sample rate %d out of range", a.rate)
	}
	if a.defDur == 0 {
		a.defDur = uint32(a.rate / 50)
	}
	return a, nil
}

func (a *audioParams) equal(c media.AudioConfig) bool {
	s := a.src
	return s.Codec == c.Codec && bytes.Equal(s.ASC, c.ASC) && s.SampleRate == c.SampleRate && s.Channels == c.Channels
}

// buildInit marshals the init segment of an epoch.
func buildInit(epoch uint32, v *videoParams, a *audioParams) (Init, error) {
	in := Init{Epoch: epoch}
	var init fmp4.Init
	if v != nil {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{
			ID:        VideoTrackID,
			TimeScale: VideoTimescale,
			Codec:     v.mp4Codec(),
		})
		in.VideoCodec, in.Width, in.Height = v.codec, v.width, v.height
	}
	if a != nil {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{
			ID:        AudioTrackID,
			TimeScale: uint32(a.rate),
			Codec:     a.mp4,
		})
		in.AudioCodec, in.SampleRate, in.Channels = a.codec, a.rate, a.channels
	}
	in.Codecs = joinCodecs(in.VideoCodec, in.AudioCodec)
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return Init{}, fmt.Errorf("marshal init: %w", err)
	}
	in.Data = buf.Bytes()
	if v != nil && v.codecID == media.H265 {
		if err := patchHvcC(in.Data, v.ptl); err != nil {
			return Init{}, err
		}
	}
	return in, nil
}

// patchHvcC writes the SPS's profile_tier_level into the init's hvcC.
// mediacommon v2.9.5 fills it from the SPS's escaped bytes (an emulation
// prevention byte shifts the constraint flags: x265's Main profile read
// "hvc1.1.6.L60.03.00.90.00.00.03" back from the init instead of
// "hvc1.1.6.L60.90") and leaves out the profile space and tier. Players
// build the MSE codec string from the hvcC, HLS CODECS from the SPS: they
// must agree.
func patchHvcC(init []byte, ptl [hevc.PTLSize]byte) error {
	i := bytes.Index(init, []byte("hvcC"))
	if i < 4 {
		return errors.New("marshal init: no hvcC box")
	}
	size := int(binary.BigEndian.Uint32(init[i-4:]))
	if size < 8+1+hevc.PTLSize || i-4+size > len(init) {
		return fmt.Errorf("marshal init: hvcC box of %d bytes", size)
	}
	copy(init[i+4+1:], ptl[:])
	return nil
}
