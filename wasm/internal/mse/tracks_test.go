package mse

import (
	"math"
	"testing"
)

// TestPlannerTrackSetChange: an epoch with another set of tracks (an
// audio-only start, then audio and video; a camera turned off) gets a new
// MediaSource, since changeType cannot add or remove a track (issue 22
// #6); a codec change with the same tracks keeps changeType. The timeline
// goes on across the new MediaSource.
func TestPlannerTrackSetChange(t *testing.T) {
	audio := packagerInit(t, nil, aLC).Data
	av := packagerInit(t, vHigh, aLC).Data
	av2 := packagerInit(t, vBase, aLC).Data
	video := packagerInit(t, vHigh, nil).Data
	steps := []struct {
		name  string
		init  []byte
		want  []OpKind
		mime  string
		start float64 // where the epoch's first chunk lands
	}{
		{"audio only", audio, []OpKind{OpCreate, OpAppend}, `audio/mp4; codecs="mp4a.40.2"`, 0},
		{"audio and video: new media source", av, []OpKind{OpCreate, OpAppend}, `video/mp4; codecs="avc1.64001f,mp4a.40.2"`, 1},
		{"video codec change: changeType", av2, []OpKind{OpChangeType, OpAppend}, `video/mp4; codecs="avc1.42c01e,mp4a.40.2"`, 2},
		{"video only: new media source", video, []OpKind{OpCreate, OpAppend}, `video/mp4; codecs="avc1.64001f"`, 3},
		{"audio only again: new media source", audio, []OpKind{OpCreate, OpAppend}, `audio/mp4; codecs="mp4a.40.2"`, 4},
	}
	var p Planner
	for i, s := range steps {
		epoch := uint32(i + 1)
		ops, err := p.Init(epoch, s.init)
		if err != nil || !eqKinds(kinds(ops), s.want...) || ops[0].Kind != OpAppend && ops[0].MIME != s.mime {
			t.Fatalf("%s: %v %v", s.name, kinds(ops), err)
		}
		// Each epoch's timestamps start at 0; four 250 ms chunks.
		for c := range 4 {
			ops := p.Chunk(hdr(epoch, uint64(c+1), c == 0, c*250, 250), nil)
			if len(ops) != 1 {
				t.Fatalf("%s: chunk %d: %+v", s.name, c, ops)
			}
			if c == 0 && math.Abs(ops[0].Start-s.start) > 1e-9 {
				t.Fatalf("%s: first chunk at %v, want %v", s.name, ops[0].Start, s.start)
			}
		}
	}
}
