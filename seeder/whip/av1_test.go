package whip

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
)

// OBUs in media/av1's form (no size field) for the table: a sequence
// header, a frame and a frame header, with made-up payloads.
var (
	obuSeq   = []byte{0x08, 0xaa, 0xbb}
	obuFrame = []byte{0x30, 0x10, 0x11, 0x12, 0x13}
	obuFH    = []byte{0x18, 0x20}
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestAV1Depacketizer(t *testing.T) {
	type step struct {
		payload []byte
		want    [][]byte
		err     error // nil: any error fails; errAny: some error wanted
	}
	errAny := errors.New("any error")
	cases := []struct {
		name  string
		steps []step
	}{
		{"one OBU, W=1", []step{{cat([]byte{0x10}, obuFrame), [][]byte{obuFrame}, nil}}},
		{"two OBUs, W=0, each with a length", []step{{cat([]byte{0x00, 3}, obuSeq, []byte{5}, obuFrame), [][]byte{obuSeq, obuFrame}, nil}}},
		{"three OBUs, W=3, the last without a length", []step{{cat([]byte{0x38, 3}, obuSeq, []byte{2}, obuFH, obuFrame), [][]byte{obuSeq, obuFH, obuFrame}, nil}}},
		{"temporal delimiter and tile list left out", []step{{cat([]byte{0x30, 1, 0x10, 2, 0x40, 0x01}, obuFrame), [][]byte{obuFrame}, nil}}},
		{"size field inside the element stripped", []step{{[]byte{0x10, 0x32, 4, 0x10, 0x11, 0x12, 0x13}, [][]byte{obuFrame}, nil}}},
		{"OBU extension header kept", []step{{[]byte{0x10, 0x34, 0x28, 0x01, 0x02}, [][]byte{{0x34, 0x28, 0x01, 0x02}}, nil}}},
		{"an OBU in three fragments", []step{
			{cat([]byte{0x50}, obuFrame[:2]), nil, nil},
			{cat([]byte{0xd0}, obuFrame[2:3]), nil, nil},
			{cat([]byte{0x90}, obuFrame[3:]), [][]byte{obuFrame}, nil},
		}},
		{"a fragment's end, then whole OBUs, then a new fragment", []step{
			{cat([]byte{0x60, 3}, obuSeq, obuFrame[:1]), [][]byte{obuSeq}, nil},
			{cat([]byte{0xe0, 4}, obuFrame[1:], obuFH[:1]), [][]byte{obuFrame}, nil},
			{cat([]byte{0x90}, obuFH[1:]), [][]byte{obuFH}, nil},
		}},
		{"a continuation without its start", []step{{cat([]byte{0x90}, obuFrame[2:]), nil, errAV1NoStart}}},
		{"a new OBU while a fragment waits", []step{
			{cat([]byte{0x50}, obuFrame[:2]), nil, nil},
			{cat([]byte{0x10}, obuFH), nil, errAV1NoEnd},
			{cat([]byte{0x10}, obuFH), [][]byte{obuFH}, nil},
		}},
		{"fewer elements than W", []step{{cat([]byte{0x20, 5}, obuFrame), nil, errAV1Count}}},
		{"fewer elements than W, a length missing", []step{{cat([]byte{0x30, 5}, obuFrame), nil, errAV1LEB128}}},
		{"element longer than the payload", []step{{cat([]byte{0x00, 9}, obuFrame), nil, errAV1Element}}},
		{"size field shorter than the element", []step{{[]byte{0x10, 0x32, 1, 0x10, 0x11}, nil, errAV1Trailing}}},
		{"forbidden bit", []step{{[]byte{0x10, 0xb0, 1}, nil, errAny}}},
		{"aggregation header alone", []step{{[]byte{0x10}, nil, errAV1Short}}},
		{"length of nine leb128 bytes", []step{{[]byte{0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, nil, errAV1LEB128}}},
		{"length of 2^32", []step{{[]byte{0x00, 0x80, 0x80, 0x80, 0x80, 0x10}, nil, errAV1LEB128}}},
		{"empty elements skipped", []step{{cat([]byte{0x00, 0, 5}, obuFrame, []byte{0}), [][]byte{obuFrame}, nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newAV1Depacketizer()
			for i, s := range tc.steps {
				got, err := d.push(s.payload)
				switch {
				case s.err == errAny && err == nil, s.err != nil && s.err != errAny && !errors.Is(err, s.err):
					t.Fatalf("step %d: error %v, want %v", i, err, s.err)
				case s.err == nil && err != nil:
					t.Fatalf("step %d: %v", i, err)
				}
				if len(got) != len(s.want) {
					t.Fatalf("step %d: %x, want %x", i, got, s.want)
				}
				for j := range got {
					if !bytes.Equal(got[j], s.want[j]) {
						t.Fatalf("step %d OBU %d: %x, want %x", i, j, got[j], s.want[j])
					}
				}
			}
		})
	}
}

// av1Packets packetises a temporal unit with pion's payloader (what pion
// clients and, in the same format, browsers send).
func av1Packets(tu []byte, mtu uint16, seq *uint16, ts uint32) []*rtp.Packet {
	var out []*rtp.Packet
	pay := &codecs.AV1Payloader{}
	ps := pay.Payload(mtu, tu)
	for i, p := range ps {
		out = append(out, &rtp.Packet{Header: rtp.Header{SequenceNumber: *seq, Timestamp: ts, Marker: i == len(ps)-1}, Payload: p})
		*seq++
	}
	return out
}

// wantOBUs is what a temporal unit should come back as: its OBUs without
// the temporal delimiter.
func wantOBUs(t testing.TB, tu []byte) [][]byte {
	obus, err := av1.Split(nil, tu)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, o := range obus {
		if av1.Type(o) != av1.OBUTemporalDelimiter {
			out = append(out, o)
		}
	}
	return out
}

// TestAV1AssemblerRoundTrip: real SVT-AV1 temporal units, packetised by
// pion at several MTUs (big key frames span many packets, small frames
// share one with the sequence header), come back as their OBUs, one frame
// per temporal unit, with key frames and the sequence header where the
// encoder put them.
func TestAV1AssemblerRoundTrip(t *testing.T) {
	tus := av1test.TUs(t)
	for _, mtu := range []uint16{60, 300, 1200} {
		a := newAV1Assembler()
		seq := uint16(65500) // wraps
		packets := 0
		for i, tu := range tus {
			ps := av1Packets(tu, mtu, &seq, uint32(i*3000))
			packets += len(ps)
			var got []frame
			for _, p := range ps {
				got = append(got, a.push(p)...)
			}
			want := wantOBUs(t, tu)
			if len(got) != 1 || got[0].ts != uint32(i*3000) || len(got[0].nalus) != len(want) {
				t.Fatalf("MTU %d TU %d: %d frames, want 1 of %d OBUs", mtu, i, len(got), len(want))
			}
			for j := range want {
				if !bytes.Equal(got[0].nalus[j], want[j]) {
					t.Fatalf("MTU %d TU %d OBU %d differs", mtu, i, j)
				}
			}
			key := av1.IsKey(got[0].nalus, false)
			if key != (i%av1test.KeyEvery == 0) || (av1.SequenceHeader(got[0].nalus) != nil) != key {
				t.Fatalf("MTU %d TU %d: key %v, sequence header %v", mtu, i, key, av1.SequenceHeader(got[0].nalus) != nil)
			}
		}
		if a.malformed != 0 {
			t.Fatalf("MTU %d: %d malformed", mtu, a.malformed)
		}
		t.Logf("MTU %d: %d TUs in %d packets", mtu, len(tus), packets)
	}
}

// TestAV1AssemblerDrops: a temporal unit that lost a packet, or ended
// inside an OBU, is dropped whole; the next one is whole again.
func TestAV1AssemblerDrops(t *testing.T) {
	tus := av1test.TUs(t)
	a := newAV1Assembler()
	seq := uint16(0)
	ps := av1Packets(tus[0], 300, &seq, 0)
	if len(ps) < 3 {
		t.Fatalf("key frame in %d packets", len(ps))
	}
	var got []frame
	for i, p := range ps {
		if i == 1 {
			a.lost()
			continue
		}
		got = append(got, a.push(p)...)
	}
	if len(got) != 0 {
		t.Fatalf("a temporal unit that lost a packet came out: %d OBUs", len(got[0].nalus))
	}
	// An encoder that ends a temporal unit inside an OBU (Y on the marker
	// packet).
	bad := &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: 3000, Marker: true}, Payload: cat([]byte{0x50}, obuFrame[:2])}
	seq++
	if f := a.push(bad); len(f) != 0 || a.malformed == 0 {
		t.Fatalf("unfinished OBU: %d frames, %d malformed", len(f), a.malformed)
	}
	for _, p := range av1Packets(tus[1], 300, &seq, 6000) {
		got = append(got, a.push(p)...)
	}
	if len(got) != 1 || len(got[0].nalus) != len(wantOBUs(t, tus[1])) {
		t.Fatalf("the next temporal unit: %d frames", len(got))
	}
}

// TestAV1DepacketizerBoundsFragments: a fragment run that never ends is
// cut at the temporal unit bound, not held.
func TestAV1DepacketizerBoundsFragments(t *testing.T) {
	d := newAV1Depacketizer()
	chunk := make([]byte, 60000)
	if _, err := d.push(cat([]byte{0x50, 0x30}, chunk)); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < maxAV1TUSize/len(chunk)+1 && err == nil; i++ {
		_, err = d.push(cat([]byte{0xd0}, chunk))
	}
	if !errors.Is(err, errAV1TooBig) || len(d.frag) != 0 || d.inFrag {
		t.Fatalf("after %d bytes: %v, %d held", maxAV1TUSize, err, len(d.frag))
	}
}

func FuzzAV1Depacketize(f *testing.F) {
	// Seeds: real temporal units as pion packetises them, each packet
	// preceded by its length byte (bit 7: marker), as the harness reads.
	tus := av1test.TUs(f)
	seq := uint16(0)
	for i, tu := range tus[:3] {
		var in []byte
		for _, p := range av1Packets(tu, 120, &seq, uint32(i)) {
			b := byte(len(p.Payload))
			if p.Marker {
				b |= 0x80
			}
			in = append(in, b)
			in = append(in, p.Payload...)
		}
		f.Add(in)
	}
	f.Add([]byte{0x86, 0x10, 0x30, 0x10, 0x11, 0x12, 0x13})
	f.Add([]byte{3, 0x50, 0x30, 0x10, 2, 0xd0, 0x11, 0x83, 0x90, 0x12, 0x13})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newAV1Assembler()
		seq, ts := uint16(0), uint32(0)
		for len(data) > 0 {
			n := int(data[0] & 0x7f)
			marker := data[0]&0x80 != 0
			data = data[1:]
			n = min(n, len(data))
			p := &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: data[:n]}
			data = data[n:]
			seq++
			if marker {
				ts += 3000
			}
			if seq%11 == 0 {
				a.lost()
			}
			for _, fr := range a.push(p) {
				if len(fr.nalus) > av1.MaxOBUsPerTU {
					t.Fatalf("%d OBUs", len(fr.nalus))
				}
				size := 0
				for _, o := range fr.nalus {
					if len(o) == 0 || o[0]&0x80 != 0 || o[0]&0x02 != 0 || len(o) < 1+int(o[0]>>2&1) {
						t.Fatalf("bad OBU %x", o)
					}
					if ty := av1.Type(o); ty == av1.OBUTemporalDelimiter || ty == av1.OBUTileList {
						t.Fatalf("OBU of type %d kept", ty)
					}
					size += len(o)
				}
				if size > maxAV1TUSize || av1.SampleSize(fr.nalus) > maxFrameSize {
					t.Fatalf("temporal unit of %d bytes", size)
				}
				_ = av1.IsKey(fr.nalus, false)
				_ = hasAV1Frame(fr.nalus)
			}
		}
	})
}

