package whip

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
)

type released struct {
	seq  uint16
	lost bool
}

func pkt(seq uint16) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq}}
}

func TestReorder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		seq  int // -1: tick only
		at   int // ms
		want []released
	}
	cases := []struct {
		name  string
		steps []step
		lost  uint64
	}{
		{"in order", []step{
			{1, 0, []released{{1, false}}},
			{2, 1, []released{{2, false}}},
			{3, 2, []released{{3, false}}},
		}, 0},
		{"swap is repaired", []step{
			{1, 0, []released{{1, false}}},
			{3, 1, nil},
			{2, 5, []released{{2, false}, {3, false}}},
		}, 0},
		{"gap given up after wait", []step{
			{1, 0, []released{{1, false}}},
			{3, 10, nil},
			{4, 20, nil},
			{-1, 100, nil},
			{-1, 210, []released{{3, true}, {4, false}}},
			{2, 220, nil}, // too late
			{5, 230, []released{{5, false}}},
		}, 1},
		{"duplicate dropped", []step{
			{7, 0, []released{{7, false}}},
			{7, 1, nil},
			{9, 2, nil},
			{9, 3, nil},
			{8, 4, []released{{8, false}, {9, false}}},
		}, 0},
		{"wraparound", []step{
			{65534, 0, []released{{65534, false}}},
			{0, 1, nil},
			{65535, 2, []released{{65535, false}, {0, false}}},
			{1, 3, []released{{1, false}}},
		}, 0},
		{"far jump flushes", []step{
			{10, 0, []released{{10, false}}},
			{12, 1, nil},
			{10 + reorderSize + 5, 2, []released{{12, true}, {10 + reorderSize + 5, true}}},
			{10 + reorderSize + 6, 3, []released{{10 + reorderSize + 6, false}}},
		}, 1 + (10 + reorderSize + 5) - 13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newReorder(200 * time.Millisecond)
			for i, st := range tc.steps {
				var got []released
				rel := func(p *rtp.Packet, lost bool) { got = append(got, released{p.SequenceNumber, lost}) }
				if st.seq < 0 {
					r.tick(ms(st.at), rel)
				} else {
					r.push(pkt(uint16(st.seq)), ms(st.at), rel)
				}
				if len(got) != len(st.want) {
					t.Fatalf("step %d: released %v, want %v", i, got, st.want)
				}
				for j := range got {
					if got[j] != st.want[j] {
						t.Fatalf("step %d: released %v, want %v", i, got, st.want)
					}
				}
			}
			if r.lost != tc.lost {
				t.Errorf("lost = %d, want %d", r.lost, tc.lost)
			}
		})
	}
}

// TestReorderShuffled: a window of shuffled packets with no loss comes
// out complete and in order; the buffer stays bounded.
func TestReorderShuffled(t *testing.T) {
	r := newReorder(time.Second)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(0, 0)
	var out []uint16
	rel := func(p *rtp.Packet, lost bool) {
		if lost {
			t.Fatalf("loss reported at %d", p.SequenceNumber)
		}
		out = append(out, p.SequenceNumber)
	}
	const n, win = 70000, 16
	seqs := make([]uint16, 0, n)
	for base := 0; base < n; base += win {
		block := make([]uint16, win)
		for i := range block {
			block[i] = uint16(60000 + base + i) // wraps
		}
		if base > 0 {
			rng.Shuffle(len(block), func(i, j int) { block[i], block[j] = block[j], block[i] })
		}
		seqs = append(seqs, block...)
	}
	for _, s := range seqs {
		r.push(pkt(s), now, rel)
		if r.count > win {
			t.Fatalf("holding %d packets", r.count)
		}
	}
	if len(out) != len(seqs) {
		t.Fatalf("released %d of %d", len(out), len(seqs))
	}
	for i := 1; i < len(out); i++ {
		if out[i] != out[i-1]+1 {
			t.Fatalf("out of order at %d: %d after %d", i, out[i], out[i-1])
		}
	}
}

func BenchmarkReorderInOrder(b *testing.B) {
	r := newReorder(200 * time.Millisecond)
	now := time.Now()
	p := pkt(0)
	rel := func(*rtp.Packet, bool) {}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.SequenceNumber = uint16(i)
		r.push(p, now, rel)
	}
}
