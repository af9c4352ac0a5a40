package cmaf

import (
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/banyan-live/banyan/media"
)

const (
	videoIdx = 0
	audioIdx = 1
)

// epoch packages one continuous timeline with one init.
type epoch struct {
	num    uint32
	video  *videoParams
	audio  *audioParams
	tracks [2]*track // videoIdx, audioIdx; nil when absent
	origin time.Duration
	cfg    *Config
	stats  *Stats

	seq  uint64 // last emitted chunk
	disc bool   // the next chunk is flagged Discontinuity

	// audio-only segmenting
	segStarted bool
	segStart   time.Duration
}

// track is one track's state within an epoch.
type track struct {
	kind      media.Kind
	id        int
	timescale uint32
	defDur    uint32        // duration for a lone sample at Flush
	silence   []byte        // a silent frame of defDur for holes (AAC), or nil
	maxFill   int64         // the longest hole filled, in ticks
	minDTS    time.Duration // earlier AUs are dropped (before the epoch's start)

	emitted bool // a chunk with this track's samples went out

	hasHeld bool
	held    heldSample // last sample, waiting for its successor's DTS
	lastDur uint32

	// the current chunk's finalized samples
	samples []*fmp4.Sample
	base    uint64 // tfdt of samples[0]
	sum     uint64 // sum of their durations
	bytes   int
}

type heldSample struct {
	dts     time.Duration
	ticks   int64
	ptsOff  int32
	key     bool
	payload []byte
}

func newEpoch(num uint32, v *videoParams, a *audioParams, origin time.Duration, disc bool, cfg *Config, st *Stats) *epoch {
	e := &epoch{num: num, video: v, audio: a, origin: origin, disc: disc, cfg: cfg, stats: st}
	if v != nil {
		e.tracks[videoIdx] = &track{kind: media.Video, id: VideoTrackID, timescale: VideoTimescale, defDur: v.defDur}
	}
	if a != nil {
		e.tracks[audioIdx] = &track{kind: media.Audio, id: AudioTrackID, timescale: uint32(a.rate), defDur: a.defDur,
			silence: a.silence, maxFill: toTicks(maxSilenceFill, uint32(a.rate))}
	}
	return e
}

func (e *epoch) track(k media.Kind) *track {
	switch k {
	case media.Video:
		return e.tracks[videoIdx]
	case media.Audio:
		return e.tracks[audioIdx]
	}
	return nil
}

// driver is the track whose timeline sets chunk boundaries: video when the
// epoch has it (so chunks line up with frames and keyframes), else audio.
func (e *epoch) driver() (drv, other *track) {
	if e.tracks[videoIdx] != nil {
		return e.tracks[videoIdx], e.tracks[audioIdx]
	}
	return e.tracks[audioIdx], nil
}

// write adds a sample: it finalizes the track's held sample with the new
// DTS, cuts a chunk if due, and holds the new sample. It returns
// errDiscontinuity, having changed nothing, when the DTS does not continue
// the track's timeline.
func (e *epoch) write(s sample) error {
	t := e.track(s.kind)
	if t == nil || (!t.hasHeld && s.dts < t.minDTS) {
		// Before the epoch's start (audio older than the first keyframe).
		e.stats.DroppedAUs++
		return nil
	}
	if t.hasHeld && (s.dts < t.held.dts-backJitter || s.dts-t.held.dts > e.cfg.MaxGap) {
		return errDiscontinuity
	}
	ticks := toTicks(s.dts-e.origin, t.timescale)
	if t.hasHeld {
		h := &t.held
		if ticks <= h.ticks {
			// Equal or slightly earlier DTS (encoder jitter, millisecond
			// rounding): keep decode order with a one-tick step.
			ticks = h.ticks + 1
		}
		if t.fill(ticks) {
			e.stats.SilenceFilled++
		} else {
			t.finalize(uint32(ticks - h.ticks))
		}
	}
	if e.cutDue(s, t) {
		if err := e.cut(); err != nil {
			return err
		}
	}
	var off int32
	if s.kind == media.Video {
		off = clampInt32(toTicks(s.pts-e.origin, t.timescale) - ticks)
	}
	t.held = heldSample{dts: s.dts, ticks: ticks, ptsOff: off, key: s.key, payload: s.payload}
	t.hasHeld = true
	return nil
}

