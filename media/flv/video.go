package flv

import (
	"bytes"
	"fmt"
	"time"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/avc"
	"github.com/banyan-live/banyan/media/hevc"
	"github.com/banyan-live/banyan/media/vparams"
)

// Video handles the body of one RTMP video message with timestamp ts (ms).
func (c *Converter) Video(ts uint32, body []byte) error {
	tag, err := ParseVideoTag(body)
	if err != nil {
		return c.refuse(ts, err)
	}
	if tag.FrameType == FrameCommand {
		return nil
	}
	switch tag.PacketType {
	case AVCSequenceHeader:
		return c.videoConfig(tag.Codec, tag.Data)
	case AVCEndOfSequence:
		// The encoder ended the coded sequence; whatever follows must
		// start with an IDR to be decodable.
		if c.haveVideo {
			c.waitKey = true
			c.loggedWait = false
			c.log.Info("rtmp: " + codecName(c.vcfg.VideoCodec()) + " end of sequence")
		}
		return nil
	case AVCIgnore:
		return nil
	}
	if tag.Codec == media.AV1 {
		return c.av1Frame(ts, tag.Data)
	}
	if !c.haveVideo || tag.Codec != c.vcfg.VideoCodec() {
		c.dropBeforeConfig(tag.Codec)
		return nil
	}
	nalus, err := avc.SplitAVCC(nil, tag.Data, c.lengthSize, c.maxNAL)
	if err != nil {
		return fmt.Errorf("flv: video frame: %w", err)
	}
	if len(nalus) == 0 {
		return nil // empty frame: nothing to decode
	}
	key := false
	for _, n := range nalus {
		if isRandomAccess(tag.Codec, n) {
			key = true
			break
		}
	}
	if c.waitKey && !key {
		c.dropUntilKey()
		return nil
	}
	if key {
		if err := c.inbandConfig(nalus); err != nil {
			return err
		}
	}
	return c.writeVideo(ts, tag.CTS, key, nalus)
}

// dropBeforeConfig drops a frame that came before its codec's
// configuration, logged once.
func (c *Converter) dropBeforeConfig(codec media.Codec) {
	c.stats.DroppedVideo++
	if !c.loggedNoV {
		c.loggedNoV = true
		c.log.Warn("rtmp: video before the " + codecName(codec) + " sequence header dropped")
	}
}

// dropUntilKey drops an inter frame while the decoder needs a key frame.
func (c *Converter) dropUntilKey() {
	c.stats.DroppedVideo++
	if !c.loggedWait {
		c.loggedWait = true
		c.log.Info("rtmp: waiting for an IDR frame, dropping inter frames")
	}
}

// writeVideo hands the sink one frame of the current configuration.
func (c *Converter) writeVideo(ts uint32, cts int32, key bool, units [][]byte) error {
	c.waitKey = c.waitKey && !key
	dts, _, err := c.timestamp(&c.video, ts)
	if err != nil {
		return err
	}
	c.stats.VideoAUs++
	if key {
		c.stats.Keyframes++
	}
	return c.sink.WriteAU(media.AccessUnit{
		Kind:  media.Video,
		DTS:   dts,
		PTS:   dts + time.Duration(cts)*time.Millisecond,
		Key:   key,
		NALUs: units,
	})
}

// codecName is the name the FLV and enhanced RTMP specs give the codec.
func codecName(c media.Codec) string {
	switch c {
	case media.H265:
		return "HEVC"
	case media.AV1:
		return "AV1"
	}
	return "AVC"
}

func isRandomAccess(codec media.Codec, nalu []byte) bool {
	if codec == media.H265 {
		return hevc.IsIRAP(hevc.NALUType(nalu))
	}
	return avc.NALUType(nalu) == avc.NALUTypeIDR
}

