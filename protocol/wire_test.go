package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// The reference codec: the encoding/json implementation Encode and Decode
// had before wire.go, kept here to hold the hand-written JSON to it.

func refEncode(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"v":%d,"type":%q`, Version, m.Type())
	if len(body) > 2 {
		b.WriteByte(',')
		b.Write(body[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// refDecode is Decode with encoding/json.
func refDecode(data []byte) (Message, error) {
	if len(data) > MaxMessage {
		return nil, ErrTooLarge
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	if env.V != Version {
		return nil, fmt.Errorf("unsupported version %d", env.V)
	}
	m := newMessage(env.Type)
	if m == nil {
		return nil, fmt.Errorf("unknown message type %q", env.Type)
	}
	if env.Type != TypeReport && len(data) > maxSmall {
		return nil, ErrTooLarge
	}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, err
	}
	msg := deref(m)
	if err := msg.validate(); err != nil {
		return nil, err
	}
	return msg, nil
}

// allTypes is one value of every message type.
var allTypes = []Message{Join{}, SeederHello{}, Welcome{}, Assign{}, Signal{}, Stats{}, Report{}, Keys{}, Leave{}, Ended{}, Error{}, ICE{}, Moved{}}

// newMessage is a pointer to a new message of type typ, nil if none.
func newMessage(typ string) wireMessage {
	for _, m := range allTypes {
		if m.Type() == typ {
			return reflect.New(reflect.TypeOf(m)).Interface().(wireMessage)
		}
	}
	return nil
}

// TestWireMatchesEncodingJSON: for every message type, Encode writes the
// bytes encoding/json wrote, and reading them (or encoding/json's JSON of
// any value of the type, valid or not) gives what encoding/json reads, for
// the zero value, hand-picked edge values and random values.
func TestWireMatchesEncodingJSON(t *testing.T) {
	if n := len(allTypes); n != 13 {
		t.Fatalf("%d message types listed; add the new one to allTypes", n)
	}
	edge := []Message{
		Join{Stream: "a<b>&c\u2028\u2029\x00\x1f\x7f\"\\/\b\f\n\r\t", Client: "bad \xff\xfe utf-8 \xe2\x80", Kind: "ä"},
		Signal{Candidate: RawJSON(" { \"candidate\" : \"<x>&\u2028\" , \"n\": [1, 2.5e3, null, true] } ")},
		Signal{Candidate: RawJSON(`{"unterminated"`)},
		Signal{Candidate: RawJSON(`null`), SDP: &SDP{}},
		Report{Kind: ReportBadChunk, Chunk: []byte{}, Proof: bytes.Repeat([]byte{0xff}, 64)},
		Welcome{ICEServers: []ICEServer{{}, {URLs: []string{}}}, Keys: []ContentKey{}},
		Stats{Parents: []ParentHealth{}, BytesP2P: 1<<64 - 1, UploadKbps: -1 << 63},
		SeederHello{Time: -1, Epoch: 1<<32 - 1},
	}
	check := func(m Message) {
		t.Helper()
		got, gotErr := Encode(m)
		want, wantErr := refEncode(m)
		if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%s: Encode %#v\n got %s (%v)\nwant %s (%v)", m.Type(), m, got, gotErr, want, wantErr)
		}
		if wantErr != nil {
			return
		}
		// Both readers on the bytes, ignoring validation (random values
		// are rarely valid): decode into fresh values.
		p1, p2 := newMessage(m.Type()), newMessage(m.Type())
		err1 := readWire(want, p1)
		err2 := json.Unmarshal(want, p2)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(p1, p2) {
			t.Fatalf("%s: read %s\n got %#v (%v)\nwant %#v (%v)", m.Type(), want, p1, err1, p2, err2)
		}
		compareDecode(t, want)
	}
	rng := rand.New(rand.NewSource(1))
	for _, m := range allTypes {
		check(m)
		for range 300 {
			v, ok := quick.Value(reflect.TypeOf(m), rng)
			if !ok {
				t.Fatalf("%s: no random value", m.Type())
			}
			check(v.Interface().(Message))
		}
	}
	for _, m := range edge {
		check(m)
	}
}

// compareDecode fails unless Decode and refDecode agree on data: both
// fail, or both give the same message.
func compareDecode(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := Decode(data)
	want, wantErr := refDecode(data)
	if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q)\n got %#v (%v)\nwant %#v (%v)", data, got, gotErr, want, wantErr)
	}
}

// TestDecodeLikeEncodingJSON: inputs where encoding/json's rules are
// easy to miss read the same.
func TestDecodeLikeEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"V":1,"TYPE":"ended","Stream":"x"}`,
		`{"v":1,"type":"join","ſtream":"a","\u006bind":"native","KIND":"browser"}`, // long s, Kelvin, escapes, last key wins
		`{"v":1,"type":"ended","stream":"a","stream":null}`,
		`{"v":1.0,"type":"leave"}`,
		`{"v":1e0,"type":"leave"}`,
		`{"v":-0,"type":"leave"}`,
		`{"v":1,"type":"leave"} x`,
		` {"v":1,"type":"leave"}` + "\n\t",
		`{"v":1,"type":"leave","x":[[[{"y":null}]]],"z":-1.5e-7}`,
		`{"v":1,"type":"leave","x":01}`,
		`{"v":1,"type":"leave","x":"\'"}`,
		`{"v":1,"type":"leave","x":"\x01"}`,
		`{"v":1,"type":"ended","stream":"\ud800\udc00 \ud800 \udc00x \ud800\u0041 \xff"}`,
		`{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":[1,2,255]}`,
		`{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":[256]}`,
		`{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":"AA\r\nEC"}`,
		`{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":"AAE="}`,
		`{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":"AAE"}`,
		`{"v":1,"type":"signal","to":1,"candidate":null}`,
		`{"v":1,"type":"signal","to":1,"candidate":{ "a" : 1 }}`,
		`{"v":1,"type":"signal","to":1,"sdp":{"type":"offer"},"sdp":{"sdp":"x"}}`,
		`{"v":1,"type":"signal","to":1,"sdp":{"type":"offer","sdp":"x"},"sdp":null,"candidate":"c"}`,
		`{"v":1,"type":"welcome","peer":1,"stripes":1,"keys":[{"id":1,"key":"a"},{"id":2,"key":"b"}],"keys":[{"id":3}],"keys":[{},{}]}`,
		`{"v":1,"type":"welcome","peer":1,"stripes":1,"ice_servers":[{"urls":["a",null]}],"keys":[]}`,
		`{"v":1,"type":"welcome","peer":18446744073709551616,"stripes":1}`,
		`{"v":1,"type":"welcome","peer":-1,"stripes":1}`,
		`{"v":1,"type":"keys","epoch":4294967296}`,
		`{"v":1,"type":"keys","live":1}`,
		`{"v":1,"type":"keys","keys":{}}`,
		`{"v":1,"type":"stats","parents":null}`,
		`null`, `[]`, `""`, ``, `{`, `{"v":1,"type":"leave"`, `{"v":1,"type":"leave",}`,
		`{"v":1,"type":"leave","x":` + string(bytes.Repeat([]byte("["), 10001)) + `}`,
	} {
		compareDecode(t, []byte(in))
	}
}
