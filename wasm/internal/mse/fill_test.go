package mse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// packagerStream runs the real packager over total of 30 fps video with a
// keyframe every gop (B-frame-like composition offsets: every other frame
// is presented two frames late) and 48 kHz AAC, and returns the init
// segment and the 250 ms chunks.
func packagerStream(tb testing.TB, gop, total time.Duration) ([]byte, []cmaf.Chunk) {
	tb.Helper()
	var inits []cmaf.Init
	var chunks []cmaf.Chunk
	p := newPackager(tb, vHigh, aLC, func(i cmaf.Init) { inits = append(inits, i) }, func(c cmaf.Chunk) { chunks = append(chunks, c) })
	const frame = time.Second / 30
	const aframe = 1024 * time.Second / 48000
	perGOP := int(gop / frame)
	a := 0
	for i := 0; time.Duration(i)*frame < total; i++ {
		dts := time.Duration(i) * frame
		for ; time.Duration(a)*aframe <= dts; a++ {
			if err := p.WriteAU(media.AccessUnit{Kind: media.Audio, DTS: time.Duration(a) * aframe, PTS: time.Duration(a) * aframe, Key: true,
				Frame: []byte{0x21, 0x10, 0x04, byte(a)}}); err != nil {
				tb.Fatal(err)
			}
		}
		key := i%perGOP == 0
		nal := []byte{0x41, 0x9a, byte(i >> 8), byte(i)}
		if key {
			nal = []byte{0x65, 0x88, byte(i >> 8), byte(i), 0xaa, 0xbb}
		}
		pts := dts + 2*frame
		if i%2 == 1 {
			pts = dts
		}
		if err := p.WriteAU(media.AccessUnit{Kind: media.Video, DTS: dts, PTS: pts, Key: key, NALUs: [][]byte{nal}}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		tb.Fatal(err)
	}
	if len(inits) != 1 || len(chunks) == 0 {
		tb.Fatalf("%d inits, %d chunks", len(inits), len(chunks))
	}
	return inits[0].Data, chunks
}

// newPackager returns the real packager configured with v and a (either
// may be nil), delivering to onInit and onChunk.
func newPackager(tb testing.TB, v *media.VideoConfig, a *media.AudioConfig, onInit func(cmaf.Init), onChunk func(cmaf.Chunk)) *cmaf.Packager {
	tb.Helper()
	p, err := cmaf.New(cmaf.Config{
		OnInit:  func(i cmaf.Init) error { onInit(i); return nil },
		OnChunk: func(c cmaf.Chunk) error { onChunk(c); return nil },
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	if v != nil {
		if err := p.VideoConfig(*v); err != nil {
			tb.Fatal(err)
		}
	}
	if a != nil {
		if err := p.AudioConfig(*a); err != nil {
			tb.Fatal(err)
		}
	}
	return p
}

// parts reads a fragment with mediacommon's parser (not ours).
func parts(t *testing.T, b []byte) map[int]*fmp4.PartTrack {
	t.Helper()
	var ps fmp4.Parts
	if err := ps.Unmarshal(b); err != nil {
		t.Fatalf("mediacommon cannot read the fragment: %v", err)
	}
	if len(ps) != 1 {
		t.Fatalf("%d parts", len(ps))
	}
	m := map[int]*fmp4.PartTrack{}
	for _, tr := range ps[0].Tracks {
		m[tr.ID] = tr
	}
	return m
}

func TestFillVideo(t *testing.T) {
	initData, chunks := packagerStream(t, 2*time.Second, 4*time.Second)
	info, err := ParseInit(initData)
	if err != nil {
		t.Fatal(err)
	}
	if info.VideoTrack == 0 {
		t.Fatal("no video track ID")
	}
	vid := int(info.VideoTrack)
	key := chunks[0]
	if !key.Keyframe {
		t.Fatal("first chunk is not a keyframe")
	}
	kp := parts(t, key.Data)
	idr := kp[vid].Samples[0]
	for i, dep := range chunks[1:4] {
		if dep.Keyframe {
			t.Fatalf("chunk %d is a keyframe", i+1)
		}
		got, err := FillVideo(dep.Data, key.Data, info.VideoTrack)
		if err != nil {
			t.Fatal(err)
		}
		dp, fp := parts(t, dep.Data), parts(t, got)
		if len(fp) != len(dp) {
			t.Fatalf("%d tracks, want %d", len(fp), len(dp))
		}
		// Audio: unchanged, bytes and times.
		for id, tr := range dp {
			if id == vid {
				continue
			}
			ft := fp[id]
			if ft == nil || ft.BaseTime != tr.BaseTime || len(ft.Samples) != len(tr.Samples) {
				t.Fatalf("audio track %d changed: %+v, was %+v", id, ft, tr)
			}
			for j := range tr.Samples {
				if !bytes.Equal(ft.Samples[j].Payload, tr.Samples[j].Payload) || ft.Samples[j].Duration != tr.Samples[j].Duration {
					t.Fatalf("audio sample %d changed", j)
				}
			}
		}
		// Video: one sync sample, the keyframe's bytes, over the
		// dependent's decode span, presented where the dependent's is.
		dv, fv := dp[vid], fp[vid]
		if fv == nil || len(fv.Samples) != 1 {
			t.Fatalf("filled video: %+v", fv)
		}
		s := fv.Samples[0]
		var dur uint32
		minPTS := int64(1 << 62)
		for _, x := range dv.Samples {
			minPTS = min(minPTS, int64(dur)+int64(x.PTSOffset))
			dur += x.Duration
		}
		if !bytes.Equal(s.Payload, idr.Payload) || s.IsNonSyncSample {
			t.Errorf("filled sample is not the keyframe (sync %v)", !s.IsNonSyncSample)
		}
		if fv.BaseTime != dv.BaseTime || s.Duration != dur || int64(s.PTSOffset) != minPTS {
			t.Errorf("filled sample at %d for %d (cto %d), want at %d for %d (cto %d)", fv.BaseTime, s.Duration, s.PTSOffset, dv.BaseTime, dur, minPTS)
		}
	}
}

func TestFillVideoRefuses(t *testing.T) {
	initData, chunks := packagerStream(t, 2*time.Second, 2*time.Second)
	info, err := ParseInit(initData)
	if err != nil {
		t.Fatal(err)
	}
	audioOnly, _ := packagerAudio(t)
	for _, c := range []struct {
		name     string
		dep, key []byte
		id       uint32
	}{
		{"junk dependent", []byte("m"), chunks[0].Data, info.VideoTrack},
		{"junk keyframe", chunks[1].Data, []byte("m"), info.VideoTrack},
		{"keyframe chunk starts with a delta", chunks[1].Data, chunks[2].Data, info.VideoTrack},
		{"no such video track", chunks[1].Data, chunks[0].Data, 99},
		{"audio-only dependent", audioOnly, chunks[0].Data, info.VideoTrack},
		{"truncated dependent", chunks[1].Data[:len(chunks[1].Data)-5], chunks[0].Data, info.VideoTrack},
		{"moof only", chunks[1].Data[:binary.BigEndian.Uint32(chunks[1].Data)], chunks[0].Data, info.VideoTrack},
	} {
		if _, err := FillVideo(c.dep, c.key, c.id); !errors.Is(err, ErrFragment) {
			t.Errorf("%s: err %v, want ErrFragment", c.name, err)
		}
	}
}

// packagerAudio returns one audio-only chunk.
func packagerAudio(tb testing.TB) ([]byte, []byte) {
	tb.Helper()
	var init, data []byte
	p := newPackager(tb, nil, aLC, func(i cmaf.Init) { init = i.Data }, func(c cmaf.Chunk) {
		if data == nil {
			data = c.Data
		}
	})
	for a := range 40 {
		d := time.Duration(a) * 1024 * time.Second / 48000
		if err := p.WriteAU(media.AccessUnit{Kind: media.Audio, DTS: d, PTS: d, Key: true, Frame: []byte{0x21, 0x10, 0x04}}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		tb.Fatal(err)
	}
	return data, init
}

// TestPlannerFillsAfterGap: after a lost chunk the planner appends the
// dependents with their video replaced by the GOP's keyframe, instead of
// dropping them with their audio; at a join it still waits for a keyframe.
func TestPlannerFillsAfterGap(t *testing.T) {
	initData, chunks := packagerStream(t, 2*time.Second, 6*time.Second)
	var p Planner
	if _, err := p.Init(1, initData); err != nil {
		t.Fatal(err)
	}
	h := func(c cmaf.Chunk) chunk.Header {
		var f chunk.Flags
		if c.Keyframe {
			f |= chunk.FlagKeyframe
		}
		return chunk.Header{Flags: f, Epoch: 1, Seq: c.Seq, MediaTime: uint64(c.MediaTime / time.Microsecond), Duration: uint32(c.Duration / time.Microsecond)}
	}
	// Join mid-GOP at chunk index 2: the chunks before the next keyframe
	// (k1) are dropped. Lose the fourth chunk of that GOP; the ones after
	// it up to the next keyframe (k2) are filled.
	k1, k2 := -1, -1
	for i := 2; i < len(chunks); i++ {
		if chunks[i].Keyframe {
			if k1 < 0 {
				k1 = i
			} else if k2 < 0 {
				k2 = i
			}
		}
	}
	if k1 < 0 || k2 < k1+5 {
		t.Fatalf("keyframes at %d and %d", k1, k2)
	}
	lost := chunks[k1+3].Seq
	var appended []uint64
	for _, c := range chunks[2:] {
		if c.Seq == lost {
			continue
		}
		for _, op := range p.Chunk(h(c), c.Data) {
			if op.Kind != OpAppend {
				continue
			}
			appended = append(appended, op.Seq)
			if dep := c.Seq > lost && c.Seq < chunks[k2].Seq; dep {
				if bytes.Equal(op.Data, c.Data) {
					t.Errorf("chunk %d appended as is after the loss", c.Seq)
				}
				if op.Key {
					t.Errorf("filled chunk %d marked as a random access point", c.Seq)
				}
				if math.Abs(op.Start-c.MediaTime.Seconds()) > 1e-5 || math.Abs(op.End-op.Start-c.Duration.Seconds()) > 1e-5 {
					t.Errorf("filled chunk %d placed at %g–%g", c.Seq, op.Start, op.End)
				}
			} else if !bytes.Equal(op.Data, c.Data) {
				t.Errorf("chunk %d changed", c.Seq)
			}
		}
	}
	st := p.Stats()
	if len(appended) == 0 || appended[0] != chunks[k1].Seq {
		t.Fatalf("appended %v, want from the keyframe chunk %d", appended, chunks[k1].Seq)
	}
	if want := len(chunks) - k1 - 1; len(appended) != want {
		t.Errorf("appended %d chunks %v, want %d (all from %d but the lost one)", len(appended), appended, want, chunks[k1].Seq)
	}
	filled, dropped := uint64(k2-(k1+4)), uint64(k1-2)
	if st.Gaps != 1 || st.Filled != filled || st.Dropped != dropped {
		t.Errorf("stats %+v, want 1 gap, %d filled, %d dropped (the join's)", st, filled, dropped)
	}
}

// FuzzFillVideo: any bytes as either chunk give a fragment or ErrFragment,
// never a panic; a result parses again.
func FuzzFillVideo(f *testing.F) {
	_, chunks := packagerStream(f, time.Second, 2*time.Second)
	f.Add(chunks[1].Data, chunks[0].Data, uint32(1))
	f.Add(chunks[2].Data, chunks[0].Data, uint32(2))
	f.Fuzz(func(t *testing.T, dep, key []byte, id uint32) {
		out, err := FillVideo(dep, key, id)
		if err != nil {
			if !errors.Is(err, ErrFragment) {
				t.Fatalf("error %v is not ErrFragment", err)
			}
			return
		}
		if _, err := parseFragment(out); err != nil {
			t.Fatalf("the filled fragment does not parse: %v", err)
		}
	})
}
