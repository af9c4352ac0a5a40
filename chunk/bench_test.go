package chunk

import (
	"encoding/binary"
	"testing"
)

const benchPayload = 64 << 10

func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	s, err := NewSealer(SealerConfig{Stream: testStream, PrivateKey: f.priv, Keys: f.keys, KeyID: 1})
	if err != nil {
		b.Fatal(err)
	}
	payload := testPayload(benchPayload)
	buf := make([]byte, 0, Overhead+benchPayload)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		if _, err := s.AppendSeal(buf[:0], mediaHeader(1, seq), payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	sealed := f.seal(b, mediaHeader(1, 1), testPayload(benchPayload))
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(f.pub, testStream, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	sealed := f.seal(b, mediaHeader(1, 1), testPayload(benchPayload))
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Open(f.pub, testStream, f.keys, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReassemble feeds the pieces of a 256 KiB chunk (17 pieces of
// 16 KiB messages), last piece first, and takes the chunk back.
func BenchmarkReassemble(b *testing.B) {
	sealed := fakeChunk(1, 1, 256<<10)
	pieces := mustSplit(b, sealed, MaxMessageSize)
	last := len(pieces) - 1
	pieces[0], pieces[last] = pieces[last], pieces[0]
	r := NewReassembler(ReassemblerConfig{})
	b.SetBytes(int64(len(sealed)))
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		var out []byte
		for _, p := range pieces {
			p.Seq = seq
			if p.Index == 0 {
				// Piece 0 carries the header, which must name this seq.
				p.Data = append([]byte(nil), p.Data...)
				binary.BigEndian.PutUint64(p.Data[12:], seq)
			}
			o, _, err := r.Add(p)
			if err != nil {
				b.Fatal(err)
			}
			if o != nil {
				out = o
			}
		}
		if len(out) != len(sealed) {
			b.Fatal("chunk not reassembled")
		}
	}
}