// TestAV1Frames: the session's handling of assembled temporal units: none
// before the first key frame, a VideoConfig with the first sequence header
// and again only when it changes, a key frame whose sequence header is
// unusable dropped (and the frames after it until a good key frame).
func TestAV1Frames(t *testing.T) {
	srv, err := New(Config{Authorize: testAuthorize, Publisher: &recPublisher{}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recSession{ended: make(chan struct{})}
	s := &session{srv: srv, pub: rec, stats: sessionStats{dropped: make(map[string]uint64)}}
	s.video = &videoState{tr: &inTrack{kind: media.Video, codec: media.AV1}, clock: newClock(90000), needKey: true}
	s.video.clock.start(0, 0)
	split := func(tu []byte) [][]byte { return wantOBUs(t, tu) }
	big, small := av1test.TUs(t), av1test.FileTUs(t, av1test.Small)
	ts := uint32(0)
	feed := func(obus [][]byte) {
		s.av1Frame(frame{ts: ts, nalus: obus})
		ts += 3000
	}
	feed(split(big[1]))                // before any key frame
	feed([][]byte{{0x28, 0x01}})       // metadata alone
	feed(split(big[0]))                // key frame with the sequence header
	feed(split(big[1]))                // a delta frame
	feed(split(big[av1test.KeyEvery])) // the same sequence header again
	bad := split(small[0])
	for i, o := range bad {
		if av1.Type(o) == av1.OBUSequenceHeader {
			bad[i] = []byte{0x08, 0xff} // truncated
		}
	}
	feed(bad)             // unusable sequence header
	feed(split(small[1])) // delta after it: dropped
	feed(split(small[0])) // the 160x90 key frame: a new config
	feed(split(small[1]))
	vcfg, _, aus := rec.snapshot()
	if len(vcfg) != 2 || !bytes.Equal(vcfg[0].SeqHeader, av1test.Config(t).SeqHeader) ||
		!bytes.Equal(vcfg[1].SeqHeader, av1test.FileConfig(t, av1test.Small).SeqHeader) {
		t.Fatalf("%d video configs: %+v", len(vcfg), vcfg)
	}
	var keys []bool
	for _, au := range aus {
		keys = append(keys, au.Key)
	}
	if want := []bool{true, false, true, true, false}; !slices.Equal(keys, want) {
		t.Fatalf("AUs with key flags %v, want %v", keys, want)
	}
	for _, r := range []string{"before_keyframe", "bad_sequence_header"} {
		if s.stats.dropped["video/"+r] == 0 {
			t.Errorf("no %s drop: %v", r, s.stats.dropped)
		}
	}
}
