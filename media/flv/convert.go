package flv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/banyan-live/banyan/media"
)

// Defaults of Config.
const (
	DefaultMaxJump  = 5 * time.Second
	DefaultMaxNALUs = 128
)

// backJump is how far a track may step backwards before it is treated as a
// timeline jump rather than a small glitch (which is clamped instead).
const backJump = time.Second

// DiscontinuitySink is implemented by sinks that want to know when the
// converter rebased the publish timeline. Discontinuity is called before
// the first access unit on the new timeline; at is that unit's DTS.
//
// How jumps are handled: RTMP timestamps are extended from 32-bit
// milliseconds to a 64-bit timeline (wrap-around is invisible). A
// timestamp more than MaxJump ahead of the newest one seen on any track, or
// more than 1 s behind the last one of its own track, is a jump: the whole
// timeline (both tracks, so A/V sync is kept) is shifted so that it
// continues one frame after where it stopped, and the sink is told. A
// smaller step backwards is clamped to last+1ms. Either way, DTS is
// strictly increasing per track.
type DiscontinuitySink interface {
	Discontinuity(at time.Duration) error
}

// MetadataSink is implemented by sinks that want the encoder's onMetaData.
type MetadataSink interface {
	Metadata(Metadata) error
}

// Config configures a Converter.
type Config struct {
	Sink   media.Sink
	Logger *slog.Logger
	// MaxJump is the largest forward step of the timeline that is taken
	// as real; larger steps are rebased (see DiscontinuitySink).
	MaxJump time.Duration
	// MaxNALUs bounds NAL units per video frame.
	MaxNALUs int
	// DropUnsupported makes a track of an unsupported codec (AV1 or VP9
	// video; MP3, Opus or an AAC other than LC/HE audio) be dropped
	// instead of failing: the publish goes on with the other track, the
	// codec is logged once and reported to a sink that is an
	// UnsupportedSink. An encoder whose publish fails reconnects in a
	// loop (OBS does, every few seconds); one that keeps streaming into
	// a refused track does not, and the broadcaster reads why on the
	// dashboard. When nothing is left to play (both tracks refused, or
	// one refused and no other configured within NothingPlayableWait of
	// its media) the call fails with ErrNothingPlayable.
	DropUnsupported bool
}

// NothingPlayableWait is how much media time of a refused track
// (Config.DropUnsupported) may pass without a configured track of the
// other kind before the publish is failed as having nothing to play.
const NothingPlayableWait = 5 * time.Second

// ErrNothingPlayable is returned (wrapping the *UnsupportedCodecError)
// when, with Config.DropUnsupported, no track is left to carry.
var ErrNothingPlayable = errors.New("flv: nothing playable")

// UnsupportedSink is implemented by sinks that want to know about a track
// the converter drops because its codec is unsupported (once per codec).
type UnsupportedSink interface {
	Unsupported(kind media.Kind, codec string)
}

// Stats counts what a Converter did.
type Stats struct {
	VideoAUs, AudioFrames, Keyframes uint64
	VideoConfigs, AudioConfigs       uint64
	// DroppedVideo counts frames dropped before the first sequence header
	// or while waiting for a keyframe; DroppedAudio frames before the AAC
	// sequence header.
	DroppedVideo, DroppedAudio uint64
	Discontinuities            uint64
	Clamped                    uint64 // timestamps nudged to keep DTS increasing
	// BackwardAudio counts AAC frames dropped because their timestamp
	// stepped back over audio already passed on.
	BackwardAudio uint64
	// UnsupportedVideo and UnsupportedAudio count messages dropped for
	// their codec (Config.DropUnsupported).
	UnsupportedVideo, UnsupportedAudio uint64
	// InbandConfigs counts parameter set changes taken from keyframes.
	InbandConfigs uint64
}

type track struct {
	started bool
	last    time.Duration
	step    time.Duration // recent frame interval, used when rebasing
}

