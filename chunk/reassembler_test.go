package chunk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// fakeChunk is a structurally valid chunk (the reassembler does not check
// signatures) with recognisable contents.
func fakeChunk(epoch uint32, seq uint64, payload int) []byte {
	h := Header{Epoch: epoch, Seq: seq, PayloadLen: uint32(payload)}
	if seq == 0 {
		h.Flags = FlagInit
	}
	b, _ := h.AppendBinary(nil)
	for i := 0; len(b) < h.SealedLen(); i++ {
		b = append(b, byte(i)^byte(seq)^byte(epoch))
	}
	return b
}

func mustSplit(t testing.TB, sealed []byte, max int) []Piece {
	t.Helper()
	p, err := Split(sealed, max)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReassembleRandomOrder(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		f := newFixture(t)
		rng := rand.New(rand.NewPCG(1, 2))
		want := map[chunkID][]byte{}
		var pieces []Piece
		unique := 0
		for _, epoch := range []uint32{7, 8, 9} { // overlapping epochs, fed interleaved
			for seq := uint64(0); seq < 8; seq++ {
				sealed := f.seal(t, mediaHeader(epoch, seq), testPayload(rng.IntN(20_000)))
				want[chunkID{epoch, seq}] = sealed
				ps := mustSplit(t, sealed, 1000)
				unique += len(ps)
				for _, p := range ps {
					for range 1 + rng.IntN(3) { // duplicates
						pieces = append(pieces, p)
					}
				}
			}
		}
		rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })

		r := NewReassembler(ReassemblerConfig{MaxChunks: len(want), MaxBytes: 8 << 20, Retain: retain})
		got := map[chunkID][]byte{}
		fresh := 0
		for _, p := range pieces {
			// A copying reassembler lets the caller reuse its buffer.
			buf := AppendPiece(nil, p)
			pp, err := ParsePiece(buf)
			if err != nil {
				t.Fatal(err)
			}
			out, isFresh, err := r.Add(pp)
			if !retain {
				clear(buf)
			}
			if err != nil {
				t.Fatalf("piece %d/%d of %d/%d: %v", p.Index, p.Count, p.Epoch, p.Seq, err)
			}
			if isFresh {
				fresh++
			}
			if out != nil {
				id := chunkID{p.Epoch, p.Seq}
				if _, dup := got[id]; dup {
					t.Fatalf("chunk %v completed twice", id)
				}
				got[id] = out
				if _, err := Verify(f.pub, testStream, out); err != nil {
					t.Fatalf("reassembled chunk %v does not verify: %v", id, err)
				}
			}
		}
		if fresh != unique {
			t.Fatalf("%d fresh pieces, want %d", fresh, unique)
		}
		if len(got) != len(want) {
			t.Fatalf("%d chunks completed, want %d", len(got), len(want))
		}
		for id, w := range want {
			if !bytes.Equal(got[id], w) {
				t.Fatalf("chunk %v differs", id)
			}
		}
		if r.Len() != 0 || r.Bytes() != 0 {
			t.Fatalf("left %d chunks, %d bytes", r.Len(), r.Bytes())
		}
	})
}

func TestReassembleConcurrent(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		r := NewReassembler(ReassemblerConfig{Retain: retain})
		var chunks [][]byte
		for seq := uint64(1); seq <= 32; seq++ {
			chunks = append(chunks, fakeChunk(1, seq, 30_000+int(seq)))
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			done = map[uint64]int{}
		)
		var all []Piece
		for _, c := range chunks {
			all = append(all, mustSplit(t, c, 4096)...)
		}
		// Four "parents" each send every piece, in their own order.
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 9))
				ps := slices.Clone(all)
				rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
				for _, p := range ps {
					out, _, err := r.Add(p)
					if err != nil {
						t.Error(err)
						return
					}
					if out != nil {
						mu.Lock()
						done[p.Seq]++
						mu.Unlock()
						if !bytes.Equal(out, chunks[p.Seq-1]) {
							t.Errorf("chunk %d differs", p.Seq)
						}
					}
				}
			}()
		}
		wg.Wait()
		for seq := uint64(1); seq <= 32; seq++ {
			if done[seq] != 1 {
				t.Fatalf("chunk %d completed %d times", seq, done[seq])
			}
		}
	})
}

