package whip

import "time"

// maxMediaTime bounds the media time an AU may carry (a day); RTP
// timestamps that point further are a broken or hostile sender, and their
// AUs are dropped rather than handed to the packager.
const maxMediaTime = 24 * time.Hour

// clock maps one track's RTP timestamps onto the publish's media
// timeline: media time = offset + (extended ts - base) / rate. base is the
// first packet's timestamp and offset its arrival after the publish's
// first packet, so tracks start aligned by arrival; RTCP sender reports
// later correct the audio offset (see syncAudio).
type clock struct {
	rate    int64
	started bool
	base    int64 // extended timestamp of the first packet
	highest int64 // highest extended timestamp seen
	offset  time.Duration

	// The last sender report: the NTP wall clock (as a duration since
	// 1900) at the extended RTP timestamp srRTP.
	haveSR bool
	srNTP  time.Duration
	srRTP  int64
}

func newClock(rate int) *clock { return &clock{rate: int64(rate)} }

// start fixes the timeline origin at the first packet.
func (c *clock) start(ts uint32, offset time.Duration) {
	if c.started {
		return
	}
	c.started, c.base, c.highest, c.offset = true, int64(ts), int64(ts), offset
}

// extend maps a 32-bit timestamp to the nearer of its wraps around the
// highest seen. B-frames and reordering move backwards; that is fine.
func (c *clock) extend(ts uint32) int64 {
	ext := c.highest + int64(int32(ts-uint32(c.highest)))
	if ext > c.highest {
		c.highest = ext
	}
	return ext
}

// ticks is an extended timestamp relative to base.
func (c *clock) ticks(ts uint32) int64 { return c.extend(ts) - c.base }

// toDuration converts ticks of this clock to a duration without overflow.
func (c *clock) toDuration(ticks int64) time.Duration {
	sec, rem := ticks/c.rate, ticks%c.rate
	if sec > int64(maxMediaTime/time.Second) || sec < -int64(maxMediaTime/time.Second) {
		return maxMediaTime + time.Second // out of range; the caller drops it
	}
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(c.rate)
}

// media is the media time of relative ticks.
func (c *clock) media(ticks int64) time.Duration { return c.offset + c.toDuration(ticks) }

// tick is one tick of this clock, rounded up, the smallest step between
// two AUs that the packager will not merge.
func (c *clock) tick() time.Duration {
	return (time.Second + time.Duration(c.rate) - 1) / time.Duration(c.rate)
}

// senderReport records an RTCP SR. It is ignored before the first packet
// (the timestamp could not be placed on the extended timeline).
func (c *clock) senderReport(ntp uint64, rtpTS uint32) {
	if !c.started {
		return
	}
	c.haveSR = true
	c.srNTP = ntpDuration(ntp)
	c.srRTP = c.highest + int64(int32(rtpTS-uint32(c.highest)))
}

// wallAt is the sender's wall clock at an extended timestamp, by the last
// SR.
func (c *clock) wallAt(ext int64) time.Duration {
	return c.srNTP + c.toDuration(ext-c.srRTP)
}

// ntpDuration converts a 64-bit NTP timestamp (32.32 fixed point seconds
// since 1900) to a duration since 1900. It overflows in 2192.
func ntpDuration(ntp uint64) time.Duration {
	sec := ntp >> 32
	frac := ntp & 0xffffffff
	return time.Duration(sec)*time.Second + time.Duration((frac*uint64(time.Second))>>32)
}

// syncSkew is the audio/video misalignment below which a sender report
// does not move the audio (SR timing itself jitters by a few ms).
const syncSkew = 20 * time.Millisecond

// maxSyncCorrection bounds how far one SR may move the audio: a larger
// disagreement is a sender whose clocks cannot be trusted.
const maxSyncCorrection = 3 * time.Second

// syncAudio moves the audio timeline so that audio and video that the
// sender captured at the same wall-clock instant get the same media time,
// by their last sender reports. Video is the reference (its timeline never
// moves). It returns the correction applied (0 when none).
func syncAudio(video, audio *clock) time.Duration {
	if !video.started || !audio.started || !video.haveSR || !audio.haveSR {
		return 0
	}
	// The sender's wall clock at video media time 0 …
	zero := video.wallAt(video.base) - video.offset
	// … puts the audio base at this media time.
	want := audio.wallAt(audio.base) - zero
	d := want - audio.offset
	if d < 0 && -d < syncSkew || d >= 0 && d < syncSkew || d > maxSyncCorrection || -d > maxSyncCorrection {
		return 0
	}
	audio.offset = want
	return d
}
