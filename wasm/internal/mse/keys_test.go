package mse

import (
	"math"
	"slices"
	"testing"
)

// frame is one coded frame in the model of a SourceBuffer below.
type frame struct {
	pts float64
	key bool
}

// mseRemove applies SourceBuffer.remove(start, end) as the MSE coded
// frame removal algorithm does: the frames presented in [start, end) go,
// and so does every following frame up to the next random access point,
// since it depends on a removed one.
func mseRemove(fs []frame, start, end float64) []frame {
	var out []frame
	dropping := false
	for _, f := range fs {
		switch {
		case f.pts >= start && f.pts < end:
			dropping = true
			continue
		case dropping && !f.key:
			continue
		}
		dropping = false
		out = append(out, f)
	}
	return out
}

// gopStream models t seconds of 30 fps video with a keyframe every gop
// seconds, appended as 8-frame chunks through a Keys index.
func gopStream(total, gop float64) ([]frame, *Keys) {
	var fs []frame
	keys := &Keys{}
	for i := 0; float64(i)/30 < total; i++ {
		t := float64(i) / 30
		key := i%int(math.Round(gop*30)) == 0
		fs = append(fs, frame{t, key})
		if i%8 == 0 || key { // a chunk starts here (keyframes start one)
			keys.Add(Op{Kind: OpAppend, Start: t, End: t + 8.0/30, Key: key})
		}
	}
	return fs, keys
}