// continues reports whether a sample of kind k at dts continues the
// epoch's timeline: close to the track's held sample, or, for a track the
// epoch lacks, to the other track's.
func (e *epoch) continues(k media.Kind, dts time.Duration) bool {
	if t := e.track(k); t != nil && t.hasHeld {
		return dts >= t.held.dts-backJitter && dts-t.held.dts <= e.cfg.MaxGap
	}
	for _, t := range e.tracks {
		if t != nil && t.hasHeld {
			d := dts - t.held.dts
			return d >= -e.cfg.MaxGap && d <= e.cfg.MaxGap
		}
	}
	return true
}

// finalize moves the held sample into the current chunk with duration d.
func (t *track) finalize(d uint32) {
	h := &t.held
	if len(t.samples) == 0 {
		t.base = uint64(h.ticks)
	}
	t.samples = append(t.samples, &fmp4.Sample{
		Duration:        d,
		PTSOffset:       h.ptsOff,
		IsNonSyncSample: !h.key,
		Payload:         h.payload,
	})
	t.sum += uint64(d)
	t.bytes += len(h.payload)
	t.lastDur = d
	t.hasHeld = false
	t.held = heldSample{}
}

// fill finalizes the held sample and fills the hole between its end and
// ticks with silent frames, if the track has them and there is a hole of
// at least a frame, up to maxFill. A hole left to the held sample's
// duration stalled Chromium: the buffered range shows no gap, but the
// audio runs out at the frame's real end, and playback stood still at
// readyState 2 about once a second with holes of 300 ms (issue 22).
func (t *track) fill(ticks int64) bool {
	f := int64(t.defDur)
	hole := ticks - t.held.ticks - f
	if t.silence == nil || f == 0 || hole < f || hole > t.maxFill {
		return false
	}
	at := t.held.ticks + f
	t.finalize(uint32(f))
	for n := hole / f; n > 0; n-- {
		d := f
		if n == 1 {
			d = ticks - at // the last one takes the remainder
		}
		t.held = heldSample{ticks: at, key: true, payload: t.silence}
		t.finalize(uint32(d))
		at += d
	}
	return true
}

// cutDue says whether the chunk must end before sample s (of track t).
func (e *epoch) cutDue(s sample, t *track) bool {
	if e.empty() {
		return false
	}
	if s.kind == media.Video && s.key {
		return true // a keyframe always starts a chunk
	}
	drv, other := e.driver()
	// End at the frame boundary nearest the target: cut once the chunk is
	// within half a frame of it.
	if t == drv && len(drv.samples) > 0 &&
		2*drv.sum+uint64(drv.lastDur) >= 2*durTicks(e.cfg.ChunkDuration, drv.timescale) {
		return true
	}
	// Video stalled while audio flows: do not let audio pile up. Low frame
	// rates (screen sharing) stay above 1 frame per stallAfter, and the
	// epoch's first chunk waits for its keyframe so that it is a Keyframe
	// chunk.
	if other != nil && drv.emitted && other.sum >= durTicks(e.stallAfter(), other.timescale) {
		return true
	}
	bytes := 0
	for _, tr := range e.tracks {
		if tr != nil {
			if len(tr.samples) >= MaxChunkSamples {
				return true
			}
			bytes += tr.bytes
		}
	}
	return bytes >= MaxChunkBytes
}

// stallAfter is how much audio may gather without a video frame before
// the video counts as stalled: four chunks, and at least a second, so that
// 1 fps screen sharing is not cut into audio-only chunks at short chunk
// durations.
func (e *epoch) stallAfter() time.Duration {
	return max(4*e.cfg.ChunkDuration, time.Second)
}

func (e *epoch) empty() bool {
	for _, t := range e.tracks {
		if t != nil && len(t.samples) > 0 {
			return false
		}
	}
	return true
}

