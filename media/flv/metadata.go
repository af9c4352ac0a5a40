package flv

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
)

// Metadata is what an encoder announces in onMetaData. It is informative
// only (logging, dashboards): the media path relies on the sequence
// headers, never on these numbers.
type Metadata struct {
	Width, Height   int
	FrameRate       float64
	VideoBitrate    float64 // kbit/s as announced
	AudioBitrate    float64 // kbit/s as announced
	VideoCodec      string  // "7", "avc1", … as announced
	AudioCodec      string  // "10", "mp4a", … as announced
	AudioSampleRate int
	AudioChannels   int
	Encoder         string
}

// maxMetaString bounds announced strings: they end up in logs.
const maxMetaString = 128

// ParseMetadata parses the body of an onMetaData data message: either the
// @setDataFrame payload ("onMetaData" followed by an ECMA array or object)
// or the bare object. Unknown keys are ignored; values of the wrong type
// or out of range are left zero.
func ParseMetadata(b []byte) (Metadata, error) {
	var md Metadata
	vals, err := DecodeAMF0(b)
	var props map[string]any
	for _, v := range vals {
		if m, ok := v.(map[string]any); ok {
			props = m
			break
		}
	}
	if props == nil {
		if err != nil {
			return md, fmt.Errorf("flv: metadata: %w", err)
		}
		return md, errors.New("flv: metadata: no object")
	}
	md.Width = metaInt(props["width"])
	md.Height = metaInt(props["height"])
	md.FrameRate = metaFloat(props["framerate"])
	if md.FrameRate == 0 {
		md.FrameRate = metaFloat(props["fps"])
	}
	md.VideoBitrate = metaFloat(props["videodatarate"])
	md.AudioBitrate = metaFloat(props["audiodatarate"])
	md.VideoCodec = metaString(props["videocodecid"])
	md.AudioCodec = metaString(props["audiocodecid"])
	md.AudioSampleRate = metaInt(props["audiosamplerate"])
	md.AudioChannels = metaInt(props["audiochannels"])
	if md.AudioChannels == 0 {
		if st, ok := props["stereo"].(bool); ok {
			md.AudioChannels = 1
			if st {
				md.AudioChannels = 2
			}
		}
	}
	md.Encoder = metaString(props["encoder"])
	return md, nil
}

// LogValue implements slog.LogValuer.
func (m Metadata) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("width", m.Width),
		slog.Int("height", m.Height),
		slog.Float64("fps", m.FrameRate),
		slog.Float64("video_kbps", m.VideoBitrate),
		slog.Float64("audio_kbps", m.AudioBitrate),
		slog.String("video_codec", m.VideoCodec),
		slog.String("audio_codec", m.AudioCodec),
		slog.Int("audio_rate", m.AudioSampleRate),
		slog.Int("audio_channels", m.AudioChannels),
		slog.String("encoder", m.Encoder),
	)
}

func metaFloat(v any) float64 {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
		return 0
	}
	return f
}

func metaInt(v any) int {
	return int(metaFloat(v))
}

func metaString(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > maxMetaString {
			x = x[:maxMetaString]
		}
		return strings.ToValidUTF8(x, "?")
	case float64:
		if f := metaFloat(x); f > 0 || x == 0 {
			if f != math.Trunc(f) {
				// 'f' would spell out a tiny fraction in hundreds of
				// digits; 'g' stays short.
				return strconv.FormatFloat(f, 'g', 6, 64)
			}
			return strconv.FormatFloat(f, 'f', -1, 64) // at most 10 digits (f ≤ 1e9)
		}
	}
	return ""
}
