package chunk

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Flags: FlagInit, Seq: 0, Epoch: 1, KeyID: 0},
		{Flags: FlagKeyframe, Seq: 1, Epoch: 7, KeyID: 3, MediaTime: 250_000, Duration: 250_000, PayloadLen: 1234},
		{Flags: FlagKeyframe | FlagDiscontinuity, Seq: math.MaxUint64, Epoch: math.MaxUint32, KeyID: math.MaxUint32,
			MediaTime: math.MaxUint64, Duration: math.MaxUint32, PayloadLen: MaxPayload},
		{Flags: FlagEndOfStream, Seq: 99, Epoch: 2},
		{Flags: FlagInit | FlagEndOfStream, Seq: 0, Epoch: 2},
	} {
		b, err := h.AppendBinary([]byte{0xEE})
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 1+HeaderSize || b[0] != 0xEE {
			t.Fatalf("%v: AppendBinary gave %d bytes", h, len(b))
		}
		got, err := ParseHeader(append(b[1:], 1, 2, 3)) // trailing bytes are the body
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if got != h {
			t.Fatalf("round trip: got %v want %v", got, h)
		}
		if h.SealedLen() != int(h.PayloadLen)+116 {
			t.Fatalf("SealedLen %d", h.SealedLen())
		}
	}
}

// TestHeaderLayout pins the byte layout documented in doc.go.
func TestHeaderLayout(t *testing.T) {
	h := Header{Flags: FlagKeyframe, KeyID: 0x01020304, Epoch: 0x05060708, Seq: 0x090a0b0c0d0e0f10,
		MediaTime: 0x1112131415161718, Duration: 0x191a1b1c, PayloadLen: 0x00001d1e}
	got, _ := h.AppendBinary(nil)
	want := []byte{0xBA, 0x01, 0x02, 0x00,
		0x01, 0x02, 0x03, 0x04,
		0x05, 0x06, 0x07, 0x08,
		0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x19, 0x1a, 0x1b, 0x1c,
		0x00, 0x00, 0x1d, 0x1e}
	if !bytes.Equal(got, want) {
		t.Fatalf("layout\n got %x\nwant %x", got, want)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good, _ := Header{Flags: FlagKeyframe, Seq: 5, Epoch: 1, PayloadLen: 10}.AppendBinary(nil)
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", good[:HeaderSize-1]},
		{"magic", mod(func(b []byte) { b[0] = 0xBB })},
		{"version", mod(func(b []byte) { b[1] = 2 })},
		{"reserved", mod(func(b []byte) { b[3] = 1 })},
		{"unknown flag", mod(func(b []byte) { b[2] |= 0x10 })},
		{"init on media seq", mod(func(b []byte) { b[2] |= byte(FlagInit) })},
		{"seq 0 without init", mod(func(b []byte) { copy(b[12:20], make([]byte, 8)) })},
		{"payload too long", mod(func(b []byte) { b[32] = 0x01 })}, // 16 MiB + 10
		{"payload max+1", mod(func(b []byte) { copy(b[32:], []byte{0, 0x80, 0, 1}) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseHeader(tc.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		0:                              "0",
		FlagInit:                       "init",
		FlagKeyframe | FlagEndOfStream: "key|eos",
		FlagDiscontinuity | 0x40:       "disc|0x40",
	} {
		if got := f.String(); got != want {
			t.Errorf("%d: %q want %q", f, got, want)
		}
	}
}