func TestReassembleLastPieceFirst(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		c := fakeChunk(2, 3, 5000)
		ps := mustSplit(t, c, 1018) // S = 1000, 6 pieces, last 116 bytes
		r := NewReassembler(ReassemblerConfig{Retain: retain})
		order := []int{5, 3, 0, 1, 4, 2}
		for i, idx := range order {
			out, fresh, err := r.Add(ps[idx])
			if err != nil || !fresh {
				t.Fatalf("piece %d: %v fresh=%v", idx, err, fresh)
			}
			if missing, ok := r.Missing(2, 3); i < len(order)-1 {
				want := slices.DeleteFunc([]uint16{0, 1, 2, 3, 4, 5}, func(x uint16) bool { return slices.Contains(order[:i+1], int(x)) })
				if !ok || !slices.Equal(missing, want) {
					t.Fatalf("after %v: missing %v ok=%v, want %v", order[:i+1], missing, ok, want)
				}
			} else if ok {
				t.Fatal("Missing after completion should report not held")
			}
			if (out != nil) != (i == len(order)-1) {
				t.Fatalf("completion after %d pieces", i+1)
			}
			if out != nil && !bytes.Equal(out, c) {
				t.Fatal("chunk differs")
			}
		}
		// Late duplicates of a completed chunk are recognised.
		if out, fresh, err := r.Add(ps[1]); out != nil || fresh || err != nil {
			t.Fatalf("late duplicate: %v %v %v", out, fresh, err)
		}
		if _, ok := r.Missing(9, 9); ok {
			t.Fatal("unknown chunk reported as held")
		}
	})
}

func TestReassembleSinglePiece(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		r := NewReassembler(ReassemblerConfig{Retain: retain})
		c := fakeChunk(1, 0, 100)
		p := mustSplit(t, c, MaxMessageSize)[0]
		out, fresh, err := r.Add(p)
		if err != nil || !fresh || !bytes.Equal(out, c) {
			t.Fatalf("%v %v", fresh, err)
		}
		if shared := &out[0] == &p.Data[0]; shared != retain {
			t.Fatalf("single piece: returned its own bytes %v, retaining %v", shared, retain)
		}
		for _, bad := range []Piece{
			{Epoch: 1, Seq: 1, Count: 1, Data: []byte("not a chunk")},
			{Epoch: 1, Seq: 2, Count: 1, Data: fakeChunk(1, 3, 10)},            // says another seq
			{Epoch: 1, Seq: 4, Count: 1, Data: fakeChunk(1, 4, 10)[:100]},      // truncated
			{Epoch: 1, Seq: 5, Count: 1, Data: append(fakeChunk(1, 5, 10), 0)}, // trailing byte
		} {
			if _, _, err := r.Add(bad); !errors.Is(err, ErrMalformed) {
				t.Fatalf("seq %d: %v", bad.Seq, err)
			}
		}
	})
}

