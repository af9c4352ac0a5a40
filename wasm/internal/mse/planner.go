package mse

import (
	"bytes"
	"math"
	"strconv"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
)

// OpKind says what an Op asks of the MSE glue.
type OpKind int

const (
	// OpCreate (re)creates the MediaSource and one SourceBuffer for MIME,
	// dropping everything buffered.
	OpCreate OpKind = iota + 1
	// OpChangeType switches the SourceBuffer to MIME
	// (SourceBuffer.changeType) for a codec change with the same tracks;
	// a browser without it does OpCreate.
	OpChangeType
	// OpAppend appends Data with timestampOffset set to Offset.
	OpAppend
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpChangeType:
		return "changeType"
	case OpAppend:
		return "append"
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// Op is one step for the SourceBuffer, executed in order.
type Op struct {
	Kind OpKind
	MIME string // OpCreate, OpChangeType
	// Data is the init segment or the chunk's CMAF fragment (OpAppend).
	Data []byte
	// Offset is the timestampOffset in seconds (OpAppend).
	Offset float64
	Init   bool // Data is an init segment
	// Key says the media append begins with a random access point: a
	// keyframe, or any audio-only chunk. Eviction ends only at one (Keys).
	Key   bool
	Epoch uint32
	Seq   uint64
	// Start and End are where the fragment lands on the presentation
	// timeline, in seconds (media OpAppend only).
	Start, End float64
}

// Timeline tolerances, in seconds.
const (
	// rebaseSlack: a new epoch whose first chunk lands within this of the
	// previous end continues the timeline (a codec change); further away it
	// is moved to follow the previous end (a broadcaster restart whose
	// timestamps start again at 0, or a jump).
	rebaseSlack = 0.5
	// backLimit: even within an epoch, media that would land this far
	// before what is already buffered is moved, rather than overwrite it.
	backLimit = 2.0
)

// PlannerStats counts what a Planner dropped.
type PlannerStats struct {
	Gaps    uint64 // sequence gaps seen (chunks that missed their deadline)
	Dropped uint64 // chunks skipped while waiting for a keyframe after a gap
	Stale   uint64 // chunks of another epoch, before an init, or repeated
	Filled  uint64 // chunks after a gap appended with their audio and the GOP's keyframe for video
	Rebases uint64 // epochs whose timeline was moved to follow the previous one
}

// Planner turns the stream as a peer engine delivers it (Init once per
// epoch, then chunks in sequence order, possibly with gaps) into
// SourceBuffer operations. It keeps one presentation timeline across
// epochs, so a broadcaster restart (a new epoch whose timestamps start at
// 0 again) plays on without a reload, and it resumes after a gap only at a
// keyframe, since a fragment whose references are missing decodes to
// garbage or not at all. It is not safe for concurrent use.
type Planner struct {
	haveInit bool
	epoch    uint32
	init     []byte
	info     InitInfo
	mime     string

	lastSeq uint64
	needKey bool
	// gopKey is the payload of the newest keyframe chunk placed, and fill
	// says the chunks skipped while needKey is set may be appended with
	// their video replaced by its keyframe (FillVideo): after a sequence
	// gap, not at a join, a rebuild or a full buffer.
	gopKey []byte
	fill   bool

	placed bool    // a chunk has been placed: offset and next mean something
	rebase bool    // the next chunk starts a new epoch
	offset float64 // timestampOffset, seconds
	next   float64 // presentation end of the newest placed chunk

	stats PlannerStats
}

// Init takes the init segment of epoch. It returns an error for an init it
// cannot read (the stream cannot be played) and no ops for a repeat.
func (p *Planner) Init(epoch uint32, data []byte) ([]Op, error) {
	if p.haveInit && (epoch < p.epoch || (epoch == p.epoch && bytes.Equal(data, p.init))) {
		return nil, nil
	}
	info, err := ParseInit(data)
	if err != nil {
		return nil, errs.Wrap("epoch "+strconv.FormatUint(uint64(epoch), 10)+": ", err, "")
	}
	mime := info.MIME()
	var ops []Op
	switch {
	case p.mime == "", !sameTracks(info, p.info):
		// The first init, or another set of tracks: a new MediaSource
		// (the timeline goes on: the epoch is placed after the last).
		ops = append(ops, Op{Kind: OpCreate, MIME: mime})
	case mime != p.mime:
		ops = append(ops, Op{Kind: OpChangeType, MIME: mime})
	}
	ops = append(ops, Op{Kind: OpAppend, Init: true, Data: data, Epoch: epoch, Offset: p.offset})
	if p.placed && (!p.haveInit || epoch != p.epoch) {
		p.rebase = true
	}
	p.haveInit, p.epoch, p.init, p.info, p.mime = true, epoch, data, info, mime
	p.lastSeq = 0
	p.needKey = info.VideoCodec != ""
	p.gopKey, p.fill = nil, false
	return ops, nil
}

// Chunk takes the next media chunk (its header and its CMAF fragment) and
// returns the append for it, or nothing when it must be skipped.
func (p *Planner) Chunk(h chunk.Header, payload []byte) []Op {
	if !p.haveInit || h.Epoch != p.epoch || h.IsInit() || (p.lastSeq != 0 && h.Seq <= p.lastSeq) {
		p.stats.Stale++
		return nil
	}
	if p.lastSeq != 0 && h.Seq != p.lastSeq+1 {
		p.stats.Gaps++
		if p.info.VideoCodec != "" {
			p.needKey = true
			p.fill = p.gopKey != nil && p.info.VideoTrack != 0
		}
	}
	p.lastSeq = h.Seq
	keyframe := h.Flags&chunk.FlagKeyframe != 0
	if p.needKey && !keyframe {
		// The chunk's video references lost frames. Keep its audio and
		// hold the GOP's keyframe for its video, so buffered has no hole
		// and the sound plays on; drop it whole if that cannot be done.
		if !p.fill {
			p.stats.Dropped++
			return nil
		}
		filled, err := FillVideo(payload, p.gopKey, p.info.VideoTrack)
		if err != nil {
			p.fill = false
			p.stats.Dropped++
			return nil
		}
		p.stats.Filled++
		payload = filled
	} else {
		p.needKey, p.fill = false, false
		if keyframe && p.info.VideoCodec != "" {
			p.gopKey = payload
		}
	}

	t := float64(h.MediaTime) / 1e6
	d := float64(h.Duration) / 1e6
	first := !p.placed
	p.placed = true
	switch at := t + p.offset; {
	case first:
	case (p.rebase || h.Flags&chunk.FlagDiscontinuity != 0) && math.Abs(at-p.next) > rebaseSlack,
		at < p.next-backLimit:
		p.offset = p.next - t
		p.stats.Rebases++
	}
	p.rebase = false
	start := t + p.offset
	if end := start + d; end > p.next || first {
		p.next = end
	}
	key := keyframe || p.info.VideoCodec == ""
	return []Op{{Kind: OpAppend, Data: payload, Offset: p.offset, Epoch: h.Epoch, Seq: h.Seq, Start: start, End: start + d, Key: key}}
}

// Rebuild returns the ops that start over on a fresh MediaSource with the
// current init, after the old one failed (a decode error, a SourceBuffer
// the browser removed). Playback resumes at the next keyframe; the
// timeline is kept.
func (p *Planner) Rebuild() []Op {
	if !p.haveInit {
		return nil
	}
	p.needKey = p.info.VideoCodec != ""
	p.gopKey, p.fill = nil, false
	return []Op{
		{Kind: OpCreate, MIME: p.mime},
		{Kind: OpAppend, Init: true, Data: p.init, Epoch: p.epoch, Offset: p.offset},
	}
}

// MIME is the type of the current epoch ("" before the first init).
func (p *Planner) MIME() string { return p.mime }

// Epoch and LastSeq name the newest chunk taken (0, 0 before any).
func (p *Planner) Epoch() uint32   { return p.epoch }
func (p *Planner) LastSeq() uint64 { return p.lastSeq }

// Edge is the presentation end, in seconds, of the newest chunk placed.
func (p *Planner) Edge() float64 { return p.next }

// Stats returns the counters.
func (p *Planner) Stats() PlannerStats { return p.stats }
