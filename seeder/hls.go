package seeder

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/banyan-live/banyan/media/cmaf"
)

// LL-HLS (RFC 8216bis with Apple's low-latency extensions) over the chunks
// the seeder already makes: every chunk is a part, a keyframe starts a
// segment, and a segment's bytes are its parts concatenated.
//
// A live playlist may only grow at its end and shrink at its start
// (RFC 8216bis 6.2.1), so the numbers players plan with are fixed once per
// epoch rather than recomputed from the window: EXT-X-TARGETDURATION from
// the epoch's first GOP (or inherited from the previous epoch, so that a
// reconnect is listed at once), PART-TARGET from its typical chunk, and
// PART-HOLD-BACK from that. Chunks that would break them are placed so
// that they do not: a segment that would outgrow the target duration is cut
// at a chunk boundary (a segment that does not start with a keyframe), and
// a chunk longer than the part target (a hole in audio-only media) is a
// segment of its own, listed without parts. The previous epochs stay
// listed after an EXT-X-DISCONTINUITY and a new EXT-X-MAP, and the end of
// a publish writes EXT-X-ENDLIST only after a grace period, so a
// broadcaster that reconnects within it does not end anyone's playback.

const (
	// maxTarget bounds the target duration: a GOP longer than this is cut
	// into segments that do not all begin with a keyframe, and the window
	// (three target durations) stays bounded.
	maxTarget = 15 * time.Second
	// partSlack is the part target over the epoch's typical chunk: chunks
	// are cut at frame boundaries, so they vary by a frame, and every part
	// but the last of a segment must be at least 85 % of the target.
	partSlack = 1.15
	// partsHistory is how many complete segments keep their EXT-X-PART
	// lines besides the open one (parts are listed only near the live
	// edge: within the last three segments).
	partsHistory = 2
	// maxUnlisted bounds the chunks an epoch keeps before its first
	// keyframe (a minute of 250 ms chunks).
	maxUnlisted = 240
	// targetTolerance: see targetsOf.
	targetTolerance = 100 * time.Millisecond
	// DefaultEndGrace is how long the playlist of a publish that ended
	// stays live before EXT-X-ENDLIST: OBS retries after 2 s by default.
	DefaultEndGrace = 15 * time.Second
)

// hlsEpoch is the LL-HLS view of one epoch: its fixed targets and its
// segments.
type hlsEpoch struct {
	fixed  bool
	target time.Duration // whole seconds
	part   time.Duration // whole milliseconds
	segs   []hlsSeg
	// disc numbers the epochs listed in this window's life, for
	// EXT-X-DISCONTINUITY-SEQUENCE; set when the first segment is placed.
	disc uint64
	// wall0 and media0 anchor EXT-X-PROGRAM-DATE-TIME: the wall clock of
	// the epoch's first chunk's start and that chunk's media time.
	wall0    time.Time
	media0   time.Duration
	anchored bool
	// shift moves the epoch's media onto the stream's one LL-HLS timeline:
	// added to every decode time served (tfdt), it makes the epoch's first
	// listed segment start where the previous listed epoch's last one
	// ended, as the playlist places it. Set when the first segment is
	// placed; 0 for the first epoch ever listed. scales are the epoch's
	// track timescales for it (nil while shift is 0), or scaleErr.
	shift    time.Duration
	scales   map[uint32]uint32
	scaleErr error
}

// hlsSeg is one LL-HLS segment: n consecutive chunks from seq first.
type hlsSeg struct {
	msn    uint64
	first  uint64
	n      int
	start  time.Duration // media time of the first chunk
	dur    time.Duration
	indep  bool // begins with a keyframe
	whole  bool // one chunk longer than the part target: no EXT-X-PART lines
	closed bool // no chunk joins it any more: listed with EXTINF
}

// inherit takes the targets of the newest listed epoch before it: an
// encoder that reconnects keeps its settings, and its new epoch can be
// listed from its first chunk instead of after its first GOP.
func (h *hlsEpoch) inherit(older []*epochWindow) {
	for i := len(older) - 1; i >= 0; i-- {
		if o := &older[i].hls; o.fixed && len(o.segs) > 0 {
			h.fixed, h.target, h.part = true, o.target, o.part
			return
		}
	}
}

