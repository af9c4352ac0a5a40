package mse

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/media/cmaf"
)

// lostChunk is what one lost 250 ms chunk costs the viewer with muxed
// audio+video chunks in one SourceBuffer (issue 22 #4).
type lostChunk struct {
	video, audio float64       // media not appended, seconds (the lost chunk and its dependents)
	freeze       time.Duration // longest standstill of currentTime after playback started
	skipped      float64       // media jumped over by seeks, seconds
}

// measureLoss plays a live stream of 250 ms muxed chunks with a keyframe
// every gop seconds through the Planner, losing the chunk at position pos
// of the GOP that starts at gop seconds (the engine gave up on it), and
// plays what was appended in the element model of gap_test.go under Edge's
// control (chunks buffered 300 ms after their media time, a tick every
// 250 ms, as the player).
func measureLoss(t *testing.T, gop float64, pos int) lostChunk {
	t.Helper()
	av := packagerInit(t, vHigh, aLC).Data
	var p Planner
	if _, err := p.Init(1, av); err != nil {
		t.Fatal(err)
	}
	const dMs = 250
	per := int(math.Round(gop * 1000 / dMs))
	total := int(math.Round((gop + 16) * 1000 / dMs)) // the lossy GOP and 16 s after it
	lost := per + pos
	var appended []Range
	for i := range total {
		if i == lost {
			continue
		}
		ops := p.Chunk(hdr(1, uint64(i+1), i%per == 0, i*dMs, dMs), []byte("m"))
		for _, op := range ops {
			appended = append(appended, Range{op.Start, op.End})
		}
	}
	var r lostChunk
	r.video = float64(total-len(appended)) * dMs / 1000
	// Muxed: a chunk not appended takes its audio with it.
	r.audio = r.video
	r.freeze, r.skipped = playAppended(t, appended, gop+16)
	return r
}

// playAppended plays the appended ranges in the element model of
// gap_test.go under Edge's control (each buffered 300 ms after its end, a
// control tick every 250 ms) until end, and returns the longest standstill
// after playback started and the media skipped by seeks.
func playAppended(t *testing.T, appended []Range, end float64) (freeze time.Duration, skipped float64) {
	t.Helper()
	t0 := time.Unix(1000, 0)
	el := &element{now: t0, paused: true, rate: 1}
	e := NewEdge(EdgeConfig{})
	next := 0
	for step := 0; ; step++ {
		wall := el.now.Sub(t0).Seconds()
		for next < len(appended) && appended[next].End+0.3 <= wall {
			el.chunks = append(el.chunks, appended[next])
			next++
		}
		if wall > end { // stop while the stream is still live
			break
		}
		if step%5 == 0 {
			before := el.cur
			a := e.Decide(el.view())
			el.apply(a)
			if a.Seek && el.started && before > 0 && a.SeekTo > before {
				skipped += a.SeekTo - before
			}
		}
		el.advance(50 * time.Millisecond)
	}
	if !el.started {
		t.Fatal("playback never started")
	}
	return el.longest, skipped
}

// measureFilled is measureLoss over the real packager's chunks (30 fps
// video, keyframe every gop, AAC), where the planner fills the dependents'
// video with the GOP's keyframe (FillVideo) and keeps their audio. video
// counts the media whose picture is not its own (the lost chunk and the
// filled ones), audio the media not appended at all.
func measureFilled(t *testing.T, initData []byte, chunks []cmaf.Chunk, lost int) lostChunk {
	t.Helper()
	var p Planner
	if _, err := p.Init(1, initData); err != nil {
		t.Fatal(err)
	}
	var appended []Range
	var r lostChunk
	for i, c := range chunks {
		if i == lost {
			r.audio += c.Duration.Seconds()
			r.video += c.Duration.Seconds()
			continue
		}
		var f chunk.Flags
		if c.Keyframe {
			f |= chunk.FlagKeyframe
		}
		h := chunk.Header{Flags: f, Epoch: 1, Seq: c.Seq, MediaTime: uint64(c.MediaTime / time.Microsecond), Duration: uint32(c.Duration / time.Microsecond)}
		ops := p.Chunk(h, c.Data)
		if len(ops) == 0 {
			r.audio += c.Duration.Seconds()
			r.video += c.Duration.Seconds()
		}
		for _, op := range ops {
			// Chunk times are whole microseconds, so neighbours miss by
			// 1 µs; MSE merges such ranges (the element model would not).
			ms := func(x float64) float64 { return math.Round(x*1000) / 1000 }
			appended = append(appended, Range{ms(op.Start), ms(op.End)})
			if !bytes.Equal(op.Data, c.Data) {
				r.video += c.Duration.Seconds()
			}
		}
	}
	end := chunks[len(chunks)-1].MediaTime.Seconds()
	r.freeze, r.skipped = playAppended(t, appended, end)
	return r
}

