package ivf

import (
	"os"
	"testing"
)

func TestParseAV1File(t *testing.T) {
	b, err := os.ReadFile("../../media/av1/testdata/ld.ivf")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.FourCC != "AV01" || f.Width != 320 || f.Height != 180 || len(f.Frames) != 45 {
		t.Fatalf("got %s %dx%d, %d frames; want AV01 320x180, 45 frames", f.FourCC, f.Width, f.Height, len(f.Frames))
	}
	for i, fr := range f.Frames {
		if fr.PTS != uint64(i) {
			t.Fatalf("frame %d has pts %d", i, fr.PTS)
		}
	}
}

func TestParseRejects(t *testing.T) {
	hdr := func() []byte {
		b := make([]byte, 32)
		copy(b, "DKIF")
		b[6] = 32
		return b
	}
	for name, b := range map[string][]byte{
		"empty":            nil,
		"no magic":         make([]byte, 32),
		"short header len": func() []byte { b := hdr(); b[6] = 8; return b }(),
		"truncated frame":  append(hdr(), 1, 0, 0),
		"frame overruns":   append(hdr(), 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
	} {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../media/av1/testdata/ld.ivf"); err == nil {
		f.Add(b[:200])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		n := 32
		for _, fr := range file.Frames {
			n += 12 + len(fr.Data)
		}
		if n > len(b) {
			t.Fatalf("frames span %d bytes of %d", n, len(b))
		}
	})
}