// targetsOf decides an epoch's targets from its chunks so far. Unless
// final, it waits for the end of the first GOP (the next keyframe) or for
// maxTarget of media.
func targetsOf(chunks []*Entry, final bool) (target, part time.Duration, ok bool) {
	k1 := slices.IndexFunc(chunks, func(e *Entry) bool { return e.Keyframe })
	if k1 < 0 {
		return 0, 0, false
	}
	gop := chunks[k1:]
	var d time.Duration
	for i, c := range gop {
		if i > 0 && c.Keyframe {
			gop = gop[:i]
			break
		}
		d += c.Duration
	}
	if len(gop) == len(chunks)-k1 && !final && d < maxTarget {
		return 0, 0, false
	}
	// Whole seconds, rounded up (a GOP of 8.33 s is 9), except that a GOP
	// just over a whole second (audio-only segments of 2.048 s) rounds
	// down: EXTINF may exceed the target by up to half a second.
	target = time.Duration(math.Ceil((d - targetTolerance).Seconds())) * time.Second
	target = min(max(target, time.Second), maxTarget)
	// Every part but the last of a segment should be the typical chunk:
	// take the median of those, so that one odd chunk does not set it.
	var ds []time.Duration
	for _, c := range gop[:len(gop)-1] {
		ds = append(ds, c.Duration)
	}
	if len(ds) == 0 {
		for _, c := range gop {
			ds = append(ds, c.Duration)
		}
	}
	slices.Sort(ds)
	typical := ds[len(ds)/2]
	part = time.Duration(math.Ceil(float64(typical)*partSlack/float64(time.Millisecond))) * time.Millisecond
	part = min(max(part, time.Millisecond), target)
	return target, part, true
}

// segmentLocked gives a new chunk of epoch ew its place in a segment, or,
// while the epoch's targets are not yet known, decides them when it can
// and places every chunk so far.
func (w *Window) segmentLocked(ew *epochWindow, e *Entry) {
	h := &ew.hls
	if !h.anchored {
		h.wall0, h.media0, h.anchored = e.Added.Add(-e.Duration), e.MediaTime, true
	}
	if h.fixed {
		w.placeLocked(ew, e)
	} else {
		w.fixLocked(ew, false)
	}
	// Before the epoch's first segment (no keyframe yet: targets are
	// decided within maxTarget of one) eviction has nothing to go by; the
	// chunks are kept for the mesh, but not without bound.
	if n := len(ew.chunks); len(h.segs) == 0 && n > maxUnlisted {
		ew.drop(n - maxUnlisted)
	}
}

// fixLocked sets the epoch's targets if its chunks tell them (always, if
// final and it has a keyframe) and places its chunks.
func (w *Window) fixLocked(ew *epochWindow, final bool) {
	target, part, ok := targetsOf(ew.chunks, final)
	if !ok {
		return
	}
	h := &ew.hls
	h.fixed, h.target, h.part = true, target, part
	for _, c := range ew.chunks {
		w.placeLocked(ew, c)
	}
}

// placeLocked appends chunk e to the epoch's open segment or starts a new
// one.
func (w *Window) placeLocked(ew *epochWindow, e *Entry) {
	h := &ew.hls
	var open *hlsSeg
	if n := len(h.segs); n > 0 && !h.segs[n-1].closed {
		open = &h.segs[n-1]
	}
	if len(h.segs) == 0 && !e.Keyframe {
		return // before the epoch's first keyframe: not playable alone
	}
	whole := e.Duration > h.part
	// EXTINF rounded to the nearest second must not exceed the target.
	tooLong := open != nil && open.dur+e.Duration >= h.target+time.Second/2
	if open == nil || e.Keyframe || whole || tooLong {
		if open != nil {
			open.closed = true
		}
		if len(h.segs) == 0 {
			h.disc = w.listed
			if w.listed > 0 {
				w.continueTimelineLocked(ew, e.MediaTime)
			}
			w.listed++
		}
		w.segment++
		h.segs = append(h.segs, hlsSeg{msn: w.segment, first: e.Seq, start: e.MediaTime, indep: e.Keyframe, whole: whole, closed: whole})
	}
	s := &h.segs[len(h.segs)-1]
	s.n++
	s.dur += e.Duration
	w.timelineEnd = s.start + s.dur + h.shift
}

