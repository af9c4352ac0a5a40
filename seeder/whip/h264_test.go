package whip

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// A real SPS/PPS pair (x264, 320x240 baseline).
var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80}
	testPPS = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
)

func TestDepacketizer(t *testing.T) {
	fuStart := []byte{0x7c, 0x85, 1, 2, 3} // FU-A, nri 3, start, type 5
	fuMid := []byte{0x7c, 0x05, 4, 5}
	fuEnd := []byte{0x7c, 0x45, 6}
	stap := []byte{0x78, 0, 3, 0x67, 0xaa, 0xbb, 0, 2, 0x68, 0xcc}
	cases := []struct {
		name     string
		payloads [][]byte
		want     [][]byte // NAL units from all payloads
		errs     int      // payloads refused
	}{
		{"single NAL", [][]byte{{0x65, 1, 2}}, [][]byte{{0x65, 1, 2}}, 0},
		{"STAP-A", [][]byte{stap}, [][]byte{{0x67, 0xaa, 0xbb}, {0x68, 0xcc}}, 0},
		{"FU-A run", [][]byte{fuStart, fuMid, fuEnd}, [][]byte{{0x65, 1, 2, 3, 4, 5, 6}}, 0},
		{"FU-A without start", [][]byte{fuMid, fuEnd}, nil, 2},
		{"FU-A restart drops the first run", [][]byte{fuStart, fuMid, fuStart, fuEnd}, [][]byte{{0x65, 1, 2, 3, 6}}, 0},
		{"FU-A type change", [][]byte{fuStart, {0x7c, 0x01, 9}, fuEnd}, nil, 2},
		{"FU-A start and end", [][]byte{{0x7c, 0xc5, 1}}, nil, 1},
		{"FU-A of reserved type", [][]byte{{0x7c, 0x98, 1}}, nil, 1},
		{"single NAL abandons a run", [][]byte{fuStart, {0x41, 9}, fuEnd}, [][]byte{{0x41, 9}}, 1},
		{"STAP-A overrun", [][]byte{{0x78, 0, 9, 0x67, 1}}, nil, 1},
		{"STAP-B", [][]byte{{0x79, 0, 0, 0, 2, 0x65, 1}}, nil, 1},
		{"FU-B", [][]byte{{0x7d, 0x85, 0, 0, 1}}, nil, 1},
		{"forbidden bit", [][]byte{{0xe5, 1}}, nil, 1},
		{"type 0", [][]byte{{0x00, 1}}, nil, 1},
		{"empty", [][]byte{{}}, nil, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDepacketizer()
			var got [][]byte
			errs := 0
			for _, p := range tc.payloads {
				n, err := d.push(p)
				if err != nil {
					errs++
					continue
				}
				got = append(got, n...)
			}
			if errs != tc.errs {
				t.Errorf("%d payloads refused, want %d", errs, tc.errs)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %x, want %x", got, tc.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Fatalf("NAL %d = %x, want %x", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestDepacketizerBoundsFragments(t *testing.T) {
	d := newDepacketizer()
	chunk := make([]byte, 1200)
	chunk[0], chunk[1] = 0x7c, 0x85
	if _, err := d.push(chunk); err != nil {
		t.Fatal(err)
	}
	chunk[1] = 0x05
	var err error
	for i := 0; i < maxNALUSize/1198+2 && err == nil; i++ {
		_, err = d.push(chunk)
	}
	if !errors.Is(err, errFUTooBig) {
		t.Fatalf("err = %v, want errFUTooBig", err)
	}
	if d.inFU || d.fuBytes != 0 {
		t.Fatal("run not reset after the bound")
	}
}

// TestDepacketizerRoundTrip: what pion's payloader makes of random access
// units comes back unchanged (SPS/PPS travel in a STAP-A).
func TestDepacketizerRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pay := &codecs.H264Payloader{}
	d := newDepacketizer()
	for round := 0; round < 200; round++ {
		var units [][]byte
		var annexB []byte
		if round%10 == 0 {
			units = append(units, testSPS, testPPS)
		}
		n := 1 + rng.IntN(3)
		for i := 0; i < n; i++ {
			u := make([]byte, 1+rng.IntN(5000))
			for j := range u {
				u[j] = byte(1 + rng.IntN(255)) // no zero bytes: no accidental start codes
			}
			u[0] = 0x65
			if i > 0 || round%10 != 0 {
				u[0] = 0x41
			}
			units = append(units, u)
		}
		for _, u := range units {
			annexB = append(annexB, 0, 0, 0, 1)
			annexB = append(annexB, u...)
		}
		var got [][]byte
		for _, p := range pay.Payload(1200, annexB) {
			n, err := d.push(p)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			got = append(got, n...)
		}
		if len(got) != len(units) {
			t.Fatalf("round %d: %d units back, sent %d", round, len(got), len(units))
		}
		for i := range got {
			if !bytes.Equal(got[i], units[i]) {
				t.Fatalf("round %d: unit %d differs (%d bytes, sent %d)", round, i, len(got[i]), len(units[i]))
			}
		}
	}
}

func TestAssembler(t *testing.T) {
	mk := func(seq uint16, ts uint32, marker bool, payload ...byte) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload}
	}
	a := newAssembler()
	var frames []frame
	push := func(p *rtp.Packet) { frames = append(frames, a.push(p)...) }

	push(mk(1, 100, false, 0x78, 0, 2, 0x67, 1, 0, 2, 0x68, 2))
	push(mk(2, 100, true, 0x65, 3))
	if len(frames) != 1 || len(frames[0].nalus) != 3 || frames[0].ts != 100 {
		t.Fatalf("frame 1: %+v", frames)
	}
	// Lost marker: the timestamp change closes the frame.
	push(mk(3, 200, false, 0x41, 4))
	push(mk(4, 300, true, 0x41, 5))
	if len(frames) != 3 || frames[1].ts != 200 || frames[2].ts != 300 {
		t.Fatalf("frames 2, 3: %+v", frames)
	}
	// Padding is skipped.
	push(mk(5, 300, false))
	// A loss inside a frame drops it whole.
	push(mk(6, 400, false, 0x7c, 0x81, 1))
	a.lost()
	push(mk(8, 400, true, 0x7c, 0x41, 2))
	if len(frames) != 3 {
		t.Fatalf("broken frame emitted: %+v", frames[3:])
	}
	// A malformed payload breaks its frame only.
	push(mk(9, 500, true, 0xff))
	push(mk(10, 600, true, 0x41, 6))
	if len(frames) != 4 || frames[3].ts != 600 {
		t.Fatalf("after malformed: %+v", frames)
	}
	fi := classify(frames[0].nalus)
	if !fi.key || !fi.vcl || fi.sps == nil || fi.pps == nil || len(fi.nalus) != 1 {
		t.Fatalf("classify: %+v", fi)
	}
}

