package chunk

import (
	"bytes"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.seal(f, mediaHeader(1, 0), []byte("init")))
	f.Add(fx.seal(f, mediaHeader(1, 1), nil)[:HeaderSize])
	hb, _ := Header{Flags: knownFlags &^ FlagInit, Seq: 1 << 63, PayloadLen: MaxPayload}.AppendBinary(nil)
	f.Add(hb)
	f.Add([]byte{Magic, Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.Validate() != nil || h.SealedLen() > MaxChunkSize {
			t.Fatalf("accepted invalid header %v", h)
		}
		enc, _ := h.AppendBinary(nil)
		if !bytes.Equal(enc, b[:HeaderSize]) {
			t.Fatalf("re-encoding differs: %x vs %x", enc, b[:HeaderSize])
		}
	})
}

// sealedSeeds returns valid chunks; nothing else may ever verify.
func sealedSeeds(f *testing.F, fx fixture) [][]byte {
	return [][]byte{
		fx.seal(f, mediaHeader(1, 0), testPayload(50)),
		fx.seal(f, mediaHeader(1, 1), nil),
		fx.seal(f, Header{Flags: FlagKeyframe | FlagDiscontinuity, Epoch: 9, Seq: 77, KeyID: 1, MediaTime: 1e9, Duration: 1}, testPayload(300)),
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	seeds := sealedSeeds(f, fx)
	for _, s := range seeds {
		f.Add(s, testStream)
		f.Add(s, "other")
	}
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, b []byte, stream string) {
		h, err := Verify(fx.pub, stream, b)
		if err != nil {
			return
		}
		if stream != testStream || !containsBytes(seeds, b) {
			t.Fatalf("forged chunk verified: %v stream %q", h, stream)
		}
	})
}

func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	seeds := sealedSeeds(f, fx)
	for _, s := range seeds {
		f.Add(s, testStream)
	}
	f.Fuzz(func(t *testing.T, b []byte, stream string) {
		h, pt, err := Open(fx.pub, stream, fx.keys, b)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		if stream != testStream || !containsBytes(seeds, b) || len(pt) != int(h.PayloadLen) {
			t.Fatalf("forged chunk opened: %v", h)
		}
	})
}

func containsBytes(set [][]byte, b []byte) bool {
	for _, s := range set {
		if bytes.Equal(s, b) {
			return true
		}
	}
	return false
}

