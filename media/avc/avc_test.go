package avc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Parameter sets of a real x264 stream (main profile, 640x360), taken from
// `ffmpeg -f lavfi -i testsrc2=size=640x360 -c:v libx264 -profile:v main`.
var (
	testSPS = mustHex("674d401eeca05017fcb80880000003008000001e078b16cb")
	testPPS = mustHex("68ebe3cb20")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// record builds a config record by hand, independent of Marshal.
func record(lenSizeMinusOne byte, sps [][]byte, pps [][]byte) []byte {
	b := []byte{1, 0x4d, 0x40, 0x1e, 0xfc | lenSizeMinusOne, 0xe0 | byte(len(sps))}
	for _, s := range sps {
		b = append(b, byte(len(s)>>8), byte(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(len(pps)))
	for _, p := range pps {
		b = append(b, byte(len(p)>>8), byte(len(p)))
		b = append(b, p...)
	}
	return b
}

func TestParseDecoderConfig(t *testing.T) {
	good := record(3, [][]byte{testSPS}, [][]byte{testPPS})
	tests := []struct {
		name    string
		in      []byte
		wantErr error // nil: success; errAny: any error
		check   func(t *testing.T, c DecoderConfig)
	}{
		{name: "x264 main", in: good, check: func(t *testing.T, c DecoderConfig) {
			if c.Version != 1 || c.Profile != 0x4d || c.ProfileCompat != 0x40 || c.Level != 0x1e || c.LengthSize != 4 {
				t.Fatalf("header fields: %+v", c)
			}
			if len(c.SPS) != 1 || !bytes.Equal(c.SPS[0], testSPS) || len(c.PPS) != 1 || !bytes.Equal(c.PPS[0], testPPS) {
				t.Fatalf("parameter sets: %x / %x", c.SPS, c.PPS)
			}
		}},
		{name: "high profile extension ignored", in: append(append([]byte{}, good...), 0xfd, 0xf8, 0xf8, 0x00), check: func(t *testing.T, c DecoderConfig) {
			if len(c.SPS) != 1 || len(c.PPS) != 1 {
				t.Fatalf("sets: %d/%d", len(c.SPS), len(c.PPS))
			}
		}},
		{name: "two SPS two PPS, 2-byte lengths", in: record(1, [][]byte{testSPS, testSPS}, [][]byte{testPPS, {0x68, 1}}), check: func(t *testing.T, c DecoderConfig) {
			if c.LengthSize != 2 || len(c.SPS) != 2 || len(c.PPS) != 2 || !bytes.Equal(c.PPS[1], []byte{0x68, 1}) {
				t.Fatalf("%+v", c)
			}
		}},
		{name: "1-byte lengths", in: record(0, [][]byte{testSPS}, [][]byte{testPPS}), check: func(t *testing.T, c DecoderConfig) {
			if c.LengthSize != 1 {
				t.Fatalf("length size %d", c.LengthSize)
			}
		}},
		{name: "no parameter sets", in: record(3, nil, nil), check: func(t *testing.T, c DecoderConfig) {
			if len(c.SPS) != 0 || len(c.PPS) != 0 {
				t.Fatalf("%+v", c)
			}
		}},
		{name: "empty", in: nil, wantErr: ErrShort},
		{name: "6 bytes", in: good[:6], wantErr: ErrShort},
		{name: "version 0", in: append([]byte{0}, good[1:]...), wantErr: ErrVersion},
		{name: "reserved length size 3", in: record(2, [][]byte{testSPS}, [][]byte{testPPS}), wantErr: errAny},
		{name: "SPS length overruns", in: good[:6+2+10], wantErr: ErrShort},
		{name: "missing PPS count", in: good[:6+2+len(testSPS)], wantErr: ErrShort},
		{name: "PPS length overruns", in: good[:len(good)-1], wantErr: ErrShort},
		{name: "SPS count says 2, one present", in: func() []byte {
			b := append([]byte{}, good...)
			b[5] = 0xe2
			return b
		}(), wantErr: errAny},
		{name: "SPS slot holds a PPS", in: record(3, [][]byte{testPPS}, [][]byte{testPPS}), wantErr: errAny},
		{name: "PPS slot holds an SPS", in: record(3, [][]byte{testSPS}, [][]byte{testSPS}), wantErr: errAny},
		{name: "zero-length SPS", in: record(3, [][]byte{{}}, nil), wantErr: errAny},
		{name: "oversized SPS", in: record(3, [][]byte{append([]byte{0x67}, make([]byte, MaxParamSetSize)...)}, nil), wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseDecoderConfig(tt.in)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr == errAny && err == nil, tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestDecoderConfigMarshalRoundTrip(t *testing.T) {
	c := DecoderConfig{Version: 1, Profile: 0x4d, ProfileCompat: 0x40, Level: 0x1e, LengthSize: 4,
		SPS: [][]byte{testSPS}, PPS: [][]byte{testPPS}}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := record(3, [][]byte{testSPS}, [][]byte{testPPS}); !bytes.Equal(b, want) {
		t.Fatalf("marshal = %x, want %x", b, want)
	}
	c2, err := ParseDecoderConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Equal(c2) {
		t.Fatalf("round trip: %+v != %+v", c2, c)
	}
	c2.PPS = [][]byte{{0x68, 0xff}}
	if c.Equal(c2) {
		t.Fatal("Equal ignores PPS")
	}
	if _, err := (DecoderConfig{LengthSize: 3}).Marshal(); err == nil {
		t.Fatal("length size 3 marshalled")
	}
}

func TestSplitAVCC(t *testing.T) {
	idr := []byte{0x65, 0x88, 0x84}
	sei := []byte{0x06, 0x05}
	tests := []struct {
		name    string
		in      []byte
		size    int
		max     int
		want    [][]byte
		wantErr bool
	}{
		{name: "4-byte two units", in: []byte{0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 3, 0x65, 0x88, 0x84}, size: 4, want: [][]byte{sei, idr}},
		{name: "2-byte", in: []byte{0, 3, 0x65, 0x88, 0x84}, size: 2, want: [][]byte{idr}},
		{name: "1-byte", in: []byte{2, 0x06, 0x05, 3, 0x65, 0x88, 0x84}, size: 1, want: [][]byte{sei, idr}},
		{name: "zero-length unit skipped", in: []byte{0, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84}, size: 4, want: [][]byte{idr}},
		{name: "empty buffer", in: nil, size: 4, want: nil},
		{name: "length overruns", in: []byte{0, 0, 0, 4, 0x65, 0x88, 0x84}, size: 4, wantErr: true},
		{name: "huge length", in: []byte{0xff, 0xff, 0xff, 0xff, 0x65}, size: 4, wantErr: true},
		{name: "truncated prefix", in: []byte{0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0}, size: 4, wantErr: true},
		{name: "truncated 2-byte prefix", in: []byte{0}, size: 2, wantErr: true},
		{name: "bad length size", in: []byte{0, 0, 1, 0x65}, size: 3, wantErr: true},
		{name: "too many units", in: []byte{1, 9, 1, 9, 1, 9}, size: 1, max: 2, wantErr: true},
		{name: "unit limit met", in: []byte{1, 9, 1, 9}, size: 1, max: 2, want: [][]byte{{9}, {9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitAVCC(nil, tt.in, tt.size, tt.max)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %x", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d units %x, want %x", len(got), got, tt.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Fatalf("unit %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSplitAVCCAppendsAndCapsCapacity(t *testing.T) {
	in := []byte{0, 1, 0x09, 0, 2, 0x65, 0x01}
	dst := [][]byte{{0xaa}}
	got, err := SplitAVCC(dst, in, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0][0] != 0xaa {
		t.Fatalf("append semantics broken: %x", got)
	}
	// Appending to a returned unit must not clobber the next one.
	_ = append(got[1], 0xee)
	if got[2][0] != 0x65 {
		t.Fatal("units share capacity")
	}
}

func TestCodecString(t *testing.T) {
	tests := []struct {
		sps     []byte
		want    string
		wantErr bool
	}{
		{sps: testSPS, want: "avc1.4D401E"},
		{sps: []byte{0x67, 0x64, 0x00, 0x28}, want: "avc1.640028"},
		{sps: []byte{0x27, 0x42, 0xe0, 0x1f, 0x00}, want: "avc1.42E01F"}, // nal_ref_idc 1
		{sps: []byte{0x67, 0x64, 0x00}, wantErr: true},
		{sps: []byte{0x68, 0x64, 0x00, 0x28}, wantErr: true},
		{sps: nil, wantErr: true},
	}
	for _, tt := range tests {
		got, err := CodecString(tt.sps)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("CodecString(%x) = %q, %v; want %q, err %v", tt.sps, got, err, tt.want, tt.wantErr)
		}
	}
	// The test SPS must agree with a real SPS parser.
	var s h264.SPS
	if err := s.Unmarshal(testSPS); err != nil {
		t.Fatal(err)
	}
	if s.Width() != 640 || s.Height() != 360 || s.ProfileIdc != 0x4d || s.LevelIdc != 0x1e {
		t.Fatalf("SPS decodes to %dx%d profile %d level %d", s.Width(), s.Height(), s.ProfileIdc, s.LevelIdc)
	}
}

func FuzzParseDecoderConfig(f *testing.F) {
	f.Add(record(3, [][]byte{testSPS}, [][]byte{testPPS}))
	f.Add(record(1, [][]byte{testSPS, testSPS}, [][]byte{testPPS}))
	f.Add([]byte{1, 0x64, 0, 0x28, 0xff, 0xe1, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseDecoderConfig(b)
		if err != nil {
			return
		}
		// Whatever parses must re-encode and parse back to the same thing.
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed config does not marshal: %v", err)
		}
		c2, err := ParseDecoderConfig(out)
		if err != nil || !c.Equal(c2) {
			t.Fatalf("round trip failed: %v", err)
		}
		for _, s := range c.SPS {
			if NALUType(s) != NALUTypeSPS || len(s) > MaxParamSetSize {
				t.Fatalf("bad SPS accepted: %x", s)
			}
		}
	})
}

func FuzzSplitAVCC(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 3, 0x65, 0x88, 0x84}, uint8(4))
	f.Add([]byte{2, 0x06, 0x05}, uint8(1))
	f.Add([]byte{0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, size uint8) {
		units, err := SplitAVCC(nil, b, int(size), 64)
		if err != nil {
			return
		}
		// Accepted input: the units plus their prefixes account for every
		// byte, and each unit lies inside b.
		total := 0
		for _, u := range units {
			if len(u) == 0 {
				t.Fatal("empty unit returned")
			}
			total += len(u) + int(size)
		}
		if total > len(b) {
			t.Fatalf("units cover %d bytes of a %d-byte buffer", total, len(b))
		}
	})
}

func BenchmarkSplitAVCC(b *testing.B) {
	// A typical frame: AUD, SEI, 4 slices of 8 KiB.
	var buf []byte
	add := func(n int, typ byte) {
		buf = append(buf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		u := make([]byte, n)
		u[0] = typ
		buf = append(buf, u...)
	}
	add(2, 0x09)
	add(40, 0x06)
	for i := 0; i < 4; i++ {
		add(8192, 0x65)
	}
	b.SetBytes(int64(len(buf)))
	var dst [][]byte
	for i := 0; i < b.N; i++ {
		var err error
		dst, err = SplitAVCC(dst[:0], buf, 4, 0)
		if err != nil {
			b.Fatal(err)
		}
	}
}