func TestAssemblerBoundsNALUs(t *testing.T) {
	a := newAssembler()
	var out []frame
	for i := 0; i <= maxFrameNALUs; i++ {
		out = append(out, a.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: 1}, Payload: []byte{0x41, byte(i)}})...)
	}
	out = append(out, a.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: 99, Timestamp: 1, Marker: true}, Payload: []byte{0x41}})...)
	if len(out) != 0 {
		t.Fatalf("frame of %d NAL units emitted", len(out[0].nalus))
	}
}

// Parameter sets and IDR slice starts from x264 (high and main profile)
// and a common constrained-baseline PPS (OpenH264, as in Chrome).
var (
	highSPS = []byte{0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96}
	highPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	mainSPS = []byte{0x67, 0x4d, 0x40, 0x1e, 0xec, 0xa0, 0x50, 0x17, 0xfc, 0xb8, 0x08, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8b, 0x16, 0xcb}
	mainPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x20}
	cbPPS   = []byte{0x68, 0xce, 0x3c, 0x80}
	idrHead = []byte{0x65, 0x88, 0x84, 0x00, 0x21, 0xff, 0xd3, 0xd6}
)

func TestParameterSets(t *testing.T) {
	for _, sps := range [][]byte{testSPS, highSPS, mainSPS} {
		if id, err := checkSPS(sps); err != nil || id != 0 {
			t.Errorf("real SPS %x refused: %d %v", sps[:4], id, err)
		}
	}
	for _, pps := range [][]byte{testPPS, highPPS, mainPPS, cbPPS} {
		if id, sid, err := checkPPS(pps); err != nil || id != 0 || sid != 0 {
			t.Errorf("real PPS %x refused: %d %d %v", pps, id, sid, err)
		}
	}
	if err := checkIDRSlice(idrHead, 0); err != nil {
		t.Errorf("real IDR slice refused: %v", err)
	}
	if err := checkIDRSlice(idrHead, 1); err == nil {
		t.Error("IDR slice naming another PPS accepted")
	}
	badSPS := [][]byte{nil, {0x67}, {0x67, 0x42, 0, 0}, {0x67, 0x01, 0xc0, 0x0d, 0xd9}, {0x67, 0x42, 0xc1, 0x0d, 0xd9}, {0x67, 0x42, 0xc0, 0x0e, 0xd9}, bytes.Repeat([]byte{0x67}, 5000)}
	for _, b := range badSPS {
		if _, err := checkSPS(b); err == nil {
			t.Errorf("SPS %x accepted", b[:min(len(b), 8)])
		}
	}
	badPPS := [][]byte{{0x68}, {0x68, 0xcb, 0x83, 0xcb, 0x21}, {0x68, 0xcb, 0x83, 0xcb, 0x20, 0x01}, {0x68, 0x00, 0x00, 0x00, 0x01}, {0x68, 0xce, 0x3c, 0x80, 0x80}}
	for _, b := range badPPS {
		if _, _, err := checkPPS(b); err == nil {
			t.Errorf("PPS %x accepted", b)
		}
	}
}