func TestReassembleConflicts(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		c := fakeChunk(1, 1, 3000)  // 3116 bytes
		ps := mustSplit(t, c, 1018) // 4 pieces: 1000,1000,1000,116
		other := mustSplit(t, fakeChunk(1, 2, 3000), 1018)
		for _, tc := range []struct {
			name  string
			first []Piece
			bad   Piece
			want  error
		}{
			{"count differs", ps[1:2], Piece{Epoch: 1, Seq: 1, Index: 2, Count: 5, Data: ps[2].Data}, ErrPieceConflict},
			{"size differs", ps[1:2], Piece{Epoch: 1, Seq: 1, Index: 2, Count: 4, Data: ps[2].Data[:999]}, ErrPieceConflict},
			{"last longer than others", ps[1:2], Piece{Epoch: 1, Seq: 1, Index: 3, Count: 4, Data: make([]byte, 1001)}, ErrPieceConflict},
			{"last does not add up", ps[:1], Piece{Epoch: 1, Seq: 1, Index: 3, Count: 4, Data: make([]byte, 117)}, ErrPieceConflict},
			{"header total vs stashed last", ps[3:], Piece{Epoch: 1, Seq: 1, Index: 0, Count: 4, Data: mustSplit(t, fakeChunk(1, 1, 3001), 1018)[0].Data}, ErrPieceConflict},
			{"piece 0 of another chunk", ps[1:2], Piece{Epoch: 1, Seq: 1, Index: 0, Count: 4, Data: other[0].Data}, ErrMalformed},
			{"piece 0 not a header", ps[1:2], Piece{Epoch: 1, Seq: 1, Index: 0, Count: 4, Data: make([]byte, 1000)}, ErrMalformed},
			{"new chunk, header vs count", nil, Piece{Epoch: 1, Seq: 1, Index: 0, Count: 9, Data: ps[0].Data}, ErrMalformed},
			{"hostile count", nil, Piece{Epoch: 1, Seq: 1, Index: 1, Count: 65535, Data: make([]byte, 16366)}, ErrMalformed},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := NewReassembler(ReassemblerConfig{Retain: retain})
				for _, p := range tc.first {
					if _, _, err := r.Add(p); err != nil {
						t.Fatal(err)
					}
				}
				held := r.Bytes()
				if _, _, err := r.Add(tc.bad); !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if r.Bytes() != held {
					t.Fatalf("rejected piece changed memory %d -> %d", held, r.Bytes())
				}
				// The good pieces still complete the chunk (first wins)...
				var out []byte
				for _, p := range ps {
					o, _, err := r.Add(p)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, o...)
				}
				if !bytes.Equal(out, c) {
					t.Fatal("good pieces did not complete the chunk")
				}
			})
		}
		// ...and Forget lets a chunk poisoned by a bad first piece start over.
		r := NewReassembler(ReassemblerConfig{Retain: retain})
		if _, _, err := r.Add(Piece{Epoch: 1, Seq: 1, Index: 1, Count: 4, Data: make([]byte, 900)}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Add(ps[2]); !errors.Is(err, ErrPieceConflict) {
			t.Fatal(err)
		}
		r.Forget(1, 1)
		if r.Len() != 0 || r.Bytes() != 0 {
			t.Fatal("Forget kept state")
		}
		var out []byte
		for _, p := range ps {
			o, _, _ := r.Add(p)
			out = append(out, o...)
		}
		if !bytes.Equal(out, c) {
			t.Fatal("chunk did not complete after Forget")
		}
	})
}

func TestReassembleBounds(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		t.Run("max chunks evicts least recently fed", func(t *testing.T) {
			r := NewReassembler(ReassemblerConfig{MaxChunks: 3, Retain: retain})
			pieces := map[uint64][]Piece{}
			for seq := uint64(1); seq <= 5; seq++ {
				pieces[seq] = mustSplit(t, fakeChunk(1, seq, 5000), 1018)
			}
			for seq := uint64(1); seq <= 3; seq++ {
				r.Add(pieces[seq][0])
			}
			r.Add(pieces[1][1]) // chunk 1 fed recently; 2 is now the oldest
			r.Add(pieces[4][0])
			if r.Len() != 3 {
				t.Fatalf("Len %d", r.Len())
			}
			if _, ok := r.Missing(1, 2); ok {
				t.Fatal("chunk 2 should have been evicted")
			}
			for _, seq := range []uint64{1, 3, 4} {
				if _, ok := r.Missing(1, seq); !ok {
					t.Fatalf("chunk %d evicted", seq)
				}
			}
		})
		t.Run("max bytes", func(t *testing.T) {
			const budget = 20_000
			r := NewReassembler(ReassemblerConfig{MaxBytes: budget, Retain: retain})
			big := mustSplit(t, fakeChunk(1, 1, 30_000), 1018)
			if _, _, err := r.Add(big[3]); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("chunk larger than the budget: %v", err)
			}
			// A chunk whose first piece was the short last one only learns its
			// size later; then it is dropped.
			if _, _, err := r.Add(big[len(big)-1]); err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.Add(big[0]); !errors.Is(err, ErrTooLarge) {
				t.Fatal(err)
			}
			if r.Len() != 0 || r.Bytes() != 0 {
				t.Fatalf("oversized chunk kept: %d %d", r.Len(), r.Bytes())
			}
			// Chunks that fit one at a time push older ones out: a copying
			// reassembler is charged the whole 9-piece chunk (9 KB) from its
			// first piece, a retaining one the 4 pieces it holds (4.2 KB).
			for seq := uint64(2); seq < 10; seq++ {
				ps := mustSplit(t, fakeChunk(1, seq, 8000), 1018)
				for _, p := range ps[1:5] {
					if _, _, err := r.Add(p); err != nil {
						t.Fatal(err)
					}
					if r.Bytes() > budget {
						t.Fatalf("%d bytes held, budget %d", r.Bytes(), budget)
					}
				}
			}
			if want := map[bool]int{false: 2, true: 4}[retain]; r.Len() != want {
				t.Fatalf("Len %d, want %d", r.Len(), want)
			}
		})
	})
}

