package av1_test

import (
	"bytes"
	"testing"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/media/av1"
)

func TestSplitRealStream(t *testing.T) {
	tus := av1test.TUs(t)
	var first []byte
	for i, tu := range tus {
		obus, err := av1.Split(nil, tu)
		if err != nil {
			t.Fatalf("TU %d: %v", i, err)
		}
		if av1.Type(obus[0]) != av1.OBUTemporalDelimiter {
			t.Fatalf("TU %d starts with OBU type %d", i, av1.Type(obus[0]))
		}
		key := av1.IsKey(obus, false)
		if want := i%15 == 0; key != want {
			t.Errorf("TU %d: av1.IsKey %v, want %v", i, key, want)
		}
		sh := av1.SequenceHeader(obus)
		if key && sh == nil {
			t.Errorf("key TU %d without a sequence header", i)
		}
		if first == nil {
			first = sh
		} else if sh != nil && !bytes.Equal(sh, first) {
			t.Errorf("TU %d: sequence header changed", i)
		}
		// A sample keeps everything but the delimiter, with sizes.
		s := av1.AppendSample(nil, obus)
		if len(s) != av1.SampleSize(obus) {
			t.Fatalf("TU %d: av1.SampleSize %d, sample %d bytes", i, av1.SampleSize(obus), len(s))
		}
		if !bytes.Equal(s, tu[2:]) { // the encoder's TD is 0x12 0x00
			t.Fatalf("TU %d: sample is not the TU without its delimiter", i)
		}
		back, err := av1.Split(nil, s)
		if err != nil || len(back) != len(obus)-1 {
			t.Fatalf("TU %d: re-split gave %d OBUs, %v", i, len(back), err)
		}
	}
}

func TestSplitForms(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"sized", []byte{0x0a, 0x02, 0xaa, 0xbb}, [][]byte{{0x08, 0xaa, 0xbb}}},
		{"last unsized", []byte{0x12, 0x00, 0x30, 0xcc}, [][]byte{{0x10}, {0x30, 0xcc}}},
		{"extension", []byte{0x36, 0x28, 0x01, 0xdd}, [][]byte{{0x34, 0x28, 0xdd}}},
		{"two-byte size", append([]byte{0x32, 0x80, 0x01}, make([]byte, 128)...), [][]byte{append([]byte{0x30}, make([]byte, 128)...)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := av1.Split(nil, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d OBUs, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("OBU %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSplitRejects(t *testing.T) {
	many := bytes.Repeat([]byte{0x32, 0x00}, av1.MaxOBUsPerTU+1)
	for name, b := range map[string][]byte{
		"forbidden bit":  {0x8a, 0x00},
		"truncated ext":  {0x36},
		"truncated size": {0x0a, 0x80},
		"size overruns":  {0x0a, 0x05, 0x01},
		"size too long":  {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
		"size over 2^32": {0x0a, 0x80, 0x80, 0x80, 0x80, 0x10},
		"too many OBUs":  many,
	} {
		if _, err := av1.Split(nil, b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAppendSampleDrops(t *testing.T) {
	obus := [][]byte{{0x10}, {0x78, 0x01}, {0x40, 0x02}, {0x30, 0x03}, {}, {0x34}}
	got := av1.AppendSample(nil, obus)
	want := []byte{0x32, 0x01, 0x03} // only the frame OBU; the bare extension header is skipped
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestIsKey(t *testing.T) {
	tests := []struct {
		name    string
		obus    [][]byte
		reduced bool
		want    bool
	}{
		{"key frame", [][]byte{{0x10}, {0x30, 0x10}}, false, true},
		{"inter frame", [][]byte{{0x10}, {0x30, 0x30}}, false, false},
		{"intra-only", [][]byte{{0x10}, {0x30, 0x50}}, false, false},
		{"shown existing", [][]byte{{0x18, 0x80}}, false, false},
		{"frame header then tiles", [][]byte{{0x18, 0x00}, {0x20, 0xff}}, false, true},
		{"extension header", [][]byte{{0x34, 0x08, 0x10}}, false, true},
		{"reduced still", [][]byte{{0x30, 0xff}}, true, true},
		{"no frame", [][]byte{{0x10}, {0x08, 0x00}}, false, false},
		{"empty frame OBU", [][]byte{{0x30}}, false, false},
	}
	for _, tt := range tests {
		if got := av1.IsKey(tt.obus, tt.reduced); got != tt.want {
			t.Errorf("%s: av1.IsKey = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseConfigRecord(t *testing.T) {
	tus := av1test.TUs(t)
	obus, err := av1.Split(nil, tus[0])
	if err != nil {
		t.Fatal(err)
	}
	sh := av1.SequenceHeader(obus)
	rec := append([]byte{0x81, 0x00, 0x0c, 0x00}, av1.AppendSample(nil, [][]byte{sh})...)
	r, err := av1.ParseConfigRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.SeqHeader, sh) || r.Fixed != [2]byte{0x00, 0x0c} {
		t.Fatalf("got %+v", r)
	}
	// OBS may send the record without config OBUs.
	r, err = av1.ParseConfigRecord([]byte{0x81, 0x08, 0x0c, 0x00})
	if err != nil || r.SeqHeader != nil {
		t.Fatalf("bare record: %+v, %v", r, err)
	}
	for name, b := range map[string][]byte{
		"short":      {0x81, 0x00},
		"bad marker": {0x01, 0x00, 0x0c, 0x00},
		"bad OBUs":   {0x81, 0x00, 0x0c, 0x00, 0x0a, 0x09},
	} {
		if _, err := av1.ParseConfigRecord(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCodecString(t *testing.T) {
	tests := []struct {
		fixed [2]byte
		want  string
	}{
		{[2]byte{0x08, 0x0c}, "av01.0.08M.08"},
		{[2]byte{0x0d, 0x8c}, "av01.0.13H.08"},
		{[2]byte{0x04, 0x4c}, "av01.0.04M.10"},
		{[2]byte{0x48, 0x60}, "av01.2.08M.12"},
		{[2]byte{0x28, 0x60}, "av01.1.08M.10"}, // twelve_bit only counts in profile 2
	}
	for _, tt := range tests {
		if got := av1.CodecString(tt.fixed); got != tt.want {
			t.Errorf("av1.CodecString(%x) = %s, want %s", tt.fixed, got, tt.want)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, tu := range av1test.TUs(f)[:3] {
		f.Add(tu)
	}
	f.Add([]byte{0x36, 0x28, 0x01, 0xdd})
	f.Fuzz(func(t *testing.T, b []byte) {
		obus, err := av1.Split(nil, b)
		if err != nil {
			return
		}
		s := av1.AppendSample(nil, obus)
		if len(s) != av1.SampleSize(obus) {
			t.Fatalf("SampleSize %d, sample %d", av1.SampleSize(obus), len(s))
		}
		back, err := av1.Split(nil, s)
		if err != nil {
			t.Fatalf("a written sample does not split: %v", err)
		}
		if !bytes.Equal(av1.AppendSample(nil, back), s) {
			t.Fatal("sample not stable under split and write")
		}
	})
}

func FuzzParseConfigRecord(f *testing.F) {
	f.Add([]byte{0x81, 0x08, 0x0c, 0x00, 0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := av1.ParseConfigRecord(b)
		if err == nil && r.SeqHeader != nil && av1.Type(r.SeqHeader) != av1.OBUSequenceHeader {
			t.Fatal("sequence header of another type")
		}
		_ = av1.CodecString(r.Fixed)
	})
}