// TestRandomParameterSets: random bytes almost never pass as an SPS+PPS
// pair (the garbage-RTP guarantee rests on this).
func TestRandomParameterSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sps, pps := 0, 0
	const n = 200000
	for i := 0; i < n; i++ {
		b := make([]byte, 2+rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0] = 0x67
		if _, err := checkSPS(b); err == nil {
			sps++
		}
		b[0] = 0x68
		if _, _, err := checkPPS(b); err == nil {
			pps++
		}
	}
	t.Logf("random bytes accepted: SPS %d, PPS %d of %d", sps, pps, n)
	if sps > n/1000 || pps > n/200 {
		t.Fatalf("random bytes accepted too often: SPS %d, PPS %d of %d", sps, pps, n)
	}
}

// FuzzDepacketize feeds arbitrary payloads (length-prefixed in the input)
// through the whole video path short of the sink: depacketiser,
// assembler, classification, parameter-set checks and the DTS extractor.
// Nothing may panic and every frame must respect the bounds.
func FuzzDepacketize(f *testing.F) {
	f.Add([]byte{5, 0x65, 1, 2, 3, 4})
	f.Add(append([]byte{byte(len(testSPS) + 1 + 5 + 4)}, append(append([]byte{0x78, 0, byte(len(testSPS))}, testSPS...), 0, 5, 0x68, 0xcb, 0x83, 0xcb, 0x20)...))
	f.Add([]byte{3, 0x7c, 0x85, 1, 3, 0x7c, 0x05, 2, 0x83, 0x7c, 0x45, 3})
	f.Add([]byte{4, 0x78, 0, 9, 0x67, 2, 0x79, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newAssembler()
		var dts h264.DTSExtractor
		dts.Initialize()
		var sps []byte
		seq := uint16(0)
		ts := uint32(0)
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
			if seq%7 == 0 {
				a.lost()
			}
			for _, fr := range a.push(p) {
				if len(fr.nalus) > maxFrameNALUs {
					t.Fatalf("%d NAL units", len(fr.nalus))
				}
				size := 0
				for _, u := range fr.nalus {
					if len(u) == 0 || u[0]&0x80 != 0 {
						t.Fatalf("bad NAL unit %x", u)
					}
					size += len(u)
				}
				if size > maxFrameSize {
					t.Fatalf("frame of %d bytes", size)
				}
				fi := classify(fr.nalus)
				if fi.sps != nil {
					if _, err := checkSPS(fi.sps); err == nil {
						sps = fi.sps
					}
				}
				if fi.pps != nil {
					_, _, _ = checkPPS(fi.pps)
				}
				if fi.key {
					_ = checkIDRSlice(fi.idr, 0)
				}
				if fi.vcl && sps != nil {
					in := append([][]byte{sps}, fi.nalus...)
					_, _ = dts.Extract(in, int64(fr.ts))
				}
			}
		}
	})
}

func BenchmarkDepacketizeFrame(b *testing.B) {
	// One 40 KB keyframe in 1200-byte FU-A packets, as a browser sends.
	unit := make([]byte, 40000)
	unit[0] = 0x65
	annexB := append([]byte{0, 0, 0, 1}, unit...)
	payloads := (&codecs.H264Payloader{}).Payload(1200, annexB)
	pkts := make([]*rtp.Packet, len(payloads))
	for i, p := range payloads {
		pkts[i] = &rtp.Packet{Header: rtp.Header{Marker: i == len(payloads)-1}, Payload: p}
	}
	a := newAssembler()
	b.SetBytes(int64(len(unit)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		n := 0
		for _, p := range pkts {
			p.Timestamp = uint32(i)
			n += len(a.push(p))
		}
		if n != 1 {
			b.Fatalf("%d frames", n)
		}
	}
}

// FuzzParamSets: the SPS, PPS and slice header checks never panic.
func FuzzParamSets(f *testing.F) {
	for _, b := range [][]byte{testSPS, highSPS, mainSPS, testPPS, highPPS, cbPPS, idrHead} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		_, _ = checkSPS(b)
		_, _, _ = checkPPS(b)
		_ = checkIDRSlice(b, 0)
	})
}