// videoConfig handles a sequence header: an AVCDecoderConfigurationRecord,
// an HEVCDecoderConfigurationRecord or an AV1CodecConfigurationRecord.
func (c *Converter) videoConfig(codec media.Codec, data []byte) error {
	var cfg media.VideoConfig
	var lengthSize, nSets int
	switch codec {
	case media.AV1:
		return c.av1Config(data)
	case media.H265:
		rec, err := hevc.ParseDecoderConfig(data)
		if err != nil {
			return fmt.Errorf("flv: HEVC sequence header: %w", err)
		}
		if len(rec.VPS) == 0 || len(rec.SPS) == 0 || len(rec.PPS) == 0 {
			return fmt.Errorf("flv: HEVC sequence header has %d VPS, %d SPS and %d PPS, need one of each", len(rec.VPS), len(rec.SPS), len(rec.PPS))
		}
		cfg = media.VideoConfig{Codec: media.H265, VPS: rec.VPS[0], SPS: rec.SPS[0], PPS: rec.PPS[0]}
		lengthSize, nSets = rec.LengthSize, len(rec.VPS)+len(rec.SPS)+len(rec.PPS)
	default:
		rec, err := avc.ParseDecoderConfig(data)
		if err != nil {
			return fmt.Errorf("flv: AVC sequence header: %w", err)
		}
		if len(rec.SPS) == 0 || len(rec.PPS) == 0 {
			return fmt.Errorf("flv: AVC sequence header has %d SPS and %d PPS, need one of each", len(rec.SPS), len(rec.PPS))
		}
		cfg = media.VideoConfig{SPS: rec.SPS[0], PPS: rec.PPS[0]}
		lengthSize, nSets = rec.LengthSize, len(rec.SPS)+len(rec.PPS)
	}
	if c.haveVideo && c.lengthSize == lengthSize && sameVideoConfig(c.vcfg, cfg) {
		return nil // encoders repeat the header; not a new epoch
	}
	desc, err := describeVideo(cfg)
	if err != nil {
		return fmt.Errorf("flv: %v sequence header: %w", codec, err)
	}
	if want := 2 + min(len(cfg.VPS), 1); nSets > want {
		c.log.Warn("rtmp: video sequence header has several parameter sets of a kind, using the first", "sets", nSets)
	}
	if err := c.setVideoConfig(cfg); err != nil {
		return err
	}
	c.lengthSize = lengthSize
	c.waitKey = true
	c.loggedWait = false
	c.log.Info("rtmp: video config", append(desc, "nalu_length_size", lengthSize)...)
	return nil
}

// setVideoConfig hands the sink a copy of cfg and makes it current.
func (c *Converter) setVideoConfig(cfg media.VideoConfig) error {
	// Own the parameter sets: they are kept across frames.
	cfg.VPS, cfg.SPS, cfg.PPS = bytes.Clone(cfg.VPS), bytes.Clone(cfg.SPS), bytes.Clone(cfg.PPS)
	cfg.SeqHeader = bytes.Clone(cfg.SeqHeader)
	if err := c.sink.VideoConfig(cfg); err != nil {
		return err
	}
	c.haveVideo = true
	c.vcfg = cfg
	c.stats.VideoConfigs++
	return nil
}

// inbandConfig applies parameter sets a keyframe carries in-band when they
// differ from the current ones (an encoder changed resolution or profile
// without a new sequence header): the packager drops them from the
// samples, so they must reach it as a new configuration, which starts a
// new epoch at this keyframe. Sets that do not parse are ignored (the
// sequence header's stay in force) and logged once.
func (c *Converter) inbandConfig(nalus [][]byte) error {
	next := c.vcfg
	for _, n := range nalus {
		if next.VideoCodec() == media.H265 {
			switch hevc.NALUType(n) {
			case hevc.NALUTypeVPS:
				next.VPS = n
			case hevc.NALUTypeSPS:
				next.SPS = n
			case hevc.NALUTypePPS:
				next.PPS = n
			}
			continue
		}
		switch avc.NALUType(n) {
		case avc.NALUTypeSPS:
			next.SPS = n
		case avc.NALUTypePPS:
			next.PPS = n
		}
	}
	if sameVideoConfig(c.vcfg, next) {
		return nil
	}
	desc, err := describeVideo(next)
	if err == nil {
		// The sink refusing them is no reason to end the publish either;
		// a sink that is gone fails the frame that follows.
		err = c.setVideoConfig(next)
	}
	if err != nil {
		if !c.loggedBadPS {
			c.loggedBadPS = true
			c.log.Warn("rtmp: unusable in-band parameter sets ignored", "err", err)
		}
		return nil
	}
	c.stats.InbandConfigs++
	c.log.Info("rtmp: in-band parameter sets changed, new epoch", desc...)
	return nil
}

func sameVideoConfig(a, b media.VideoConfig) bool {
	return a.VideoCodec() == b.VideoCodec() && bytes.Equal(a.VPS, b.VPS) &&
		bytes.Equal(a.SPS, b.SPS) && bytes.Equal(a.PPS, b.PPS) && bytes.Equal(a.SeqHeader, b.SeqHeader)
}

// describeVideo checks a configuration as the packager will and returns
// log attributes naming it.
func describeVideo(cfg media.VideoConfig) ([]any, error) {
	in, err := vparams.Parse(cfg)
	if err != nil {
		return nil, err
	}
	return []any{"codec", in.Codec, "width", in.Width, "height", in.Height, "fps", in.FPS}, nil
}
