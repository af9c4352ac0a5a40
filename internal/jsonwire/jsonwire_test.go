package jsonwire

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
	"unicode"
	"unicode/utf8"
)

// sample has a field of every kind the reader and writer handle, with
// encoding/json's tags; read and write below are its hand-written codec,
// held to encoding/json by the tests.
type sample struct {
	S    string          `json:"s"`
	I    int64           `json:"i"`
	I8   int8            `json:"i8"`
	U    uint64          `json:"u"`
	U16  uint16          `json:"u16"`
	B    bool            `json:"b"`
	Data []byte          `json:"data"`
	Raw  json.RawMessage `json:"raw,omitempty"`
	List []string        `json:"list"`
	Subs []sub           `json:"subs"`
	Ptr  *sub            `json:"ptr,omitempty"`
}

type sub struct {
	Name string `json:"name"`
	N    uint32 `json:"n"`
}

func (s *sample) read(r *Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "s":
			r.String(&s.S)
		case "i":
			if v, ok := r.Int(64); ok {
				s.I = v
			}
		case "i8":
			if v, ok := r.Int(8); ok {
				s.I8 = int8(v)
			}
		case "u":
			if v, ok := r.Uint(64); ok {
				s.U = v
			}
		case "u16":
			if v, ok := r.Uint(16); ok {
				s.U16 = uint16(v)
			}
		case "b":
			if v, ok := r.Bool(); ok {
				s.B = v
			}
		case "data":
			r.Bytes(&s.Data)
		case "raw":
			r.Raw((*[]byte)(&s.Raw))
		case "list":
			Slice(r, &s.List, (*Reader).String)
		case "subs":
			Slice(r, &s.Subs, func(r *Reader, v *sub) { v.read(r) })
		case "ptr":
			if r.Null() {
				s.Ptr = nil
				return
			}
			if s.Ptr == nil {
				s.Ptr = new(sub)
			}
			s.Ptr.read(r)
		default:
			r.Skip()
		}
	})
}

func (v *sub) read(r *Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "name":
			r.String(&v.Name)
		case "n":
			if n, ok := r.Uint(32); ok {
				v.N = uint32(n)
			}
		default:
			r.Skip()
		}
	})
}

func (v sub) write(w *Writer) {
	w.Open()
	w.Key("name")
	w.String(v.Name)
	w.Key("n")
	w.Uint(uint64(v.N))
	w.Close()
}

func (s sample) write(w *Writer) error {
	w.Open()
	w.Key("s")
	w.String(s.S)
	w.Key("i")
	w.Int(s.I)
	w.Key("i8")
	w.Int(int64(s.I8))
	w.Key("u")
	w.Uint(s.U)
	w.Key("u16")
	w.Uint(uint64(s.U16))
	w.Key("b")
	w.Bool(s.B)
	w.Key("data")
	w.Bytes(s.Data)
	if len(s.Raw) != 0 {
		w.Key("raw")
		if err := w.Raw(s.Raw); err != nil {
			return err
		}
	}
	w.Key("list")
	w.Strings(s.List)
	w.Key("subs")
	if s.Subs == nil {
		w.Null()
	} else {
		w.OpenArray()
		for _, v := range s.Subs {
			v.write(w)
		}
		w.CloseArray()
	}
	if s.Ptr != nil {
		w.Key("ptr")
		s.Ptr.write(w)
	}
	w.Close()
	return nil
}

// compareRead fails unless Reader and encoding/json agree on data: both
// fail, or both read the same value, starting from the same value (null
// and duplicate keys keep or merge what is there).
func compareRead(t *testing.T, data []byte, start sample) {
	t.Helper()
	got, want := clone(start), clone(start)
	r := NewReader(data)
	got.read(r)
	gotErr := r.Done()
	wantErr := json.Unmarshal(data, &want)
	if (gotErr != nil) != (wantErr != nil) || (wantErr == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("read %q\n got %#v (%v)\nwant %#v (%v)", data, got, gotErr, want, wantErr)
	}
}

