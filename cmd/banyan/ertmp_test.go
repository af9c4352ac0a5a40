package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"time"

	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/hevc"
)

// publishERTMP sends m to an RTMP ingest the way OBS 30+ sends HEVC and
// AV1: over enhanced RTMP (ExVideoTagHeader with FourCC "hvc1": a
// SequenceStart with the HEVCDecoderConfigurationRecord, CodedFrames with a
// composition time where PTS differs from DTS, CodedFramesX where it does
// not; FourCC "av01": a SequenceStart with the av1C record, CodedFrames of
// one temporal unit each, without a composition time) and AAC in legacy
// audio tags, paced at the media's own rate. ffmpeg 5.1 cannot send
// enhanced RTMP; this is the test's stand-in for OBS, on go-rtmp's client.
func publishERTMP(ctx context.Context, rtmpURL, key string, m e2e.TestMedia) error {
	u, err := url.Parse(rtmpURL)
	if err != nil {
		return err
	}
	cc, err := rtmp.Dial("rtmp", u.Host, &rtmp.ConnConfig{})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer cc.Close()
	stop := context.AfterFunc(ctx, func() { cc.Close() })
	defer stop()
	if err := cc.Connect(&message.NetConnectionConnect{Command: message.NetConnectionConnectCommand{
		App: "live", Type: "nonprivate", FlashVer: "FMLE/3.0 (compatible; obs-studio/30.0)", TCURL: rtmpURL,
	}}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	st, err := cc.CreateStream(nil, 128)
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	if err := st.Publish(&message.NetStreamPublish{PublishingName: key, PublishingType: "live"}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}

	fourCC, rec, err := ertmpRecord(m.Video)
	if err != nil {
		return err
	}
	video := func(ts uint32, body []byte) error {
		return st.Write(6, ts, &message.VideoMessage{Payload: bytes.NewReader(body)})
	}
	audio := func(ts uint32, body []byte) error {
		return st.Write(4, ts, &message.AudioMessage{Payload: bytes.NewReader(body)})
	}
	const (
		exHeader       = 0x80
		frameKey       = 1 << 4
		frameInter     = 2 << 4
		seqStart       = 0
		codedFrames    = 1
		codedFramesX   = 3
		aacSoundHeader = 0xaf // AAC, 44 kHz, 16-bit, stereo (fixed for AAC)
	)
	if err := video(0, append(append([]byte{exHeader | frameKey | seqStart}, fourCC...), rec...)); err != nil {
		return fmt.Errorf("sequence start: %w", err)
	}
	if err := audio(0, append([]byte{aacSoundHeader, 0}, m.Audio.ASC...)); err != nil {
		return fmt.Errorf("AAC header: %w", err)
	}

	aus := append(slices.Clone(m.VideoAUs), m.AudioAUs...)
	slices.SortStableFunc(aus, func(a, b media.AccessUnit) int { return cmp.Compare(a.DTS, b.DTS) })
	origin := aus[0].DTS
	start := time.Now()
	for _, au := range aus {
		ts := au.DTS - origin
		if d := time.Until(start.Add(ts)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ms := uint32(ts / time.Millisecond)
		if au.Kind == media.Audio {
			if err := audio(ms, append([]byte{aacSoundHeader, 1}, au.Frame...)); err != nil {
				return fmt.Errorf("audio: %w", err)
			}
			continue
		}
		hdr := []byte{exHeader | frameInter}
		if au.Key {
			hdr[0] = exHeader | frameKey
		}
		// Composition time in ms, rounded as OBS does from its 90 kHz
		// clock: (PTS - DTS) of the frame. AV1 has none.
		cts := int32((au.PTS - au.DTS + time.Millisecond/2) / time.Millisecond)
		switch {
		case m.Video.Codec == media.AV1:
			hdr[0] |= codedFrames
			hdr = append(hdr, fourCC...)
		case cts != 0:
			hdr[0] |= codedFrames
			hdr = append(append(hdr, fourCC...), byte(cts>>16), byte(cts>>8), byte(cts))
		default:
			hdr[0] |= codedFramesX
			hdr = append(hdr, fourCC...)
		}
		body := hdr
		if m.Video.Codec == media.AV1 {
			body = av1.AppendSample(body, au.NALUs)
		}
		for _, n := range au.NALUs {
			if m.Video.Codec == media.AV1 || hevc.NALUType(n) == hevc.NALUTypeAUD {
				continue
			}
			body = binary.BigEndian.AppendUint32(body, uint32(len(n)))
			body = append(body, n...)
		}
		if err := video(ms, body); err != nil {
			return fmt.Errorf("video: %w", err)
		}
	}
	// OBS ends with a SequenceEnd, then deletes the stream.
	if err := video(uint32((aus[len(aus)-1].DTS-origin)/time.Millisecond), append([]byte{exHeader | frameKey | 2}, fourCC...)); err != nil {
		return fmt.Errorf("sequence end: %w", err)
	}
	if err := cc.DeleteStream(&message.NetStreamDeleteStream{StreamID: st.StreamID()}); err != nil {
		return fmt.Errorf("delete stream: %w", err)
	}
	return nil
}

// ertmpRecord is the FourCC and sequence-start record of an HEVC or AV1
// configuration.
func ertmpRecord(v media.VideoConfig) (string, []byte, error) {
	if v.Codec == media.AV1 {
		// marker and version, then profile/level and tier/depth/chroma
		// bytes (the ingest reads the sequence header, not these).
		return "av01", av1.AppendSample([]byte{0x81, 0x00, 0x0c, 0x00}, [][]byte{v.SeqHeader}), nil
	}
	ptl, err := hevc.PTLFromSPS(v.SPS)
	if err != nil {
		return "", nil, err
	}
	rec, err := hevc.DecoderConfig{PTL: ptl, VPS: [][]byte{v.VPS}, SPS: [][]byte{v.SPS}, PPS: [][]byte{v.PPS}}.Marshal()
	return "hvc1", rec, err
}
