package flv

import (
	"bytes"
	"fmt"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/vparams"
)

// av1Config handles an enhanced-RTMP AV1 sequence start: an av1C record.
// OBS may send the record without its config OBUs; the sequence header
// then comes with the first key frame, which configures the track.
func (c *Converter) av1Config(data []byte) error {
	rec, err := av1.ParseConfigRecord(data)
	if err != nil {
		return fmt.Errorf("flv: AV1 sequence header: %w", err)
	}
	if rec.SeqHeader == nil {
		c.log.Info("rtmp: AV1 sequence start without a sequence header, waiting for one with a key frame")
		return nil
	}
	if _, err := c.setAV1(rec.SeqHeader); err != nil {
		return fmt.Errorf("flv: AV1 sequence header: %w", err)
	}
	return nil
}

// setAV1 makes sh the track's configuration unless it already is, and
// says whether it changed. A new configuration starts a new epoch at the
// next key frame.
func (c *Converter) setAV1(sh []byte) (bool, error) {
	if c.haveVideo && c.vcfg.VideoCodec() == media.AV1 && bytes.Equal(c.vcfg.SeqHeader, sh) {
		return false, nil // encoders repeat it with every key frame
	}
	cfg := media.VideoConfig{Codec: media.AV1, SeqHeader: sh}
	in, err := vparams.Parse(cfg)
	if err != nil {
		return false, err
	}
	if err := c.setVideoConfig(cfg); err != nil {
		return false, err
	}
	c.av1Still, c.lengthSize = in.ReducedStill, 0
	c.waitKey, c.loggedWait = true, false
	c.log.Info("rtmp: video config", "codec", in.Codec, "width", in.Width, "height", in.Height, "fps", in.FPS)
	return true, nil
}

// av1Frame handles one temporal unit. A sequence header in it that differs
// from the current one (a new resolution or profile without a new
// sequence start) becomes the new configuration, as in-band parameter
// sets do for H.264.
func (c *Converter) av1Frame(ts uint32, data []byte) error {
	obus, err := av1.Split(nil, data)
	if err != nil {
		return fmt.Errorf("flv: AV1 frame: %w", err)
	}
	key := av1.IsKey(obus, c.av1Still)
	if sh := av1.SequenceHeader(obus); sh != nil && key {
		first := !c.haveVideo || c.vcfg.VideoCodec() != media.AV1
		changed, err := c.setAV1(sh)
		if err != nil {
			if first {
				return fmt.Errorf("flv: AV1 sequence header: %w", err)
			}
			// As for H.264: the old configuration stays in force.
			if !c.loggedBadPS {
				c.loggedBadPS = true
				c.log.Warn("rtmp: unusable in-band AV1 sequence header ignored", "err", err)
			}
		} else if changed && !first {
			c.stats.InbandConfigs++
		}
	}
	if !c.haveVideo || c.vcfg.VideoCodec() != media.AV1 {
		c.dropBeforeConfig(media.AV1)
		return nil
	}
	if av1.SampleSize(obus) == 0 {
		return nil // a temporal delimiter alone: nothing to decode
	}
	if c.waitKey && !key {
		c.dropUntilKey()
		return nil
	}
	return c.writeVideo(ts, 0, key, obus)
}