// continueTimelineLocked sets the shift of epoch ew, whose first listed
// segment starts at media time start, so that it continues the LL-HLS
// timeline where the previous listed epoch ended. A reconnect restarts the
// broadcaster's timestamps at 0 and the playlist only says
// EXT-X-DISCONTINUITY: WebKitGTK's own HLS player (GStreamer's hlsdemux)
// stops for good where the timeline goes back, and plays on where it does
// not (an ffmpeg-made playlist either way, 2026-12-05). The mesh's chunks
// keep their own timeline; only what the LL-HLS origin serves moves.
func (w *Window) continueTimelineLocked(ew *epochWindow, start time.Duration) {
	h := &ew.hls
	h.shift = w.timelineEnd - start
	if h.shift == 0 {
		return
	}
	if ew.info.Init == nil || ew.info.Init.Plain == nil {
		h.scaleErr = errors.New("no init segment in the clear")
		return
	}
	h.scales, h.scaleErr = cmaf.Timescales(ew.info.Init.Plain)
}

// onTimeline returns fragment frag (moof+mdat) of an epoch with timeline h
// as the LL-HLS origin serves it: its decode times moved by h.shift.
func (h *hlsEpoch) onTimeline(frag []byte) ([]byte, error) {
	if h.shift == 0 {
		return frag, nil
	}
	if h.scaleErr != nil {
		return nil, fmt.Errorf("epoch timescales: %w", h.scaleErr)
	}
	return cmaf.ShiftDecodeTimes(frag, h.scales, h.shift)
}

// hlsTimeline is a copy of epoch's LL-HLS timeline (ok false when the
// window does not hold the epoch).
func (w *Window) hlsTimeline(epoch uint32) (hlsEpoch, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ew := range w.epochs {
		if ew.info.Epoch == epoch {
			h := ew.hls
			h.segs = nil
			return h, true
		}
	}
	return hlsEpoch{}, false
}

// segmentEndLocked closes an epoch that ended: its targets are decided
// from what it has, and its open segment is complete.
func (w *Window) segmentEndLocked(ew *epochWindow) {
	if !ew.hls.fixed {
		w.fixLocked(ew, true)
	}
	if n := len(ew.hls.segs); n > 0 {
		ew.hls.segs[n-1].closed = true
	}
}

// targetLocked is the target duration of the newest epoch that has one.
func (w *Window) targetLocked() time.Duration {
	for i := len(w.epochs) - 1; i >= 0; i-- {
		if h := &w.epochs[i].hls; h.fixed {
			return h.target
		}
	}
	return 0
}

// hlsView is a consistent copy of what a playlist is made from.
type hlsView struct {
	now    time.Time
	epochs []hlsEpochView // epochs with segments, oldest first
	// target and part are the newest fixed epoch's; 0 when none is.
	target, part time.Duration
	// newest is the window's newest epoch (listed or not).
	newest     EpochInfo
	newestNext uint64 // the seq its next chunk will have
	lastMSN    uint64 // the last media sequence number given out
}

type hlsEpochView struct {
	info   EpochInfo
	h      hlsEpoch // segs copied
	first  uint64
	chunks []*Entry
}

// hlsView snapshots the window for a playlist; ok is false before any
// epoch.
func (w *Window) hlsView() (hlsView, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.epochs)
	if n == 0 {
		return hlsView{}, false
	}
	v := hlsView{now: w.now(), lastMSN: w.segment}
	last := w.epochs[n-1]
	v.newest, v.newestNext = last.info, last.first+uint64(len(last.chunks))
	for _, ew := range w.epochs {
		if ew.hls.fixed {
			v.target, v.part = ew.hls.target, ew.hls.part
		}
		if len(ew.hls.segs) == 0 {
			continue
		}
		ev := hlsEpochView{info: ew.info, h: ew.hls, first: ew.first, chunks: slices.Clone(ew.chunks)}
		ev.h.segs = slices.Clone(ew.hls.segs)
		v.epochs = append(v.epochs, ev)
	}
	return v, true
}

