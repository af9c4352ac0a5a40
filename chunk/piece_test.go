package chunk

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"
)

func TestPieceRoundTrip(t *testing.T) {
	for _, p := range []Piece{
		{Epoch: 1, Seq: 0, Index: 0, Count: 1, Data: []byte{1}},
		{Epoch: 1<<32 - 1, Seq: 1<<64 - 1, Index: 65534, Count: 65535, Data: bytes.Repeat([]byte{7}, 40)},
		{Epoch: 9, Seq: 4, Index: 2, Count: 3, Data: []byte("tail")},
	} {
		b := AppendPiece([]byte("x"), p)
		if len(b) != 1+PieceHeaderSize+len(p.Data) {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := ParsePiece(b[1:])
		if err != nil {
			t.Fatal(err)
		}
		if got.Epoch != p.Epoch || got.Seq != p.Seq || got.Index != p.Index || got.Count != p.Count || !bytes.Equal(got.Data, p.Data) {
			t.Fatalf("got %+v want %+v", got, p)
		}
	}
	// Layout pinned as in doc.go.
	b := AppendPiece(nil, Piece{Epoch: 0x01020304, Seq: 0x05060708090a0b0c, Index: 0x0d0e, Count: 0x0f10, Data: []byte{0xAA}})
	want := []byte{0x50, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xAA}
	if !bytes.Equal(b, want) {
		t.Fatalf("layout %x", b)
	}
}

func TestParsePieceRejects(t *testing.T) {
	good := AppendPiece(nil, Piece{Epoch: 1, Seq: 2, Index: 0, Count: 2, Data: make([]byte, HeaderSize)})
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", good[:PieceHeaderSize-1]},
		{"no data", good[:PieceHeaderSize]},
		{"type", mod(func(b []byte) []byte { b[0] = 'Q'; return b })},
		{"version", mod(func(b []byte) []byte { b[1] = 2; return b })},
		{"count 0", mod(func(b []byte) []byte { b[16], b[17] = 0, 0; return b })},
		{"index = count", mod(func(b []byte) []byte { b[15] = 2; return b })},
		{"non-last piece shorter than a header", mod(func(b []byte) []byte { return b[:len(b)-1] })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePiece(tc.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		payload, max, wantCount int
	}{
		{0, MaxMessageSize, 1},
		{DefaultPieceData - Overhead, MaxMessageSize, 1},
		{DefaultPieceData - Overhead + 1, MaxMessageSize, 2},
		{64 << 10, MaxMessageSize, 5},
		{1000, PieceHeaderSize + HeaderSize, (1000 + Overhead + HeaderSize - 1) / HeaderSize},
	} {
		sealed := f.seal(t, mediaHeader(4, 7), testPayload(tc.payload))
		pieces, err := Split(sealed, tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if len(pieces) != tc.wantCount {
			t.Fatalf("payload %d max %d: %d pieces, want %d", tc.payload, tc.max, len(pieces), tc.wantCount)
		}
		var joined []byte
		for i, p := range pieces {
			msg := AppendPiece(nil, p)
			if len(msg) > tc.max {
				t.Fatalf("piece %d is a %d-byte message, max %d", i, len(msg), tc.max)
			}
			if p.Epoch != 4 || p.Seq != 7 || int(p.Index) != i || int(p.Count) != len(pieces) {
				t.Fatalf("piece %d header %+v", i, p)
			}
			if i < len(pieces)-1 && len(p.Data) != tc.max-PieceHeaderSize {
				t.Fatalf("piece %d has %d bytes", i, len(p.Data))
			}
			// Zero copy: the piece is a view of the sealed chunk, and
			// appending to it cannot clobber the next piece.
			if unsafe.SliceData(p.Data) != &sealed[i*(tc.max-PieceHeaderSize)] || cap(p.Data) != len(p.Data) {
				t.Fatalf("piece %d is not a capped view of the chunk", i)
			}
			if _, err := ParsePiece(msg); err != nil {
				t.Fatal(err)
			}
			joined = append(joined, p.Data...)
		}
		if !bytes.Equal(joined, sealed) {
			t.Fatal("pieces do not join to the chunk")
		}
	}

	sealed := f.seal(t, mediaHeader(1, 1), testPayload(10))
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
	}{
		{"max too small", sealed, PieceHeaderSize + HeaderSize - 1},
		{"truncated chunk", sealed[:len(sealed)-1], MaxMessageSize},
		{"not a chunk", []byte("hello"), MaxMessageSize},
	} {
		if _, err := Split(tc.in, tc.max); err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
	}
	// Too many pieces for a uint16 count: a 3 MB chunk in 36-byte pieces.
	big := make([]byte, 3<<20)
	hb, _ := Header{Epoch: 1, Seq: 1, PayloadLen: uint32(len(big) - Overhead)}.AppendBinary(nil)
	copy(big, hb)
	if _, err := Split(big, PieceHeaderSize+HeaderSize); err == nil {
		t.Fatal("split into more than 65535 pieces")
	}
}
