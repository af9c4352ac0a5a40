package seeder

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// LL-HLS (RFC 8216bis with Apple's low-latency extensions) over the chunks
// the seeder already makes: every chunk is a part, every keyframe starts a
// segment, and a segment's bytes are its parts concatenated. The playlist
// covers the current epoch; a new epoch shows as a new discontinuity
// sequence with its own EXT-X-MAP.

// partsHistory is how many completed segments keep their EXT-X-PART lines;
// older segments are listed whole only (the spec asks for parts within the
// last three target durations).
const partsHistory = 2

type hlsSegment struct {
	msn    uint64
	chunks []*Entry
}

func (s hlsSegment) duration() time.Duration {
	var d time.Duration
	for _, c := range s.chunks {
		d += c.Duration
	}
	return d
}

// segmentsOf groups chunks into segments. The last one is still open
// (complete reports whether a later keyframe closed it).
func segmentsOf(chunks []*Entry) (segs []hlsSegment) {
	for _, c := range chunks {
		if c.Segment == 0 {
			continue
		}
		if len(segs) == 0 || segs[len(segs)-1].msn != c.Segment {
			if !c.Keyframe {
				continue // a segment whose head was evicted: skip its tail
			}
			segs = append(segs, hlsSegment{msn: c.Segment})
		}
		s := &segs[len(segs)-1]
		s.chunks = append(s.chunks, c)
	}
	return segs
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// playlist renders the media playlist for the current epoch. ok is false
// when there is nothing to play yet.
func playlist(info EpochInfo, chunks []*Entry) (string, bool) {
	segs := segmentsOf(chunks)
	if len(segs) == 0 {
		return "", false
	}
	var partTarget, segTarget time.Duration
	for _, s := range segs {
		segTarget = max(segTarget, s.duration())
		for _, c := range s.chunks {
			partTarget = max(partTarget, c.Duration)
		}
	}
	partTarget = max(partTarget, 100*time.Millisecond)
	// PART-TARGET must bound every part; round up to the millisecond.
	partTarget = partTarget.Round(time.Millisecond) + time.Millisecond
	closed := segs[:len(segs)-1]
	open := segs[len(segs)-1]
	if info.Ended {
		closed, open = segs, hlsSegment{}
	}

	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(math.Ceil(segTarget.Seconds())))
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", secs(partTarget))
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%s\n", secs(3*partTarget))
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", segs[0].msn)
	fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", info.Discontinuity)
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"init/%d.mp4\"\n", info.Epoch)
	for i, s := range closed {
		if i >= len(closed)-partsHistory {
			writeParts(&b, s)
		}
		fmt.Fprintf(&b, "#EXTINF:%s,\ns/%d/%d.m4s\n", secs(s.duration()), info.Epoch, s.chunks[0].Seq)
	}
	if info.Ended {
		b.WriteString("#EXT-X-ENDLIST\n")
		return b.String(), true
	}
	writeParts(&b, open)
	last := open.chunks[len(open.chunks)-1]
	fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p/%d/%d.m4s\"\n", info.Epoch, last.Seq+1)
	return b.String(), true
}

func writeParts(b *strings.Builder, s hlsSegment) {
	for _, c := range s.chunks {
		indep := ""
		if c.Keyframe {
			indep = ",INDEPENDENT=YES"
		}
		fmt.Fprintf(b, "#EXT-X-PART:DURATION=%s,URI=\"p/%d/%d.m4s\"%s\n", secs(c.Duration), c.Epoch, c.Seq, indep)
	}
}

// hasPart reports whether the playlist built from chunks already holds
// segment msn's part (part < 0: the whole segment), for blocking reloads.
func hasPart(info EpochInfo, chunks []*Entry, msn uint64, part int) bool {
	segs := segmentsOf(chunks)
	if len(segs) == 0 {
		return false
	}
	last := segs[len(segs)-1]
	if msn < last.msn || info.Ended {
		return true
	}
	if msn > last.msn {
		return false
	}
	return part >= 0 && part < len(last.chunks)
}

// segmentBytes returns the bytes of the closed segment starting at chunk
// seq; the open segment has no bytes yet (its parts do).
func segmentBytes(info EpochInfo, chunks []*Entry, seq uint64) ([]byte, bool) {
	segs := segmentsOf(chunks)
	if !info.Ended && len(segs) > 0 {
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		if s.chunks[0].Seq != seq {
			continue
		}
		n := 0
		for _, c := range s.chunks {
			n += len(c.Plain)
		}
		out := make([]byte, 0, n)
		for _, c := range s.chunks {
			out = append(out, c.Plain...)
		}
		return out, true
	}
	return nil, false
}