// ended reports whether the playlist is over: the newest epoch ended at
// least grace ago.
func (v *hlsView) ended(grace time.Duration) bool {
	return v.newest.Ended && v.now.Sub(v.newest.EndedAt) >= grace
}

// endsIn is how long until the playlist ends (ok false when it does not).
func (v *hlsView) endsIn(grace time.Duration) (time.Duration, bool) {
	if !v.newest.Ended {
		return 0, false
	}
	return max(v.newest.EndedAt.Add(grace).Sub(v.now), 0), true
}

// lastSeg is the newest listed segment.
func (v *hlsView) lastSeg() (hlsSeg, bool) {
	if n := len(v.epochs); n > 0 {
		segs := v.epochs[n-1].h.segs
		return segs[len(segs)-1], true
	}
	return hlsSeg{}, false
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// pdtFormat is EXT-X-PROGRAM-DATE-TIME's ISO 8601 with milliseconds.
const pdtFormat = "2006-01-02T15:04:05.000Z07:00"

// playlist renders the media playlist. skip asks for a delta update
// (_HLS_skip=YES): segments older than CAN-SKIP-UNTIL are replaced by
// EXT-X-SKIP. ok is false when nothing is listed yet.
func (v *hlsView) playlist(grace time.Duration, skip bool) (string, bool) {
	if len(v.epochs) == 0 {
		return "", false
	}
	ended := v.ended(grace)
	skipUntil := 6 * v.target
	// Parts are listed only while the newest epoch is publishing. A
	// playlist whose last segment is complete but that lists parts makes
	// players (hls.js) expect the next segment on the same timeline, and
	// then reject the new epoch's first segment after a reconnect as a
	// "discontinuity sequence mismatch".
	lastEp := len(v.epochs) - 1
	live := !v.newest.Ended && v.epochs[lastEp].info.Epoch == v.newest.Epoch

	type ref struct {
		ei, si int
	}
	var all []ref
	var total time.Duration
	for ei, ev := range v.epochs {
		for si, s := range ev.h.segs {
			all = append(all, ref{ei, si})
			total += s.dur
		}
	}
	skipped := 0
	if skip {
		// Skip whole segments that end more than CAN-SKIP-UNTIL before
		// the end of the playlist.
		var cum time.Duration
		for _, r := range all[:len(all)-1] {
			s := v.epochs[r.ei].h.segs[r.si]
			if !s.closed || total-(cum+s.dur) < skipUntil {
				break
			}
			cum += s.dur
			skipped++
		}
	}

	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(v.target/time.Second))
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", secs(v.part))
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=%s,PART-HOLD-BACK=%s\n", secs(skipUntil), secs(3*v.part))
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", v.epochs[0].h.segs[0].msn)
	fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", v.epochs[0].h.disc)
	if skipped > 0 {
		fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", skipped)
	}
	for i, r := range all {
		if i < skipped {
			continue
		}
		ev := &v.epochs[r.ei]
		s := ev.h.segs[r.si]
		if r.si == 0 || i == skipped {
			if r.si == 0 && r.ei > 0 {
				b.WriteString("#EXT-X-DISCONTINUITY\n")
			}
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"init/%d.mp4\"\n", ev.info.Epoch)
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", ev.h.wall0.Add(s.start-ev.h.media0).UTC().Format(pdtFormat))
		// Parts near the live edge only, of the publishing epoch, and only
		// when they keep the part target in force.
		if live && r.ei == lastEp && len(all)-i <= partsHistory+1 && !s.whole && ev.h.part == v.part {
			ev.writeParts(&b, s)
		}
		if s.closed {
			fmt.Fprintf(&b, "#EXTINF:%s,\ns/%d/%d.m4s\n", secs(s.dur), ev.info.Epoch, s.first)
		}
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
		return b.String(), true
	}
	// The next part, while the epoch being listed is still publishing.
	if live {
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p/%d/%d.m4s\"\n", v.newest.Epoch, v.newestNext)
	}
	return b.String(), true
}