// Converter turns FLV tag bodies of one publish into Sink calls. It is not
// safe for concurrent use: one publish, one goroutine.
//
// The Converter keeps sub-slices of the bodies it is given (NAL units,
// audio frames) in the access units it hands to the sink: callers must not
// reuse a body after passing it.
type Converter struct {
	sink    media.Sink
	log     *slog.Logger
	maxJump time.Duration
	maxNAL  int

	// video
	haveVideo   bool
	vcfg        media.VideoConfig // current parameter sets (owned)
	lengthSize  int               // NAL unit length prefix of the frames
	av1Still    bool              // AV1 reduced_still_picture_header: every frame is key
	waitKey     bool
	loggedNoV   bool
	loggedWait  bool
	loggedBadPS bool

	// audio
	haveAudio bool
	asc       []byte
	loggedNoA bool
	aclock    sampleClock

	// tracks dropped for their codec (Config.DropUnsupported)
	drop         bool
	refusedVideo string // the unsupported codec reported, "" if none
	refusedAudio string
	refusedAt    uint32 // RTMP time of the first refused message

	// timeline
	haveTS  bool
	lastRaw uint32
	ext     int64 // extended ms of the last timestamp
	base    int64 // ext of the first access unit
	offset  time.Duration
	newest  time.Duration
	video   track
	audio   track

	meta  Metadata
	stats Stats
}

// NewConverter returns a Converter writing to cfg.Sink.
func NewConverter(cfg Config) *Converter {
	c := &Converter{sink: cfg.Sink, log: cfg.Logger, maxJump: cfg.MaxJump, maxNAL: cfg.MaxNALUs, drop: cfg.DropUnsupported}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.maxJump <= 0 {
		c.maxJump = DefaultMaxJump
	}
	if c.maxNAL <= 0 {
		c.maxNAL = DefaultMaxNALUs
	}
	c.video.step = 33 * time.Millisecond
	c.audio.step = 21 * time.Millisecond
	return c
}

// Stats returns the counters so far.
func (c *Converter) Stats() Stats { return c.stats }

// Audio handles the body of one RTMP audio message with timestamp ts (ms).
func (c *Converter) Audio(ts uint32, body []byte) error {
	tag, err := ParseAudioTag(body)
	if err != nil {
		return c.refuse(ts, err)
	}
	if tag.AACPacketType == AACSequenceHeader {
		return c.refuse(ts, c.audioConfig(tag.Data))
	}
	if !c.haveAudio && c.refusedAudio != "" {
		// Frames of an AAC profile refused in its sequence header.
		return c.refuse(ts, &UnsupportedCodecError{Kind: media.Audio, Codec: c.refusedAudio})
	}
	if !c.haveAudio {
		c.stats.DroppedAudio++
		if !c.loggedNoA {
			c.loggedNoA = true
			c.log.Warn("rtmp: audio before the AAC sequence header dropped")
		}
		return nil
	}
	if len(tag.Data) == 0 {
		return nil
	}
	dts, back, err := c.timestamp(&c.audio, ts)
	if err != nil {
		return err
	}
	dts, ok := c.aclock.place(dts, back, c.stats.Discontinuities)
	if !ok {
		// Like the WHIP path: a frame that would overlap audio already
		// passed on is dropped, not squeezed in a millisecond later.
		c.stats.BackwardAudio++
		return nil
	}
	c.stats.AudioFrames++
	return c.sink.WriteAU(media.AccessUnit{
		Kind:  media.Audio,
		DTS:   dts,
		PTS:   dts,
		Key:   true,
		Frame: tag.Data,
	})
}

