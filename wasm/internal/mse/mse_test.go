package mse

import (
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/internal/x265test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// Parameter sets from libx264 output (ffmpeg testsrc2).
var (
	spsHigh = mustHex("6764001facd9405005bb0110000003001000000303c0f1831960")
	ppsHigh = mustHex("68ebe3cb22c0")
	spsBase = mustHex("6742c01ed900a02ff970110000030001000003003c0f162e48")
	ppsBase = mustHex("68cb83cb20")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// packagerInit has the real packager write the init segment for the given
// configuration (nil: no such track).
func packagerInit(tb testing.TB, v *media.VideoConfig, a *media.AudioConfig) cmaf.Init {
	tb.Helper()
	var inits []cmaf.Init
	p := newPackager(tb, v, a, func(i cmaf.Init) { inits = append(inits, i) }, func(cmaf.Chunk) {})
	for i := range 60 {
		d := time.Duration(i) * 20 * time.Millisecond
		if v != nil {
			nal := []byte{0x41, 0x9a, 0x00, 0x01}
			if i == 0 {
				nal = []byte{0x65, 0x88, 0x84, 0x00}
			}
			if v.Codec == media.H265 {
				nal = []byte{0x02, 0x01, 0xd0, 0x01} // TRAIL_R
				if i == 0 {
					nal = []byte{0x26, 0x01, 0xaf, 0x01} // IDR_W_RADL
				}
			}
			if err := p.WriteAU(media.AccessUnit{Kind: media.Video, DTS: d, PTS: d, Key: i == 0, NALUs: [][]byte{nal}}); err != nil {
				tb.Fatal(err)
			}
		}
		if a != nil {
			if err := p.WriteAU(media.AccessUnit{Kind: media.Audio, DTS: d, PTS: d, Key: true, Frame: []byte{0x21, 0x10, 0x04}}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := p.Flush(); err != nil {
		tb.Fatal(err)
	}
	if len(inits) != 1 {
		tb.Fatalf("%d inits", len(inits))
	}
	return inits[0]
}

var (
	vHigh = &media.VideoConfig{SPS: spsHigh, PPS: ppsHigh}
	vBase = &media.VideoConfig{SPS: spsBase, PPS: ppsBase}
	aLC   = &media.AudioConfig{Codec: media.AAC, ASC: []byte{0x11, 0x90}, SampleRate: 48000, Channels: 2}
	aHE   = &media.AudioConfig{Codec: media.AAC, ASC: []byte{0x2b, 0x92, 0x08, 0x00}, SampleRate: 24000, Channels: 2}
	aOpus = &media.AudioConfig{Codec: media.Opus, SampleRate: 48000, Channels: 2}
)

// TestParseInitMatchesPackager: the codec strings read back from real init
// segments are the ones the packager announced, so the browser glue can
// work from the init alone (the mesh delivers no codec string).
func TestParseInitMatchesPackager(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    *media.VideoConfig
		a    *media.AudioConfig
		want string
	}{
		{"high+aac", vHigh, aLC, `video/mp4; codecs="avc1.64001f,mp4a.40.2"`},
		{"baseline+opus", vBase, aOpus, `video/mp4; codecs="avc1.42c01e,Opus"`},
		{"video only", vHigh, nil, `video/mp4; codecs="avc1.64001f"`},
		{"aac only", nil, aLC, `audio/mp4; codecs="mp4a.40.2"`},
		{"he-aac only", nil, aHE, `audio/mp4; codecs="mp4a.40.5"`},
		{"opus only", nil, aOpus, `audio/mp4; codecs="Opus"`},
		// libx265 Main profile, level 2, progressive frame-only source.
		{"hevc+aac", hevcConfig(t), aLC, `video/mp4; codecs="hvc1.1.6.L60.90,mp4a.40.2"`},
		// SVT-AV1 Main profile, 8 bit, 320x180.
		{"av1+opus", av1Config(t), aOpus, `video/mp4; codecs="av01.0.00M.08,Opus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := packagerInit(t, tc.v, tc.a)
			info, err := ParseInit(in.Data)
			if err != nil {
				t.Fatal(err)
			}
			if info.MIME() != in.MIME() || info.MIME() != tc.want {
				t.Fatalf("MIME %q, packager %q, want %q", info.MIME(), in.MIME(), tc.want)
			}
		})
	}
}

// TestSupportedMIME: the player offers the browser each spelling of a codec
// that browsers disagree on (Safari takes only "Opus" in MP4, older
// Firefox only "opus") and uses the first it accepts.
func TestSupportedMIME(t *testing.T) {
	const (
		opusAV = `video/mp4; codecs="avc1.42c01e,Opus"`
		aacAV  = `video/mp4; codecs="avc1.64001f,mp4a.40.2"`
	)
	accepts := func(ok ...string) func(string) bool {
		return func(m string) bool {
			for _, c := range ok {
				if strings.Contains(m, c) {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name    string
		mime    string
		browser func(string) bool
		want    string
	}{
		{"safari", opusAV, accepts(`,Opus"`), opusAV},
		{"old firefox", opusAV, accepts(`,opus"`), `video/mp4; codecs="avc1.42c01e,opus"`},
		{"chromium", opusAV, accepts(`,Opus"`, `,opus"`), opusAV},
		{"lowercase in", `audio/mp4; codecs="opus"`, accepts(`"Opus"`), `audio/mp4; codecs="Opus"`},
		{"aac", aacAV, accepts("mp4a.40.2"), aacAV},
		{"none", opusAV, accepts(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := SupportedMIME(tc.mime, tc.browser)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("SupportedMIME = %q %v, want %q", got, ok, tc.want)
			}
		})
	}
}

func TestParseInitRejects(t *testing.T) {
	good := packagerInit(t, vHigh, aLC).Data
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"truncated", good[:len(good)-7]},
		{"no moov", good[:32]}, // the ftyp alone
		{"size too big", append([]byte{0xff, 0xff, 0xff, 0xff}, good[4:]...)},
		{"size too small", append([]byte{0, 0, 0, 3}, good[4:]...)},
		{"huge", make([]byte, MaxInitSize+1)},
		{"unknown entry", replaceAll(good, "avc1", "hvc1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseInit(tc.data); !errors.Is(err, ErrInit) {
				t.Fatalf("err %v, want ErrInit", err)
			}
		})
	}
}

func replaceAll(b []byte, old, repl string) []byte {
	out := append([]byte(nil), b...)
	for i := 0; i+len(old) <= len(out); i++ {
		if string(out[i:i+len(old)]) == old {
			copy(out[i:], repl)
		}
	}
	return out
}

func TestDescriptorAndAOT(t *testing.T) {
	// A 4-byte length (0x80 0x80 0x80 0x05) as some muxers write it.
	tag, body, rest, err := descriptor([]byte{0x05, 0x80, 0x80, 0x80, 0x02, 0xf8, 0x20, 0xaa})
	if err != nil || tag != 5 || len(body) != 2 || len(rest) != 1 {
		t.Fatalf("descriptor: %x %x %x %v", tag, body, rest, err)
	}
	// Escaped object type: 31, then 6 bits 000010 → 34.
	if aot, err := audioObjectType([]byte{0xf8, 0x40}); err != nil || aot != 34 {
		t.Fatalf("aot %d %v", aot, err)
	}
	if _, _, _, err := descriptor([]byte{0x05, 0x80, 0x80, 0x80, 0x80, 0x01}); err == nil {
		t.Fatal("5-byte length accepted")
	}
}

// FuzzSupportedMIME: whatever the type string, SupportedMIME only ever
// answers with a type the browser accepted, and finds the canonical one.
func FuzzSupportedMIME(f *testing.F) {
	f.Add(`video/mp4; codecs="avc1.42c01e,Opus"`, "opus")
	f.Add(`audio/mp4; codecs="opus"`, "Opus")
	f.Add(`audio/mp4; codecs="`, "")
	f.Add(`video/mp4`, "mp4")
	f.Fuzz(func(t *testing.T, mime, accept string) {
		asked := 0
		supported := func(m string) bool { asked++; return strings.Contains(m, accept) }
		got, ok := SupportedMIME(mime, supported)
		if ok && !supported(got) {
			t.Fatalf("%q returned but not supported", got)
		}
		if asked > 2*(maxSpellings()+1) {
			t.Fatalf("%d isTypeSupported calls", asked)
		}
		if !ok && supported(mime) {
			t.Fatalf("%q itself is supported but was refused", mime)
		}
	})
}

// hevcConfig reads the parameter sets of media/hevc's libx265 testdata.
func hevcConfig(tb testing.TB) *media.VideoConfig {
	v := x265test.Config(tb, "x265.hevc")
	return &v
}

// av1Config is the sequence header of media/av1's SVT-AV1 testdata.
func av1Config(tb testing.TB) *media.VideoConfig {
	v := av1test.Config(tb)
	return &v
}

func FuzzParseInit(f *testing.F) {
	f.Add(packagerInit(f, vHigh, aLC).Data)
	f.Add(packagerInit(f, av1Config(f), aOpus).Data)
	f.Add(packagerInit(f, hevcConfig(f), nil).Data)
	f.Add(packagerInit(f, nil, aOpus).Data)
	f.Add([]byte{0, 0, 0, 1, 'm', 'o', 'o', 'v', 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseInit(b)
		if err == nil && info.Codecs() == "" {
			t.Fatal("no error and no codecs")
		}
	})
}

func BenchmarkParseInit(b *testing.B) {
	data := packagerInit(b, vHigh, aLC).Data
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseInit(data); err != nil {
			b.Fatal(err)
		}
	}
}