// clone deep-copies s through encoding/json's own reading of its JSON
// (a Raw that is not valid JSON is dropped).
func clone(s sample) sample {
	if !json.Valid(s.Raw) {
		s.Raw = nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var c sample
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

func TestWriteMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	vals := []sample{
		{},
		{S: "<a href=\"x\">&amp;</a>\u2028\u2029\x00\x1f\x7f\\/\b\f\n\r\t", List: []string{"\xff", "\xe2\x80", "ok"}, Data: []byte{}},
		{Raw: json.RawMessage(" [ 1 , { \"a\" : \"<&>\u2028\" } , null, -0.5e+3 ] "), Subs: []sub{}, Ptr: &sub{}},
		{Raw: json.RawMessage(`{"a":`)},
		{Raw: json.RawMessage(`"x" "y"`)},
		{I: -1 << 63, I8: -128, U: 1<<64 - 1, U16: 1<<16 - 1, B: true},
	}
	for range 500 {
		v, _ := quick.Value(reflect.TypeOf(sample{}), rng)
		s := v.Interface().(sample)
		if rng.Intn(2) == 0 {
			s.Raw = nil
		}
		vals = append(vals, s)
	}
	for _, s := range vals {
		w := Writer{}
		gotErr := s.write(&w)
		want, wantErr := json.Marshal(s)
		if (gotErr != nil) != (wantErr != nil) || (wantErr == nil && !bytes.Equal(w.B, want)) {
			t.Fatalf("write %#v\n got %s (%v)\nwant %s (%v)", s, w.B, gotErr, want, wantErr)
		}
		if wantErr == nil {
			compareRead(t, want, sample{})
			compareRead(t, want, s)
		}
	}
}

func TestReadLikeEncodingJSON(t *testing.T) {
	start := sample{S: "old", I: 5, List: []string{"a", "b", "c"}, Subs: []sub{{"x", 1}, {"y", 2}}, Ptr: &sub{"p", 3}, Data: []byte{9}}
	for _, in := range []string{
		`{}`, `null`, ` {"S":"x"} `, `{"s":null,"i":null,"b":null,"list":null,"subs":null,"ptr":null,"data":null}`,
		`{"ſ":"long s","İ":1}`, `{"\u0053":"escaped key"}`, `{"u16":65536}`, `{"u16":65535}`, `{"i8":-129}`, `{"i8":127}`,
		`{"i":1.0}`, `{"i":1e2}`, `{"i":-0}`, `{"u":-0}`, `{"i":9223372036854775808}`, `{"i":"1"}`, `{"b":0}`, `{"s":1}`,
		`{"list":[]}`, `{"list":["z"]}`, `{"list":[null,"q"]}`, `{"subs":[{"n":7}]}`, `{"subs":[{},{},{}]}`, `{"subs":{}}`,
		`{"ptr":{"n":4}}`, `{"ptr":{"name":"a"},"ptr":{"n":1}}`, `{"ptr":"x"}`, `{"ptr":[]}`,
		`{"data":"AQI="}`, `{"data":"AQI"}`, `{"data":"A\nQI="}`, `{"data":[1,2]}`, `{"data":[256]}`, `{"data":["1"]}`, `{"data":""}`, `{"data":[]}`,
		`{"raw":null}`, `{"raw": {"a" : [1, 2]} }`, `{"raw":"\u00e9"}`,
		`{"s":"\ud83d\ude00 \ud83d \ude00 \ud83dx \u00e9 \xff\xfe"}`, `{"s":"\/\"\\\b\f\n\r\t"}`, `{"s":"\'"}`, `{"s":"\u12"}`, "{\"s\":\"\x01\"}",
		`{"x":[{"y":[true,false,null,1,-1.5,"z"]}]}`, `{"x":tru}`, `{"x":nul}`, `{"x":-}`, `{"x":01}`, `{"x":1.}`, `{"x":.5}`, `{"x":1e}`,
		`{"s":"a"}x`, `{"s":"a",}`, `{,}`, `{"s" "a"}`, `{"s":"a" "i":1}`, `[]`, `""`, ``, `{`, `{"s":"a"`,
		"\ufeff{}", `{"x":` + string(bytes.Repeat([]byte("["), 9999)) + string(bytes.Repeat([]byte("]"), 9999)) + `}`,
		`{"x":` + string(bytes.Repeat([]byte("["), 10000)) + string(bytes.Repeat([]byte("]"), 10000)) + `}`,
	} {
		compareRead(t, []byte(in), sample{})
		compareRead(t, []byte(in), start)
	}
}

// TestFoldKey: the runes foldKey maps to ASCII letters are all the
// non-ASCII runes in an ASCII letter's case-folding orbit, which is what
// encoding/json's key matching (bytes.EqualFold) goes by.
func TestFoldKey(t *testing.T) {
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		ascii := rune(-1)
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < utf8.RuneSelf {
				ascii = unicode.ToLower(f)
			}
		}
		got := string(foldKey(nil, utf8.AppendRune(nil, r)))
		if ascii >= 0 && got != string(ascii) || ascii < 0 && got != string(r) {
			t.Fatalf("foldKey(%U) = %q, folds to %q", r, got, ascii)
		}
	}
}

func FuzzRead(f *testing.F) {
	for _, s := range []string{`{"s":"a","list":["b"],"subs":[{"name":"c","n":1}],"ptr":{"n":2},"data":"AQI=","raw":[1,{"a":null}]}`, `{"i":-5,"u":7,"b":true}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareRead(t, data, sample{})
		compareRead(t, data, sample{S: "old", List: []string{"a", "b"}, Subs: []sub{{"x", 1}, {"y", 2}}, Ptr: &sub{"p", 3}})
		// What reads must write back as encoding/json writes it.
		var s sample
		r := NewReader(data)
		s.read(r)
		if r.Done() != nil {
			return
		}
		w := Writer{}
		err := s.write(&w)
		want, wantErr := json.Marshal(s)
		if (err != nil) != (wantErr != nil) || (wantErr == nil && !bytes.Equal(w.B, want)) {
			t.Fatalf("write %#v\n got %s (%v)\nwant %s (%v)", s, w.B, err, want, wantErr)
		}
	})
}