func (c *Converter) audioConfig(data []byte) error {
	if c.haveAudio && bytes.Equal(c.asc, data) {
		return nil
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(data); err != nil {
		if len(data) > 0 {
			switch ot := data[0] >> 3; ot {
			case 2, 5, 29, 31: // LC, SBR, PS; 31 escapes to an extended type
			default:
				return &UnsupportedCodecError{Kind: media.Audio, Codec: fmt.Sprintf("AAC object type %d", ot)}
			}
		}
		return fmt.Errorf("flv: AAC sequence header: %w", err)
	}
	c.asc = bytes.Clone(data)
	spf := int64(1024)
	if asc.FrameLengthFlag {
		spf = 960
	}
	// The core sample rate: with SBR a frame is 2048 output samples at
	// twice the rate, the same time.
	c.aclock = sampleClock{frame: spf, rate: int64(asc.SampleRate)}
	cfg := media.AudioConfig{
		Codec:      media.AAC,
		ASC:        c.asc,
		SampleRate: asc.SampleRate,
		Channels:   aacChannels(asc.ChannelConfig),
	}
	if err := c.sink.AudioConfig(cfg); err != nil {
		return err
	}
	c.haveAudio = true
	c.stats.AudioConfigs++
	c.log.Info("rtmp: audio config", "codec", "aac", "object_type", int(asc.Type),
		"sample_rate", cfg.SampleRate, "channels", cfg.Channels)
	return nil
}

// refuse handles err, the error of a message with RTMP time ts: with
// Config.DropUnsupported an *UnsupportedCodecError drops the message and
// its track (logged and told to the sink once per codec) unless nothing
// would be left to play; any other error, or nil, is returned as is.
func (c *Converter) refuse(ts uint32, err error) error {
	var ue *UnsupportedCodecError
	if !c.drop || !errors.As(err, &ue) {
		return err
	}
	refused, count := &c.refusedVideo, &c.stats.UnsupportedVideo
	otherKind, otherRefused, supported := media.Audio, c.refusedAudio != "" && !c.haveAudio, "H.264, HEVC, AV1"
	if ue.Kind == media.Audio {
		refused, count = &c.refusedAudio, &c.stats.UnsupportedAudio
		otherKind, otherRefused, supported = media.Video, c.refusedVideo != "" && !c.haveVideo, "AAC (LC, HE-AAC)"
	}
	*count++
	if c.refusedVideo == "" && c.refusedAudio == "" {
		c.refusedAt = ts
	}
	if *refused != ue.Codec {
		*refused = ue.Codec
		c.log.Warn(fmt.Sprintf("rtmp: unsupported %s codec, %s dropped; %s continues", ue.Kind, ue.Kind, otherKind),
			"codec", ue.Codec, "supported", supported)
		if us, ok := c.sink.(UnsupportedSink); ok {
			us.Unsupported(ue.Kind, ue.Codec)
		}
	}
	switch {
	case otherRefused: // and not replaced by a supported codec since
		return fmt.Errorf("%w: the video codec %s and the audio codec %s are both unsupported: %w",
			ErrNothingPlayable, c.refusedVideo, c.refusedAudio, ue)
	case !c.haveVideo && !c.haveAudio && time.Duration(int32(ts-c.refusedAt))*time.Millisecond >= NothingPlayableWait:
		return fmt.Errorf("%w: the %s codec %s is unsupported and no %s came in %v: %w",
			ErrNothingPlayable, ue.Kind, ue.Codec, otherKind, NothingPlayableWait, ue)
	}
	return nil
}

// Metadata parses an onMetaData body, logs it when it changes and passes it
// to the sink if the sink is a MetadataSink.
func (c *Converter) Metadata(body []byte) (Metadata, error) {
	md, err := ParseMetadata(body)
	if err != nil {
		return md, err
	}
	if md != c.meta {
		c.meta = md
		c.log.Info("rtmp: metadata", "meta", md)
	}
	if ms, ok := c.sink.(MetadataSink); ok {
		if err := ms.Metadata(md); err != nil {
			return md, err
		}
	}
	return md, nil
}

// timestamp maps an RTMP timestamp onto the publish timeline for one track.
// back reports a step backwards (or a repeat) that was clamped.
func (c *Converter) timestamp(tr *track, raw uint32) (t time.Duration, back bool, err error) {
	if !c.haveTS {
		c.haveTS = true
		c.lastRaw = raw
		c.ext = int64(raw)
		c.base = c.ext
	} else {
		// Signed difference modulo 2^32: a wrap-around reads as a small
		// step forward, and interleaved tracks may step back a little.
		c.ext += int64(int32(raw - c.lastRaw))
		c.lastRaw = raw
	}
	t = time.Duration(c.ext-c.base)*time.Millisecond + c.offset

	anyStarted := c.video.started || c.audio.started
	if anyStarted && (t-c.newest > c.maxJump || (tr.started && tr.last-t > backJump)) {
		target := c.newest + tr.step
		if tr.started && tr.last+tr.step > target {
			target = tr.last + tr.step
		}
		c.offset += target - t
		c.log.Warn("rtmp: timestamp jump, timeline rebased", "from", t, "to", target,
			"discontinuities", c.stats.Discontinuities+1)
		t = target
		c.stats.Discontinuities++
		if ds, ok := c.sink.(DiscontinuitySink); ok {
			if err := ds.Discontinuity(t); err != nil {
				return 0, false, err
			}
		}
	}
	switch {
	case tr.started && t <= tr.last:
		t = tr.last + time.Millisecond
		c.stats.Clamped++
		back = true
	case !tr.started && t < 0:
		t = 0
		c.stats.Clamped++
	}
	if tr.started {
		if d := t - tr.last; d > 0 && d <= 200*time.Millisecond {
			tr.step = d
		}
	}
	tr.started = true
	tr.last = t
	if t > c.newest {
		c.newest = t
	}
	return t, back, nil
}

// sampleClock times AAC frames by their sample count. RTMP carries whole
// milliseconds, so a 48 kHz stream's 21.33 ms frames arrive 21, 21, 22 ms
// apart; the packager would write those jittered durations into the MP4.
// Frames are placed at anchor + n frames instead, as long as the RTMP time
// agrees (see place); a later RTMP time (a hole in the audio) or a
// timeline rebase starts the count again there.
type sampleClock struct {
	frame, rate int64 // samples per frame, samples per second
	on          bool
	anchor      time.Duration
	n           int64  // frames placed since anchor
	disc        uint64 // the converter's discontinuity count at anchor
}

// at is the time of n frames.
func (s *sampleClock) at(n int64) time.Duration {
	samples := n * s.frame
	return time.Duration(samples/s.rate)*time.Second + time.Duration(samples%s.rate*int64(time.Second)/s.rate)
}

// place times a frame whose RTMP time is t (back: t was clamped after a
// step backwards); ok is false for a frame to drop.
func (s *sampleClock) place(t time.Duration, back bool, disc uint64) (time.Duration, bool) {
	if s.rate <= 0 || s.frame <= 0 {
		return t, true // not AAC-timed
	}
	if s.on && s.disc == disc {
		if back {
			return 0, false
		}
		// Up to a frame early is jitter (or the encoder's sample clock
		// running ahead: one frame is dropped per frame of drift); more
		// than half a frame late is missing audio, and the count starts
		// again at t.
		exp, frame := s.anchor+s.at(s.n), s.at(1)
		switch d := t - exp; {
		case d < -frame:
			return 0, false // earlier than the frame before it ended
		case d <= frame/2:
			s.n++
			return exp, true
		}
	}
	s.on, s.anchor, s.n, s.disc = true, t, 1, disc
	return t, true
}

// aacChannels maps an AAC channel configuration to a channel count; 0 means
// the layout is given by a program config element in the stream.
func aacChannels(cfg uint8) int {
	switch {
	case cfg >= 1 && cfg <= 6:
		return int(cfg)
	case cfg == 7:
		return 8
	}
	return 0
}
