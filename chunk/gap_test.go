package chunk

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// TestGap: the range covering a chunk's missing pieces, and the origin's
// answer for it cut back into pieces that complete the chunk.
func TestGap(t *testing.T) {
	sealed := fakeChunk(3, 9, 5000) // 5 pieces of 1000 bytes or so at max 1018
	ps := mustSplit(t, sealed, 1018)
	if len(ps) < 5 {
		t.Fatalf("%d pieces, want at least 5", len(ps))
	}
	n, size := len(ps), len(ps[0].Data)
	except := func(miss ...int) (have []int) {
		for i := range n {
			if !slices.Contains(miss, i) {
				have = append(have, i)
			}
		}
		return have
	}
	tests := []struct {
		name        string
		have        []int // pieces already held
		ok          bool
		first, last int
		end         int64 // -1: to the end
	}{
		{"nothing held", nil, false, 0, 0, 0},
		{"only the last: size unknown", []int{n - 1}, false, 0, 0, 0},
		{"one hole in the middle", except(2), true, 2, 2, int64(3 * size)},
		{"the tail", []int{0, 1}, true, 2, n - 1, -1},
		{"holes apart: one range over both", except(1, 3), true, 1, 3, int64(4 * size)},
		{"all but the first", []int{0}, true, 1, n - 1, -1},
	}
	for _, tc := range tests {
		r := NewReassembler(ReassemblerConfig{})
		for _, i := range tc.have {
			if _, _, err := r.Add(ps[i]); err != nil {
				t.Fatal(err)
			}
		}
		g, ok := r.Gap(3, 9)
		if ok != tc.ok {
			t.Errorf("%s: ok %v", tc.name, ok)
			continue
		}
		if !ok {
			continue
		}
		if g.First != tc.first || g.Last != tc.last || g.End != tc.end || g.Off != int64(tc.first*size) || g.Count != n || g.Size != size {
			t.Errorf("%s: %+v, want pieces %d–%d end %d", tc.name, g, tc.first, tc.last, tc.end)
			continue
		}
		end := int64(len(sealed))
		if g.End >= 0 {
			end = g.End
		}
		got, err := g.Pieces(3, 9, sealed[g.Off:end])
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var whole []byte
		for _, p := range got {
			if whole, _, err = r.Add(p); err != nil {
				t.Fatalf("%s: piece %d: %v", tc.name, p.Index, err)
			}
		}
		if !bytes.Equal(whole, sealed) {
			t.Errorf("%s: the range did not complete the chunk", tc.name)
		}
	}
}

// TestGapPiecesRejectsWrongLengths: an answer that is not exactly the range
// asked for is an error, never cut into pieces at a guess.
func TestGapPiecesRejectsWrongLengths(t *testing.T) {
	g := Gap{First: 1, Last: 2, Count: 4, Size: 100, Off: 100, End: 300}
	tail := Gap{First: 2, Last: 3, Count: 4, Size: 100, Off: 200, End: -1}
	tests := []struct {
		name string
		g    Gap
		n    int
		ok   bool
	}{
		{"exact", g, 200, true},
		{"short", g, 199, false},
		{"long (a server that ignored Range)", g, 400, false},
		{"tail with a 1-byte last piece", tail, 101, true},
		{"tail with a full last piece", tail, 200, true},
		{"tail missing the last piece", tail, 100, false},
		{"tail too long", tail, 201, false},
		{"bad gap", Gap{First: 3, Last: 1, Count: 4, Size: 100}, 10, false},
	}
	for _, tc := range tests {
		ps, err := tc.g.Pieces(1, 1, make([]byte, tc.n))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v is not ErrMalformed", tc.name, err)
		}
		if err == nil && len(ps) != tc.g.Last-tc.g.First+1 {
			t.Errorf("%s: %d pieces", tc.name, len(ps))
		}
	}
}

func FuzzGapPieces(f *testing.F) {
	f.Add(1, 2, 4, 100, int64(100), int64(300), 200)
	f.Add(2, 3, 4, 100, int64(200), int64(-1), 101)
	f.Fuzz(func(t *testing.T, first, last, count, size int, off, end int64, n int) {
		if n < 0 || n > 1<<20 {
			return
		}
		g := Gap{First: first, Last: last, Count: count, Size: size, Off: off, End: end}
		ps, err := g.Pieces(1, 1, make([]byte, n))
		if err != nil {
			return
		}
		total := 0
		for _, p := range ps {
			if len(p.Data) == 0 || len(p.Data) > size || int(p.Index) >= count {
				t.Fatalf("piece %d of %d bytes from %+v", p.Index, len(p.Data), g)
			}
			total += len(p.Data)
		}
		if total != n {
			t.Fatalf("pieces hold %d of %d bytes", total, n)
		}
	})
}
