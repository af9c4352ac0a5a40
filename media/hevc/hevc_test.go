package hevc

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/banyan-live/banyan/internal/x265test"
)

// x265Params reads the parameter sets and NAL units of testdata/x265.hevc,
// made by ffmpeg 5.1 with libx265 (Main profile, 192x108, level 2):
//
//	ffmpeg -f lavfi -i testsrc2=size=192x108:rate=30 -frames:v 12 \
//	  -c:v libx265 -x265-params keyint=6:bframes=2 -pix_fmt yuv420p x265.hevc
func x265Params(t testing.TB) (vps, sps, pps []byte, nalus [][]byte) {
	t.Helper()
	v := x265test.Config(t, "x265.hevc")
	b, err := os.ReadFile("testdata/x265.hevc")
	if err != nil {
		t.Fatal(err)
	}
	var au h264.AnnexB // the same framing for H.265
	if err := au.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return v.VPS, v.SPS, v.PPS, au
}

func TestRealStream(t *testing.T) {
	vps, sps, pps, nalus := x265Params(t)
	ptl, err := PTLFromSPS(sps)
	if err != nil {
		t.Fatal(err)
	}
	// Main profile (1), compatible with Main and Main 10 (flags 1 and 2,
	// reversed: 0x6), Main tier, level 2 (60), progressive and frame-only
	// source (0x90): what ffprobe reports for the file.
	if got := CodecString("hvc1", ptl); got != "hvc1.1.6.L60.90" {
		t.Fatalf("codec string %q", got)
	}
	rec, err := DecoderConfig{PTL: ptl, VPS: [][]byte{vps}, SPS: [][]byte{sps}, PPS: [][]byte{pps}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDecoderConfig(rec)
	if err != nil {
		t.Fatal(err)
	}
	if back.PTL != ptl || back.LengthSize != 4 || !bytes.Equal(back.VPS[0], vps) || !bytes.Equal(back.SPS[0], sps) || !bytes.Equal(back.PPS[0], pps) {
		t.Fatalf("round trip: %+v", back)
	}
	irap := 0
	for _, n := range nalus {
		if IsIRAP(NALUType(n)) {
			irap++
		}
	}
	if irap != 2 { // keyint=6 over 12 frames
		t.Fatalf("%d random access pictures, want 2", irap)
	}
}

func TestCodecString(t *testing.T) {
	ptl := func(b0 byte, compat uint32, level byte, cons ...byte) [PTLSize]byte {
		var p [PTLSize]byte
		p[0] = b0
		p[1], p[2], p[3], p[4] = byte(compat>>24), byte(compat>>16), byte(compat>>8), byte(compat)
		copy(p[5:11], cons)
		p[11] = level
		return p
	}
	tests := []struct {
		name  string
		entry string
		ptl   [PTLSize]byte
		want  string
	}{
		// ISO/IEC 14496-15 E.3 and Apple's HLS authoring examples.
		{"main", "hvc1", ptl(0x01, 0x60000000, 93, 0xb0), "hvc1.1.6.L93.B0"},
		{"main10", "hvc1", ptl(0x02, 0x20000000, 123, 0xb0), "hvc1.2.4.L123.B0"},
		{"high tier, hev1", "hev1", ptl(0x21, 0x60000000, 150, 0x90), "hev1.1.6.H150.90"},
		{"profile space A", "hvc1", ptl(0x41, 0x40000000, 90), "hvc1.A1.2.L90"},
		{"middle zero constraint byte kept", "hvc1", ptl(0x04, 0x08000000, 120, 0x90, 0, 0x08), "hvc1.4.10.L120.90.00.08"},
		{"all compat flags", "hvc1", ptl(0x1f, 0xffffffff, 255, 1, 2, 3, 4, 5, 6), "hvc1.31.FFFFFFFF.L255.01.02.03.04.05.06"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodecString(tt.entry, tt.ptl); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPTLFromSPSEmulationPrevention(t *testing.T) {
	// An SPS whose compatibility flags are zero bytes: the encoder escapes
	// 00 00 0x with 00 00 03 0x.
	sps := []byte{0x42, 0x01, 0x01, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d, 0xa0}
	ptl, err := PTLFromSPS(sps)
	if err != nil {
		t.Fatal(err)
	}
	want := [PTLSize]byte{0x01, 0, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5d}
	if ptl != want {
		t.Fatalf("got % x, want % x", ptl, want)
	}
}

func TestParseDecoderConfigErrors(t *testing.T) {
	vps, sps, pps, _ := x265Params(t)
	good, err := DecoderConfig{VPS: [][]byte{vps}, SPS: [][]byte{sps}, PPS: [][]byte{pps}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"header only", good[:22], "truncated"},
		{"version 2", mod(func(b []byte) []byte { b[0] = 2; return b }), "configurationVersion"},
		{"length size 3", mod(func(b []byte) []byte { b[21] = b[21]&^3 | 2; return b }), "lengthSizeMinusOne"},
		{"array cut", good[:25], "truncated"},
		{"NAL unit cut", good[:len(good)-1], "truncated"},
		{"array type lies", mod(func(b []byte) []byte { b[23] = 0x80 | NALUTypeSPS; return b }), "holds NAL type"},
		{"empty parameter set", mod(func(b []byte) []byte {
			// First array: one VPS of length 0 and nothing else.
			b[22] = 1
			return append(b[:23:23], 0x80|NALUTypeVPS, 0, 1, 0, 0)
		}), "is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDecoderConfig(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := ParseDecoderConfig(mod(func(b []byte) []byte { b[0] = 2; return b })); !errors.Is(err, ErrVersion) {
		t.Fatalf("version error does not match ErrVersion: %v", err)
	}
	// SEI arrays are skipped, not refused.
	sei := append(bytes.Clone(good), 0x80|NALUTypeSEIPrefix, 0, 1, 0, 2, 0x4e, 0x01)
	sei[22]++
	if c, err := ParseDecoderConfig(sei); err != nil || len(c.SPS) != 1 {
		t.Fatalf("record with an SEI array: %v", err)
	}
}

func FuzzParseDecoderConfig(f *testing.F) {
	vps, sps, pps, _ := x265Params(f)
	good, _ := DecoderConfig{VPS: [][]byte{vps}, SPS: [][]byte{sps}, PPS: [][]byte{pps}}.Marshal()
	f.Add(good)
	f.Add(good[:30])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseDecoderConfig(b)
		if err != nil {
			return
		}
		// What parses marshals, and parses back to the same sets.
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed record: %v", err)
		}
		back, err := ParseDecoderConfig(out)
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if back.PTL != c.PTL || back.LengthSize != c.LengthSize || len(back.VPS) != len(c.VPS) || len(back.SPS) != len(c.SPS) || len(back.PPS) != len(c.PPS) {
			t.Fatalf("round trip changed the record: %+v vs %+v", back, c)
		}
		for _, s := range c.SPS {
			if ptl, err := PTLFromSPS(s); err == nil {
				_ = CodecString("hvc1", ptl)
			}
		}
	})
}

func FuzzPTLFromSPS(f *testing.F) {
	_, sps, _, _ := x265Params(f)
	f.Add(sps)
	f.Add([]byte{0x42, 0x01, 0x01, 0x00, 0x00, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		ptl, err := PTLFromSPS(b)
		if err != nil {
			return
		}
		s := CodecString("hvc1", ptl)
		if !strings.HasPrefix(s, "hvc1.") || strings.Count(s, ".") < 3 || strings.Count(s, ".") > 9 {
			t.Fatalf("codec string %q", s)
		}
	})
}
