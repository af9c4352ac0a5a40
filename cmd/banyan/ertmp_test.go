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
	"github.com/banyan-live/banyan/media/hevc"
)

// publishERTMP sends m to an RTMP ingest the way OBS 30+ sends HEVC: over
// enhanced RTMP (ExVideoTagHeader with FourCC "hvc1": a SequenceStart with
// the HEVCDecoderConfigurationRecord, CodedFrames with a composition time
// where PTS differs from DTS, CodedFramesX where it does not) and AAC in
// legacy audio tags, paced at the media's own rate. ffmpeg 5.1 cannot send
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

	ptl, err := hevc.PTLFromSPS(m.Video.SPS)
	if err != nil {
		return err
	}
	rec, err := hevc.DecoderConfig{PTL: ptl, VPS: [][]byte{m.Video.VPS}, SPS: [][]byte{m.Video.SPS}, PPS: [][]byte{m.Video.PPS}}.Marshal()
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
	if err := video(0, append([]byte{exHeader | frameKey | seqStart, 'h', 'v', 'c', '1'}, rec...)); err != nil {
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
		// clock: (PTS - DTS) of the frame.
		cts := int32((au.PTS - au.DTS + time.Millisecond/2) / time.Millisecond)
		if cts != 0 {
			hdr[0] |= codedFrames
			hdr = append(hdr, 'h', 'v', 'c', '1', byte(cts>>16), byte(cts>>8), byte(cts))
		} else {
			hdr[0] |= codedFramesX
			hdr = append(hdr, 'h', 'v', 'c', '1')
		}
		body := hdr
		for _, n := range au.NALUs {
			if hevc.NALUType(n) == hevc.NALUTypeAUD {
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
	if err := video(uint32((aus[len(aus)-1].DTS-origin)/time.Millisecond), []byte{exHeader | frameKey | 2, 'h', 'v', 'c', '1'}); err != nil {
		return fmt.Errorf("sequence end: %w", err)
	}
	if err := cc.DeleteStream(&message.NetStreamDeleteStream{StreamID: st.StreamID()}); err != nil {
		return fmt.Errorf("delete stream: %w", err)
	}
	return nil
}