// TestQuotaEvictKeepsThePlayingGOP: after QuotaExceededError the player
// frees room without deleting the GOP being played (issue 22 #5). The old
// rule removed up to currentTime − 2 s, which the coded frame removal
// widens to the next keyframe: with any GOP longer than 2 s that took the
// frames at currentTime, or everything ahead of it.
func TestQuotaEvictKeepsThePlayingGOP(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gop, cur  float64
		total     float64
		wantEvict bool
		wantEnd   float64
	}{
		{"1 s GOP", 1, 20.5, 25, true, 18},
		{"2 s GOP", 2, 20.5, 25, true, 18},
		{"4 s GOP", 4, 21, 25, true, 16},
		{"8.3 s GOP", 8.3, 20, 25, true, 16.6},
		{"8.3 s GOP early in the second GOP", 8.3, 9, 25, false, 0}, // no keyframe before 7 s but the first
		{"audio only", 0, 20.5, 25, true, 18.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fs []frame
			var keys *Keys
			if tc.gop == 0 {
				keys = &Keys{}
				for c := 0.0; c < tc.total; c += 0.25 {
					fs = append(fs, frame{c, true})
					keys.Add(Op{Kind: OpAppend, Start: c, End: c + 0.25, Key: true})
				}
			} else {
				fs, keys = gopStream(tc.total, tc.gop)
			}
			buffered := []Range{{0, tc.total}}
			r, ok := QuotaEvict(buffered, keys, tc.cur)
			if ok != tc.wantEvict {
				t.Fatalf("evict %v %v, want %v", r, ok, tc.wantEvict)
			}
			if !ok {
				return
			}
			if r.Start != 0 || math.Abs(r.End-tc.wantEnd) > 0.01 {
				t.Fatalf("evict %v, want [0, %v)", r, tc.wantEnd)
			}
			left := mseRemove(fs, r.Start, r.End)
			if len(left) == len(fs) {
				t.Fatal("nothing removed")
			}
			// Every frame from the one on screen on must still be there,
			// and the oldest one left must be a keyframe (decodable).
			for _, f := range fs {
				if f.pts >= tc.cur-QuotaKeep && !slices.Contains(left, f) {
					t.Fatalf("frame at %.3f s removed (currentTime %v)", f.pts, tc.cur)
				}
			}
			if !left[0].key {
				t.Fatalf("buffer starts at a non-keyframe %.3f", left[0].pts)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	var k Keys
	if _, ok := k.AtOrBefore(5); ok {
		t.Fatal("key in an empty index")
	}
	for _, op := range []Op{
		{Kind: OpAppend, Start: 4, Key: true},
		{Kind: OpAppend, Start: 2, Key: true},             // out of order
		{Kind: OpAppend, Start: 3},                        // not a key
		{Kind: OpAppend, Start: 1, Key: true, Init: true}, // an init
		{Kind: OpCreate, Start: 1, Key: true},             // not an append
		{Kind: OpAppend, Start: 6, Key: true},             //
		{Kind: OpAppend, Start: 6, Key: true},             // repeated
	} {
		k.Add(op)
	}
	for _, tc := range []struct {
		t    float64
		want float64
		ok   bool
	}{{1.9, 0, false}, {2, 2, true}, {3.9, 2, true}, {5, 4, true}, {100, 6, true}} {
		if got, ok := k.AtOrBefore(tc.t); got != tc.want || ok != tc.ok {
			t.Fatalf("AtOrBefore(%v) = %v %v, want %v %v", tc.t, got, ok, tc.want, tc.ok)
		}
	}
	k.Prune(4)
	if k.Len() != 2 {
		t.Fatalf("after Prune(4): %d keys", k.Len())
	}
	for i := range maxKeys + 10 {
		k.Add(Op{Kind: OpAppend, Start: float64(100 + i), Key: true})
	}
	if k.Len() != maxKeys {
		t.Fatalf("%d keys kept, want the bound %d", k.Len(), maxKeys)
	}
	k.Reset()
	if k.Len() != 0 {
		t.Fatal("Reset kept keys")
	}
}

// TestDropDependents: a chunk lost to a full buffer takes its dependents
// with it, and the planner resumes at a keyframe when none is queued.
func TestDropDependents(t *testing.T) {
	app := func(epoch uint32, seq uint64, key bool) Op {
		return Op{Kind: OpAppend, Epoch: epoch, Seq: seq, Key: key}
	}
	seqs := func(ops []Op) []uint64 {
		var s []uint64
		for _, o := range ops {
			s = append(s, o.Seq)
		}
		return s
	}
	id := func(o Op) Op { return o }
	lost := app(1, 10, false)
	for _, tc := range []struct {
		name       string
		queue      []Op
		wantSeqs   []uint64
		wantResume bool
	}{
		{"empty queue", nil, nil, true},
		{"all dependents", []Op{app(1, 11, false), app(1, 12, false)}, nil, true},
		{"up to a keyframe", []Op{app(1, 11, false), app(1, 12, true), app(1, 13, false)}, []uint64{12, 13}, false},
		{"a new epoch", []Op{app(1, 11, false), {Kind: OpAppend, Init: true, Epoch: 2}, app(2, 1, true)}, []uint64{0, 1}, false},
		{"a new media source", []Op{{Kind: OpCreate}, app(1, 11, false)}, []uint64{0, 11}, false},
		{"audio only: every chunk a key", []Op{app(1, 11, true), app(1, 12, true)}, []uint64{11, 12}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, resume := DropDependents(lost, tc.queue, id)
			if !slices.Equal(seqs(rest), tc.wantSeqs) || resume != tc.wantResume {
				t.Fatalf("rest %v resume %v, want %v %v", seqs(rest), resume, tc.wantSeqs, tc.wantResume)
			}
		})
	}

	// The planner skips to the next keyframe of the epoch; audio goes on.
	var p Planner
	if _, err := p.Init(1, packagerInit(t, vHigh, aLC).Data); err != nil {
		t.Fatal(err)
	}
	if ops := p.Chunk(hdr(1, 1, true, 0, 250), nil); len(ops) != 1 || !ops[0].Key {
		t.Fatalf("keyframe: %+v", ops)
	}
	if ops := p.Chunk(hdr(1, 2, false, 250, 250), nil); len(ops) != 1 || ops[0].Key {
		t.Fatalf("delta chunk: %+v", ops)
	}
	p.ResumeAtKeyframe(0) // another epoch: no effect
	if ops := p.Chunk(hdr(1, 3, false, 500, 250), nil); len(ops) != 1 {
		t.Fatal("chunk dropped after a loss in another epoch")
	}
	p.ResumeAtKeyframe(1)
	if ops := p.Chunk(hdr(1, 4, false, 750, 250), nil); ops != nil {
		t.Fatal("chunk that depends on a lost one planned")
	}
	if ops := p.Chunk(hdr(1, 5, true, 1000, 250), nil); len(ops) != 1 {
		t.Fatal("keyframe after the loss dropped")
	}
	var a Planner
	if _, err := a.Init(1, packagerInit(t, nil, aOpus).Data); err != nil {
		t.Fatal(err)
	}
	a.Chunk(hdr(1, 1, false, 0, 250), nil)
	a.ResumeAtKeyframe(1)
	if ops := a.Chunk(hdr(1, 2, false, 250, 250), nil); len(ops) != 1 || !ops[0].Key {
		t.Fatalf("audio-only chunk after a loss: %+v", ops)
	}
}