func (ev *hlsEpochView) chunksOf(s hlsSeg) []*Entry {
	i := int(s.first - ev.first)
	if s.first < ev.first || i+s.n > len(ev.chunks) {
		return nil // evicted under the snapshot: cannot happen for listed segments
	}
	return ev.chunks[i : i+s.n]
}

func (ev *hlsEpochView) writeParts(b *strings.Builder, s hlsSeg) {
	for _, c := range ev.chunksOf(s) {
		indep := ""
		if c.Keyframe {
			indep = ",INDEPENDENT=YES"
		}
		fmt.Fprintf(b, "#EXT-X-PART:DURATION=%s,URI=\"p/%d/%d.m4s\"%s\n", secs(c.Duration), c.Epoch, c.Seq, indep)
	}
}

// hasPart reports whether the playlist already satisfies a blocking
// reload for segment msn's part (part < 0: the whole segment).
func (v *hlsView) hasPart(grace time.Duration, msn uint64, part int) bool {
	if v.ended(grace) {
		return true
	}
	last, ok := v.lastSeg()
	switch {
	case !ok || msn > last.msn:
		return false
	case msn < last.msn || last.closed:
		return true
	}
	return part >= 0 && part < last.n
}

// tooFar reports a blocking request for a segment more than two beyond
// the last, which RFC 8216bis answers at once with 400.
func (v *hlsView) tooFar(msn uint64) bool {
	return msn > v.lastMSN+2
}

// segmentBytes returns the bytes of the complete segment of epoch starting
// at chunk seq, on the LL-HLS timeline (hlsEpoch.shift); ok is false when
// there is no such segment, err set when it cannot be served.
func (v *hlsView) segmentBytes(epoch uint32, seq uint64) (b []byte, ok bool, err error) {
	for i := range v.epochs {
		ev := &v.epochs[i]
		if ev.info.Epoch != epoch {
			continue
		}
		for _, s := range ev.h.segs {
			if s.first != seq || !s.closed {
				continue
			}
			cs := ev.chunksOf(s)
			if cs == nil {
				return nil, false, nil
			}
			n := 0
			for _, c := range cs {
				n += len(c.Plain)
			}
			out := make([]byte, 0, n)
			for _, c := range cs {
				out = append(out, c.Plain...)
			}
			out, err := ev.h.onTimeline(out)
			return out, true, err
		}
	}
	return nil, false, nil
}

// multivariant renders a multivariant playlist with the one variant,
// index.m3u8, so that players can choose (and Safari can check) by CODECS
// and RESOLUTION before loading media. BANDWIDTH is the peak bit rate of
// the listed segments, AVERAGE-BANDWIDTH their mean.
func (v *hlsView) multivariant() (string, bool) {
	if len(v.epochs) == 0 {
		return "", false
	}
	info := v.epochs[len(v.epochs)-1].info
	var peak, bytes float64
	var total time.Duration
	for i := range v.epochs {
		ev := &v.epochs[i]
		for _, s := range ev.h.segs {
			n := 0
			for _, c := range ev.chunksOf(s) {
				n += len(c.Plain)
			}
			if s.dur > 0 {
				peak = max(peak, float64(n)*8/s.dur.Seconds())
			}
			bytes += float64(n)
			total += s.dur
		}
	}
	avg := peak
	if total > 0 {
		avg = bytes * 8 / total.Seconds()
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n")
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=\"%s\"", int(math.Ceil(max(peak, 1))), int(math.Ceil(max(avg, 1))), info.Codecs)
	if info.Width > 0 && info.Height > 0 {
		fmt.Fprintf(&b, ",RESOLUTION=%dx%d", info.Width, info.Height)
	}
	b.WriteString("\nindex.m3u8\n")
	return b.String(), true
}