// --- Planner ----------------------------------------------------------------

func hdr(epoch uint32, seq uint64, key bool, tMs, dMs int) chunk.Header {
	h := chunk.Header{Epoch: epoch, Seq: seq, MediaTime: uint64(tMs) * 1000, Duration: uint32(dMs) * 1000}
	if key {
		h.Flags |= chunk.FlagKeyframe
	}
	return h
}

func kinds(ops []Op) []OpKind {
	var ks []OpKind
	for _, o := range ops {
		ks = append(ks, o.Kind)
	}
	return ks
}

func eqKinds(a []OpKind, b ...OpKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlannerSequence(t *testing.T) {
	av := packagerInit(t, vHigh, aLC).Data
	av2 := packagerInit(t, vBase, aLC).Data // another codec: a new epoch with changeType
	var p Planner

	// Media before any init is dropped.
	if ops := p.Chunk(hdr(1, 1, true, 0, 250), []byte("x")); ops != nil {
		t.Fatalf("chunk before init: %v", ops)
	}
	ops, err := p.Init(1, av)
	if err != nil || !eqKinds(kinds(ops), OpCreate, OpAppend) || !ops[1].Init || ops[0].MIME != `video/mp4; codecs="avc1.64001f,mp4a.40.2"` {
		t.Fatalf("first init: %+v %v", ops, err)
	}
	if ops, _ := p.Init(1, av); ops != nil {
		t.Fatalf("repeated init: %v", ops)
	}
	// Joining mid-GOP: the first chunk must be a keyframe.
	if ops := p.Chunk(hdr(1, 5, false, 1000, 250), []byte("p")); ops != nil {
		t.Fatal("non-keyframe start appended")
	}
	ops = p.Chunk(hdr(1, 6, true, 1250, 250), []byte("k"))
	if len(ops) != 1 || ops[0].Start != 1.25 || ops[0].End != 1.5 || ops[0].Offset != 0 {
		t.Fatalf("keyframe: %+v", ops)
	}
	if ops := p.Chunk(hdr(1, 7, false, 1500, 250), []byte("p")); len(ops) != 1 {
		t.Fatal("next chunk dropped")
	}
	if ops := p.Chunk(hdr(1, 7, false, 1500, 250), []byte("p")); ops != nil {
		t.Fatal("repeat appended")
	}
	// A gap: skip to the next keyframe.
	if ops := p.Chunk(hdr(1, 9, false, 2000, 250), []byte("p")); ops != nil {
		t.Fatal("chunk after gap appended")
	}
	if ops := p.Chunk(hdr(1, 10, true, 2250, 250), []byte("k")); len(ops) != 1 || ops[0].Start != 2.25 {
		t.Fatalf("keyframe after gap: %+v", ops)
	}
	// Broadcaster restart: epoch 2 with timestamps from 0 follows on.
	ops, err = p.Init(2, av)
	if err != nil || !eqKinds(kinds(ops), OpAppend) {
		t.Fatalf("same-codec epoch: %+v %v", ops, err)
	}
	ops = p.Chunk(hdr(2, 1, true, 0, 250), []byte("k"))
	if len(ops) != 1 || math.Abs(ops[0].Start-2.5) > 1e-9 || math.Abs(ops[0].Offset-2.5) > 1e-9 {
		t.Fatalf("restart not rebased: %+v", ops)
	}
	ops = p.Chunk(hdr(2, 2, false, 250, 250), []byte("p"))
	if len(ops) != 1 || math.Abs(ops[0].Start-2.75) > 1e-9 {
		t.Fatalf("after rebase: %+v", ops)
	}
	// A codec change continues the timeline: changeType, no rebase.
	ops, err = p.Init(3, av2)
	if err != nil || !eqKinds(kinds(ops), OpChangeType, OpAppend) || ops[0].MIME != `video/mp4; codecs="avc1.42c01e,mp4a.40.2"` {
		t.Fatalf("codec change: %+v %v", ops, err)
	}
	ops = p.Chunk(hdr(3, 1, true, 500, 250), []byte("k"))
	if len(ops) != 1 || math.Abs(ops[0].Start-3.0) > 1e-9 {
		t.Fatalf("continuing epoch moved: %+v", ops)
	}
	// A stale epoch's chunk and an older init are ignored.
	if ops := p.Chunk(hdr(2, 3, false, 500, 250), []byte("p")); ops != nil {
		t.Fatal("stale epoch appended")
	}
	if ops, _ := p.Init(2, av); ops != nil {
		t.Fatal("older init taken")
	}
	// Rebuild: fresh MediaSource, the init again, resume at a keyframe.
	ops = p.Rebuild()
	if !eqKinds(kinds(ops), OpCreate, OpAppend) || !ops[1].Init {
		t.Fatalf("rebuild: %+v", ops)
	}
	if ops := p.Chunk(hdr(3, 2, false, 750, 250), []byte("p")); ops != nil {
		t.Fatal("non-keyframe after rebuild appended")
	}
	st := p.Stats()
	if st.Gaps != 1 || st.Rebases != 1 || st.Dropped != 3 || st.Stale != 3 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := p.Init(4, []byte("garbage")); !errors.Is(err, ErrInit) {
		t.Fatalf("bad init: %v", err)
	}
}

func TestPlannerAudioOnlyGap(t *testing.T) {
	var p Planner
	if _, err := p.Init(1, packagerInit(t, nil, aOpus).Data); err != nil {
		t.Fatal(err)
	}
	if len(p.Chunk(hdr(1, 1, false, 0, 250), nil)) != 1 || len(p.Chunk(hdr(1, 3, false, 500, 250), nil)) != 1 {
		t.Fatal("audio-only chunks need no keyframe")
	}
}

// --- Edge -------------------------------------------------------------------

func TestEdge(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	e := NewEdge(EdgeConfig{Settle: time.Nanosecond}) // no settling seeks: TestEdgeSettle
	steps := []struct {
		name string
		v    View
		want Action
	}{
		{"nothing buffered", View{Now: at(0), Paused: true}, Action{Rate: 1}},
		{"too little to start", View{Now: at(0), Buffered: []Range{{10, 10.2}}, Paused: true}, Action{Rate: 1}},
		{"start near the edge", View{Now: at(100), Buffered: []Range{{10, 12.5}}, Paused: true}, Action{Seek: true, SeekTo: 11.5, Play: true, Rate: 1}},
		{"on target", View{Now: at(1200), Current: 11.5, Buffered: []Range{{10, 12.5}}, Rate: 1}, Action{Rate: 1}},
		{"slightly behind: no change", View{Now: at(1500), Current: 11.8, Buffered: []Range{{10, 13.0}}, Rate: 1}, Action{Rate: 1}},
		{"behind: speed up", View{Now: at(2000), Current: 12.3, Buffered: []Range{{10, 13.7}}, Rate: 1}, Action{Rate: 1.12}},
		{"far behind: cap", View{Now: at(2200), Current: 12.5, Buffered: []Range{{10, 15.4}}, Rate: 1.12}, Action{Rate: 1.15}},
		{"still a little behind: keep catching", View{Now: at(2400), Current: 13.3, Buffered: []Range{{10, 14.4}}, Rate: 1.15}, Action{Rate: 1.03}},
		{"barely behind: keep catching at the least speed-up", View{Now: at(2500), Current: 13.34, Buffered: []Range{{10, 14.4}}, Rate: 1.03}, Action{Rate: 1.02}},
		{"caught up", View{Now: at(2600), Current: 13.4, Buffered: []Range{{10, 14.4}}, Rate: 1.01}, Action{Rate: 1}},
		{"thin buffer: no catching up", View{Now: at(2700), Current: 13.4, Buffered: []Range{{10, 13.6}, {14, 15}}, Rate: 1}, Action{Rate: 1}},
		{"much too far behind: jump", View{Now: at(3000), Current: 13.4, Buffered: []Range{{10, 17}}, Rate: 1.15}, Action{Seek: true, SeekTo: 16, Rate: 1}},
		{"seeking: hands off", View{Now: at(3100), Current: 16, Buffered: []Range{{10, 17}}, Seeking: true, Rate: 1}, Action{Rate: 1}},
		{"in a hole, cooling down", View{Now: at(3500), Current: 17.2, Buffered: []Range{{10, 17}, {17.5, 18.5}}, Rate: 1}, Action{Rate: 1}},
		{"in a hole: skip it", View{Now: at(4100), Current: 17.2, Buffered: []Range{{10, 17}, {17.5, 18.5}}, Rate: 1}, Action{Seek: true, SeekTo: 17.5, Rate: 1}},
		{"paused by the user: no speed-up", View{Now: at(5200), Current: 17.5, Buffered: []Range{{10, 20}}, Paused: true, Rate: 1}, Action{Rate: 1}},
		{"well under target: slow down", View{Now: at(5400), Current: 19.5, Buffered: []Range{{10, 20}}, Rate: 1}, Action{Rate: 0.95}},
		{"buffer growing back: keep slowing", View{Now: at(5600), Current: 19.5, Buffered: []Range{{10, 20.3}}, Rate: 0.95}, Action{Rate: 0.95}},
		{"back near target", View{Now: at(5800), Current: 19.5, Buffered: []Range{{10, 20.47}}, Rate: 0.95}, Action{Rate: 1}},
		{"slightly under: no change", View{Now: at(6000), Current: 19.5, Buffered: []Range{{10, 20.3}}, Rate: 1}, Action{Rate: 1}},
	}
	for _, s := range steps {
		got := e.Decide(s.v)
		if got.Seek != s.want.Seek || got.Play != s.want.Play || math.Abs(got.SeekTo-s.want.SeekTo) > 1e-9 || math.Abs(got.Rate-s.want.Rate) > 1e-9 {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	// A target from the engine: 2 s behind is now on target, 0.9 s is
	// well under it.
	e.SetTarget(2 * time.Second)
	if got := e.Decide(View{Now: at(6200), Current: 20, Buffered: []Range{{10, 22}}, Rate: 1}); got.Rate != 1 {
		t.Fatalf("on a 2 s target: %+v", got)
	}
	if got := e.Decide(View{Now: at(6400), Current: 21.1, Buffered: []Range{{10, 22}}, Rate: 1}); got.Rate != 0.95 {
		t.Fatalf("0.9 s behind a 2 s target: %+v", got)
	}
	if e.SetTarget(time.Hour); e.Config().Target != e.Config().Jump {
		t.Fatalf("target %v above the jump %v", e.Config().Target, e.Config().Jump)
	}
	if v := (View{Current: 11, Buffered: []Range{{10, 12.5}}}); Behind(v) != 1.5 || Ahead(v) != 1.5 {
		t.Fatalf("behind %v ahead %v", Behind(v), Ahead(v))
	}
}

// edgeStep is one look at the element and what Edge should do about it.
type edgeStep struct {
	name string
	v    View
	want Action
}

// runEdge has e decide each step in turn.
func runEdge(t *testing.T, e *Edge, steps []edgeStep) {
	t.Helper()
	for _, s := range steps {
		got := e.Decide(s.v)
		if got.Seek != s.want.Seek || got.Play != s.want.Play || math.Abs(got.SeekTo-s.want.SeekTo) > 1e-9 || math.Abs(got.Rate-s.want.Rate) > 1e-9 {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
}

// TestEdgeSettle: playback starts with StartBuffer in, while the engine is
// still bursting the media from the newest keyframe to the live edge; when
// the burst lands, playback is up to a keyframe interval behind its target.
// In the first Settle it seeks to the target instead of catching up by
// speed (which took ~20 s at depth 1 in the glass-to-glass measurement);
// later, or by less than settleExcess, it catches up by speed.
func TestEdgeSettle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	runEdge(t, NewEdge(EdgeConfig{}), []edgeStep{
		{"start with 300 ms in", View{Now: at(0), Buffered: []Range{{10, 10.3}}, Paused: true}, Action{Seek: true, SeekTo: 10, Play: true, Rate: 1}},
		{"the burst lands: 1.2 s over target, seek", View{Now: at(1500), Current: 10.5, Buffered: []Range{{10, 12.7}}, Rate: 1}, Action{Seek: true, SeekTo: 11.7, Rate: 1}},
		{"on target", View{Now: at(2000), Current: 11.7, Buffered: []Range{{10, 12.75}}, Rate: 1}, Action{Rate: 1}},
		{"0.4 s over while settling: by speed", View{Now: at(3200), Current: 12.0, Buffered: []Range{{10, 13.4}}, Rate: 1}, Action{Rate: 1.12}},
		{"0.8 s over while settling: seek", View{Now: at(4400), Current: 12.2, Buffered: []Range{{10, 14.0}}, Rate: 1.12}, Action{Seek: true, SeekTo: 13.0, Rate: 1}},
		{"settled: 0.8 s over is caught up by speed", View{Now: at(6000), Current: 13.2, Buffered: []Range{{10, 15.0}}, Rate: 1}, Action{Rate: 1.15}},
	})
}

// TestEdgeStuckSeek: WebKitGTK's first seek, made before its pipeline had
// any data (currentTime 0, the stream's media from 0.046 s on), stayed
// pending (seeking true, readyState 1) while 40 s of media arrived, and
// Edge kept its hands off a seeking element: the video sat at 0.046 s
// (TestWebKitViewer). A seek pending longer than SeekStuck is made again
// inside the newest range, each retry waiting twice as long; a seek that
// completes resets the count.
func TestEdgeStuckSeek(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	runEdge(t, NewEdge(EdgeConfig{}), []edgeStep{
		{"start at the first frame", View{Now: at(0), Buffered: []Range{{0.046, 0.494}}, Paused: true, Rate: 1}, Action{Seek: true, SeekTo: 0.046, Play: true, Rate: 1}},
		{"seek pending", View{Now: at(250), Current: 0.046, Buffered: []Range{{0.046, 0.494}}, Seeking: true, Rate: 1}, Action{Rate: 1}},
		{"a slow seek is left alone", View{Now: at(4000), Current: 0.046, Buffered: []Range{{0.046, 1.5}}, Seeking: true, Rate: 1}, Action{Rate: 1}},
		{"stuck: seek again near the edge", View{Now: at(4300), Current: 0.046, Buffered: []Range{{0.046, 1.6}}, Seeking: true, Rate: 1}, Action{Seek: true, SeekTo: 0.6, Rate: 1}},
		{"the retry waits twice as long", View{Now: at(12000), Current: 0.6, Buffered: []Range{{0.046, 9}}, Seeking: true, Rate: 1}, Action{Rate: 1}},
		{"stuck again: not on a range's first frame", View{Now: at(12400), Current: 0.6, Buffered: []Range{{0.046, 9}, {9.5, 9.9}}, Seeking: true, Rate: 1}, Action{Seek: true, SeekTo: 9.55, Rate: 1}},
		{"seeked, playing", View{Now: at(13000), Current: 9.6, Buffered: []Range{{0.046, 9}, {9.5, 10.6}}, Rate: 1}, Action{Rate: 1}},
		{"a new seek pending", View{Now: at(14000), Current: 9.6, Buffered: []Range{{0.046, 9}, {9.5, 10.8}}, Seeking: true, Rate: 1}, Action{Rate: 1}},
		{"counted afresh: 4 s again", View{Now: at(18100), Current: 9.6, Buffered: []Range{{0.046, 9}, {9.5, 12}}, Seeking: true, Rate: 1}, Action{Seek: true, SeekTo: 11, Rate: 1}},
	})
}

func TestEvict(t *testing.T) {
	for _, tc := range []struct {
		buf      []Range
		keepFrom float64
		minSpan  float64
		want     Range
		wantOK   bool
	}{
		{nil, 70, 5, Range{}, false},
		{[]Range{{80, 110}}, 70, 5, Range{}, false},
		{[]Range{{67, 110}}, 70, 5, Range{}, false}, // only 3 s to drop: wait for more
		{[]Range{{60, 110}}, 70, 5, Range{60, 70}, true},
		{[]Range{{50, 60}, {62, 110}}, 70, 5, Range{50, 70}, true},
		{[]Range{{98, 110}}, 98, 0.5, Range{}, false},
		{[]Range{{90, 110}}, 98, 0.5, Range{90, 98}, true},
	} {
		got, ok := Evict(tc.buf, tc.keepFrom, tc.minSpan)
		if ok != tc.wantOK || got != tc.want {
			t.Fatalf("Evict(%v, %v): %v %v, want %v %v", tc.buf, tc.keepFrom, got, ok, tc.want, tc.wantOK)
		}
	}
	playing := View{Current: 100, Buffered: []Range{{0, 400}}}
	paused := View{Current: 100, Buffered: []Range{{0, 400}}, Paused: true}
	if KeepFrom(playing, 30, 10) != 70 || KeepFrom(paused, 30, 10) != 390 {
		t.Fatalf("KeepFrom: %v %v", KeepFrom(playing, 30, 10), KeepFrom(paused, 30, 10))
	}
}

func TestStallMeter(t *testing.T) {
	t0 := time.Unix(0, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var m StallMeter
	m.Observe(ms(0), 1.0, true)
	m.Observe(ms(250), 1.25, true)
	m.Observe(ms(500), 1.25, true) // still within the threshold
	if m.Stalled() {
		t.Fatal("stalled too early")
	}
	m.Observe(ms(800), 1.25, true)
	if !m.Stalled() || m.Count() != 1 || m.Total(ms(800)) != 550*time.Millisecond {
		t.Fatalf("stall: %v %d %v", m.Stalled(), m.Count(), m.Total(ms(800)))
	}
	m.Observe(ms(1250), 1.3, true)
	if m.Stalled() || m.Total(ms(5000)) != time.Second {
		t.Fatalf("after recovery: %v %v", m.Stalled(), m.Total(ms(5000)))
	}
	// Paused by the user or waiting for the broadcast: not a stall.
	m.Observe(ms(5000), 1.3, false)
	m.Observe(ms(9000), 1.3, false)
	m.Observe(ms(9100), 1.3, true)
	if m.Stalled() || m.Count() != 1 {
		t.Fatal("standing still while not expected counted as a stall")
	}
}

func BenchmarkPlannerChunk(b *testing.B) {
	var p Planner
	if _, err := p.Init(1, packagerInit(b, vHigh, aLC).Data); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64<<10)
	seq := uint64(0)
	for b.Loop() {
		seq++
		if len(p.Chunk(hdr(1, seq, seq%8 == 1, int(seq)*250, 250), payload)) != 1 {
			b.Fatal("dropped")
		}
	}
}

func BenchmarkEdgeDecide(b *testing.B) {
	e := NewEdge(EdgeConfig{})
	v := View{Now: time.Unix(0, 0), Current: 11, Buffered: []Range{{0, 5}, {6, 12.5}}, Rate: 1}
	e.Decide(View{Now: v.Now, Buffered: v.Buffered, Paused: true})
	for b.Loop() {
		v.Now = v.Now.Add(250 * time.Millisecond)
		e.Decide(v)
	}
}

func TestStreamingHints(t *testing.T) {
	type step struct {
		event string // "start", "end" or "" (no event)
		ahead float64
		want  bool
	}
	tests := []struct {
		name    string
		managed bool
		steps   []step
	}{
		{"plain MediaSource never holds", false, []step{
			{"", 0, true}, {"end", 30, true}, {"start", 30, true},
		}},
		{"managed: before startstreaming, only a full buffer holds", true, []step{
			{"", 0, true}, {"", 2.9, true}, {"", 3, false},
		}},
		{"managed: startstreaming lets everything through", true, []step{
			{"start", 0, true}, {"", 20, true},
		}},
		{"managed: endstreaming holds a full buffer, never an empty one", true, []step{
			{"start", 1, true}, {"end", 1, true}, {"", 5, false}, {"", 0.5, true}, {"start", 5, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStreaming(tt.managed)
			if s.Managed() != tt.managed {
				t.Fatalf("Managed() = %v", s.Managed())
			}
			for i, st := range tt.steps {
				switch st.event {
				case "start":
					s.Start()
				case "end":
					s.End()
				}
				if got := s.AllowAppend(st.ahead); got != st.want {
					t.Fatalf("step %d (%s, %.1f s ahead): AllowAppend = %v, want %v", i, st.event, st.ahead, got, st.want)
				}
			}
		})
	}
	var zero Streaming
	if !zero.AllowAppend(100) {
		t.Fatal("the zero Streaming holds appends")
	}
}

func TestUnsupportedReason(t *testing.T) {
	for _, tc := range []struct{ mime, want string }{
		{`video/mp4; codecs="hvc1.1.6.L93.90,mp4a.40.2"`, "cannot decode HEVC (H.265) video (hvc1.1.6.L93.90). Safari plays this stream"},
		{`video/mp4; codecs="hev1.2.4.L120.B0"`, "cannot decode HEVC"},
		{`video/mp4; codecs="av01.0.08M.08,Opus"`, "cannot decode AV1 video (av01.0.08M.08)"},
		{`video/mp4; codecs="avc1.64001f,mp4a.40.2"`, `cannot play video/mp4; codecs="avc1.64001f,mp4a.40.2"`},
		{`audio/mp4`, "cannot play audio/mp4"},
	} {
		if got := UnsupportedReason(tc.mime); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q in it", tc.mime, got, tc.want)
		}
	}
}