func TestReassembleExpire(t *testing.T) {
	modes(t, func(t *testing.T, retain bool) {
		r := NewReassembler(ReassemblerConfig{Retain: retain})
		for _, id := range []chunkID{{1, 50}, {2, 3}, {2, 10}, {3, 1}} {
			if _, _, err := r.Add(mustSplit(t, fakeChunk(id.epoch, id.seq, 3000), 1018)[1]); err != nil {
				t.Fatal(err)
			}
		}
		if n := r.Expire(2, 10); n != 2 {
			t.Fatalf("expired %d, want 2", n)
		}
		if n := r.Expire(1, 0); n != 0 { // floor never moves back
			t.Fatalf("lower floor dropped %d", n)
		}
		for _, tc := range []struct {
			id    chunkID
			stale bool
		}{{chunkID{1, 50}, true}, {chunkID{2, 9}, true}, {chunkID{2, 10}, false}, {chunkID{3, 0}, false}} {
			_, _, err := r.Add(mustSplit(t, fakeChunk(tc.id.epoch, tc.id.seq, 3000), 1018)[2])
			if errors.Is(err, ErrStale) != tc.stale || (!tc.stale && err != nil) {
				t.Fatalf("%v: %v", tc.id, err)
			}
		}
		if r.Len() != 3 {
			t.Fatalf("Len %d", r.Len())
		}
	})
}

// TestReassembleDoneMemoryBounded: the completed set does not grow without
// bound, and an evicted completion means a late duplicate reopens the chunk
// (harmless; the Expire floor is what stops stale chunks).
func TestReassembleDoneMemoryBounded(t *testing.T) {
	r := NewReassembler(ReassemblerConfig{DoneMemory: 4})
	for seq := uint64(1); seq <= 10; seq++ {
		if out, _, err := r.Add(Piece{Epoch: 1, Seq: seq, Count: 1, Data: fakeChunk(1, seq, 10)}); err != nil || out == nil {
			t.Fatal(err)
		}
	}
	if len(r.done) != 4 || len(r.doneRing) != 4 {
		t.Fatalf("done memory %d/%d", len(r.done), len(r.doneRing))
	}
	for seq := uint64(7); seq <= 10; seq++ {
		if out, fresh, _ := r.Add(Piece{Epoch: 1, Seq: seq, Count: 1, Data: fakeChunk(1, seq, 10)}); out != nil || fresh {
			t.Fatalf("seq %d not remembered", seq)
		}
	}
}

// modes runs a test against a copying and a retaining Reassembler.
func modes(t *testing.T, f func(t *testing.T, retain bool)) {
	for _, retain := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy", true: "retain"}[retain], func(t *testing.T) { f(t, retain) })
	}
}

// TestReassembleJoin: a retaining reassembler builds the chunk with Join,
// whose result is returned as is once it proves to be the chunk.
func TestReassembleJoin(t *testing.T) {
	c := fakeChunk(1, 1, 3000)
	shared := bytes.Clone(c)
	for _, tc := range []struct {
		name    string
		join    func([][]byte) []byte
		wantErr bool
	}{
		{"shared copy", func([][]byte) []byte { return shared }, false},
		{"default", nil, false},
		{"wrong chunk", func([][]byte) []byte { return fakeChunk(1, 2, 3000) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(ReassemblerConfig{Retain: true, Join: tc.join})
			var (
				out []byte
				err error
			)
			for _, p := range mustSplit(t, c, 1018) {
				var o []byte
				if o, _, err = r.Add(p); o != nil {
					out = o
				}
			}
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("a Join that builds another chunk: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(out, c) {
				t.Fatalf("%v, chunk equal %v", err, bytes.Equal(out, c))
			}
			if tc.join != nil && &out[0] != &shared[0] {
				t.Fatal("Join's result was not returned as is")
			}
		})
	}
}