func FuzzParsePiece(f *testing.F) {
	for _, p := range mustSplit(f, fakeChunk(3, 4, 200), 100) {
		f.Add(AppendPiece(nil, p))
	}
	f.Add(AppendPiece(nil, Piece{Epoch: 1, Seq: 1, Index: 65534, Count: 65535, Data: []byte{1}}))
	f.Add([]byte{PieceType, PieceVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePiece(b)
		if err != nil {
			return
		}
		if p.Count == 0 || p.Index >= p.Count || len(p.Data) == 0 {
			t.Fatalf("accepted invalid piece %+v", p)
		}
		if !bytes.Equal(AppendPiece(nil, p), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// fuzzTemplates: pieces of six small chunks over two epochs, with three
// different piece sizes.
func fuzzTemplates(tb testing.TB) []Piece {
	var tmpl []Piece
	for _, e := range []uint32{1, 2} {
		for seq := uint64(0); seq < 3; seq++ {
			tmpl = append(tmpl, mustSplit(tb, fakeChunk(e, seq, 40+int(seq)*70), PieceHeaderSize+HeaderSize+int(seq)*20)...)
		}
	}
	return tmpl
}

// FuzzReassembler drives a small Reassembler with a script of operations
// mixing hostile raw pieces, genuine pieces of template chunks, Expire,
// Forget and Missing, and checks its bounds and bookkeeping after each.
func FuzzReassembler(f *testing.F) {
	tmpl := fuzzTemplates(f)
	all := make([]byte, 0, 2*len(tmpl))
	for i := range tmpl {
		all = append(all, 1, byte(len(tmpl)-1-i), 0) // every genuine piece, reversed
	}
	f.Add(all)
	f.Add(append([]byte{2, 1, 2, 3, 1, 0, 4, 1, 0}, all...))
	raw := AppendPiece(nil, tmpl[1])
	raw[len(raw)-1] ^= 0xFF
	f.Add(append(append([]byte{0, byte(len(raw)), 0}, raw...), all...))
	hostile := AppendPiece(nil, Piece{Epoch: 1, Seq: 1, Index: 1, Count: 400, Data: make([]byte, 40)})
	f.Add(append([]byte{0, byte(len(hostile)), 0}, hostile...))

	f.Fuzz(func(t *testing.T, script []byte) {
		for _, retain := range []bool{false, true} {
			fuzzReassemble(t, tmpl, script, retain)
		}
	})
}

// fuzzReassemble runs one script against a Reassembler and checks its
// bounds and bookkeeping after each operation.
func fuzzReassemble(t *testing.T, tmpl []Piece, script []byte, retain bool) {
	const maxBytes, maxChunks = 2048, 3
	r := NewReassembler(ReassemblerConfig{MaxChunks: maxChunks, MaxBytes: maxBytes, DoneMemory: 4, Retain: retain})
	for ops := 0; len(script) >= 3 && ops < 1000; ops++ {
		op, a, b := script[0]%5, script[1], script[2]
		script = script[3:]
		switch op {
		case 0: // raw piece message of length a|b<<8
			n := min(int(a)|int(b)<<8, len(script))
			msg := script[:n]
			script = script[n:]
			if p, err := ParsePiece(msg); err == nil {
				checkAdd(t, r, p)
			}
		case 1:
			checkAdd(t, r, tmpl[(int(a)|int(b)<<8)%len(tmpl)])
		case 2:
			r.Expire(uint32(a%3), uint64(b%4))
		case 3:
			r.Forget(uint32(a%3), uint64(b%4))
		case 4:
			if miss, ok := r.Missing(uint32(a%3), uint64(b%4)); ok {
				e := r.partials[chunkID{uint32(a % 3), uint64(b % 4)}]
				if len(miss) != e.count-e.got || len(miss) == 0 {
					t.Fatalf("Missing %v for %d/%d", miss, e.got, e.count)
				}
			}
		}
		sum := 0
		for _, e := range r.partials {
			sum += e.charged
			if e.got >= e.count {
				t.Fatal("complete chunk left in flight")
			}
			held := 0
			for _, b := range e.parts {
				held += len(b)
			}
			if held != e.held || (retain && e.buf != nil) || (!retain && e.parts != nil) {
				t.Fatalf("retain %v: parts hold %d bytes, counted %d, buffer %d", retain, held, e.held, len(e.buf))
			}
		}
		if r.Bytes() != sum || sum > maxBytes || r.Len() > maxChunks || len(r.done) > 4 {
			t.Fatalf("bounds: bytes %d (sum %d) chunks %d done %d", r.Bytes(), sum, r.Len(), len(r.done))
		}
	}
}

func checkAdd(t *testing.T, r *Reassembler, p Piece) {
	out, fresh, err := r.Add(p)
	if out == nil {
		return
	}
	if err != nil || !fresh {
		t.Fatalf("chunk returned with err=%v fresh=%v", err, fresh)
	}
	h, err := ParseHeader(out)
	if err != nil || h.SealedLen() != len(out) || h.Epoch != p.Epoch || h.Seq != p.Seq {
		t.Fatalf("reassembled a malformed chunk: %v %v", h, err)
	}
}

// TestFuzzReassemblerSeedCompletes makes sure the structured seed really
// reassembles every template chunk, so the fuzzer starts from deep states.
func TestFuzzReassemblerSeedCompletes(t *testing.T) {
	tmpl := fuzzTemplates(t)
	r := NewReassembler(ReassemblerConfig{MaxChunks: 3, MaxBytes: 2048, DoneMemory: 4})
	completed := 0
	for i := len(tmpl) - 1; i >= 0; i-- {
		out, _, err := r.Add(tmpl[i])
		if err != nil {
			t.Fatal(err)
		}
		if out != nil {
			completed++
			if !bytes.Equal(out, fakeChunk(tmpl[i].Epoch, tmpl[i].Seq, len(out)-Overhead)) {
				t.Fatal("template chunk differs")
			}
		}
	}
	if completed != 6 {
		t.Fatalf("%d of 6 template chunks completed", completed)
	}
}