// TestLongGOPLossFilled is TestLongGOPLoss with the dependents filled
// (docs/long-gop.md, option 4): whatever the GOP and the position of the
// loss, only the lost chunk's audio is lost (~0.27 s, 8 frames at 30 fps),
// playback stands still only for the gap controller's reaction to that
// one chunk's hole and skips only it; the picture holds the GOP's keyframe
// up to the next keyframe.
func TestLongGOPLossFilled(t *testing.T) {
	for _, gop := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		initData, chunks := packagerStream(t, gop, gop+16*time.Second)
		first, per := -1, 0
		for i, c := range chunks {
			if c.Keyframe && c.MediaTime >= gop && first < 0 {
				first = i
			} else if c.Keyframe && first >= 0 {
				per = i - first
				break
			}
		}
		if first < 0 || per == 0 {
			t.Fatalf("gop %v: no second GOP", gop)
		}
		for pos := range per {
			lc := chunks[first+pos]
			r := measureFilled(t, initData, chunks, first+pos)
			hole := (chunks[first+per].MediaTime - lc.MediaTime).Seconds()
			if math.Abs(r.audio-lc.Duration.Seconds()) > 1e-9 {
				t.Errorf("gop %v, chunk %d lost: %.3f s of audio lost, want only the lost chunk's %.3f s", gop, pos, r.audio, lc.Duration.Seconds())
			}
			if math.Abs(r.video-hole) > 1e-6 {
				t.Errorf("gop %v, chunk %d lost: %.3f s of video not its own, want the hole to the next keyframe, %.3f s", gop, pos, r.video, hole)
			}
			if f := r.freeze.Seconds(); f > 0.5 {
				t.Errorf("gop %v, chunk %d lost: stood still %.2f s, want at most 0.5 s", gop, pos, f)
			}
			if d := lc.Duration.Seconds(); r.skipped < d || r.skipped > d+0.1 {
				t.Errorf("gop %v, chunk %d lost: skipped %.2f s, want the lost chunk's %.2f–%.2f s", gop, pos, r.skipped, d, d+0.1)
			}
			if pos == 0 || pos == per/2 || pos == per-1 {
				t.Logf("| %v | %d of %d | %.2f s (held keyframe) | %.2f s | %.2f s | %.2f s |", gop, pos, per, r.video, r.audio, r.freeze.Seconds(), r.skipped)
			}
		}
	}
}

// TestLongGOPLoss documents what one lost chunk costs at GOPs of 1, 2, 4
// and 8 s with muxed chunks in one SourceBuffer when the dependents are
// dropped (issue 22 #4): the planner's path when it cannot fill them (its
// payloads here are not fragments FillVideo can rewrite), and what every
// loss cost before FillVideo. For a loss at every position in the GOP
// (docs/long-gop.md has the table):
//
//   - video and audio are lost alike: the lost chunk and every chunk after
//     it up to the next keyframe, (chunks per GOP − position) × 250 ms;
//   - the viewer sees a freeze, not an instant skip: playback runs to the
//     hole, stands still until the next keyframe arrives (the hole minus
//     the ~0.7 s buffered ahead), then the gap controller seeks over the
//     whole hole, so the lost media is never heard or seen; a hole under
//     the buffer ahead costs the gap controller's ~0.3–0.45 s instead.
//
// The numbers are asserted so that a change in the planner, the gap
// controller or Edge shows here.
func TestLongGOPLoss(t *testing.T) {
	worst := map[float64]lostChunk{}
	for _, gop := range []float64{1, 2, 4, 8} {
		per := int(gop * 4)
		for pos := range per {
			r := measureLoss(t, gop, pos)
			hole := float64(per-pos) * 0.25
			if math.Abs(r.video-hole) > 1e-9 || math.Abs(r.audio-hole) > 1e-9 {
				t.Errorf("gop %g s, chunk %d lost: video %.2f s, audio %.2f s lost; want %.2f s each", gop, pos, r.video, r.audio, hole)
			}
			// The freeze: the hole less what was buffered ahead, at
			// least the gap controller's reaction.
			lo, hi := hole-1.0, math.Max(hole-0.25, 0.5)
			if f := r.freeze.Seconds(); f < lo || f > hi {
				t.Errorf("gop %g s, chunk %d lost: stood still %.2f s, want %.2f–%.2f s", gop, pos, f, lo, hi)
			}
			// The skip: the whole hole, never less.
			if r.skipped < hole || r.skipped > hole+0.1 {
				t.Errorf("gop %g s, chunk %d lost: skipped %.2f s, want %.2f–%.2f s", gop, pos, r.skipped, hole, hole+0.1)
			}
			if pos == 0 || pos == per/2 || pos == per-1 {
				t.Logf("| %g s | %d of %d | %.2f s | %.2f s | %.2f s | %.2f s |", gop, pos, per, r.video, r.audio, r.freeze.Seconds(), r.skipped)
			}
			if r.video > worst[gop].video {
				worst[gop] = r
			}
		}
	}
	if w := worst[8]; w.audio != 8 || w.freeze < 7*time.Second {
		t.Errorf("8 s GOP, worst case: %.2f s of audio lost, %v frozen; the doc says 8 s and over 7 s", w.audio, w.freeze)
	}
}