// cut marshals the finalized samples of all tracks into one chunk.
func (e *epoch) cut() error {
	if e.empty() {
		return nil
	}
	e.seq++
	part := fmp4.Part{SequenceNumber: uint32(e.seq)}
	for _, t := range e.tracks {
		if t != nil && len(t.samples) > 0 {
			part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: t.id, BaseTime: t.base, Samples: t.samples})
		}
	}
	var buf seekablebuffer.Buffer
	buf.Grow(e.chunkSizeHint())
	if err := part.Marshal(&buf); err != nil {
		return fmt.Errorf("cmaf: epoch %d chunk %d: marshal: %w", e.num, e.seq, err)
	}

	drv, other := e.driver()
	ref := drv
	if len(ref.samples) == 0 {
		ref = other
	}
	c := Chunk{
		Seq:           e.seq,
		Epoch:         e.num,
		Discontinuity: e.disc,
		MediaTime:     fromTicks(int64(ref.base), ref.timescale),
		Duration:      fromTicks(int64(ref.sum), ref.timescale),
		Data:          buf.Bytes(),
	}
	if vt := e.tracks[videoIdx]; vt != nil {
		c.Keyframe = len(vt.samples) > 0 && !vt.samples[0].IsNonSyncSample
	} else if !e.segStarted || c.MediaTime-e.segStart >= e.cfg.AudioSegment {
		c.Keyframe = true
		e.segStarted, e.segStart = true, c.MediaTime
	}
	e.disc = false

	e.stats.Chunks++
	for _, t := range e.tracks {
		if t != nil {
			e.stats.Samples += uint64(len(t.samples))
			t.emitted = t.emitted || len(t.samples) > 0
			t.base += t.sum
			t.sum = 0
			t.bytes = 0
			t.samples = nil
		}
	}
	if err := e.cfg.OnChunk(c); err != nil {
		return fmt.Errorf("cmaf: epoch %d chunk %d: deliver: %w", e.num, e.seq, err)
	}
	return nil
}

func (e *epoch) chunkSizeHint() int {
	n := 512
	for _, t := range e.tracks {
		if t != nil {
			n += t.bytes + 16*len(t.samples)
		}
	}
	return n
}

// finish gives every held sample a duration and emits the last chunk. The
// held video sample gets nextVideoDTS minus its DTS when that is a sane
// step, else the previous sample's duration.
func (e *epoch) finish(nextVideoDTS *time.Duration) error {
	for i, t := range e.tracks {
		if t == nil || !t.hasHeld {
			continue
		}
		d := t.lastDur
		if d == 0 {
			d = t.defDur
		}
		if i == videoIdx && nextVideoDTS != nil {
			step := *nextVideoDTS - t.held.dts
			if step > 0 && step <= e.cfg.MaxGap {
				if n := toTicks(*nextVideoDTS-e.origin, t.timescale) - t.held.ticks; n > 0 {
					d = uint32(n)
				}
			}
		}
		t.finalize(d)
	}
	return e.cut()
}

// toTicks converts a duration to ticks of timescale ts, rounding to the
// nearest tick, without overflow for |d| ≤ maxAbsTime.
func toTicks(d time.Duration, ts uint32) int64 {
	neg := d < 0
	if neg {
		d = -d
	}
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	t := sec*int64(ts) + (rem*int64(ts)+int64(time.Second)/2)/int64(time.Second)
	if neg {
		return -t
	}
	return t
}

// fromTicks converts ticks of timescale ts to a duration, rounding to the
// nearest nanosecond.
func fromTicks(t int64, ts uint32) time.Duration {
	neg := t < 0
	if neg {
		t = -t
	}
	sec, rem := t/int64(ts), t%int64(ts)
	d := time.Duration(sec)*time.Second + time.Duration((rem*int64(time.Second)+int64(ts)/2)/int64(ts))
	if neg {
		return -d
	}
	return d
}

func durTicks(d time.Duration, ts uint32) uint64 {
	return uint64(toTicks(d, ts))
}

func clampInt32(v int64) int32 {
	const lo, hi = -1 << 31, 1<<31 - 1
	switch {
	case v < lo:
		return lo
	case v > hi:
		return hi
	}
	return int32(v)
}
