package protocol

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		Join{Stream: "demo", UploadKbps: 5000, Kind: KindBrowser, NAT: "cone", Region: "eu", Client: "chromium"},
		SeederHello{Stream: "demo", SeederID: "eu1", Time: 1_800_000_000_000, Nonce: "n0", Auth: "x", UploadKbps: 100000, OriginURL: "http://127.0.0.1:8080", PublicKey: "pk", Keys: []ContentKey{{ID: 1, Key: "k", Salt: "s"}}, Epoch: 7},
		Welcome{Peer: 42, Stripes: 2, ICEServers: []ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "1:42", Credential: "c"}}, PublicKey: "pk", OriginURL: "http://o", StatsMillis: 2000},
		ICE{ICEServers: []ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "2:42", Credential: "c"}}},
		Moved{URL: "ws://10.0.0.2:8080/ws"},
		Assign{Stripe: 1, Parent: 7, Depth: 3},
		Assign{Stripe: 0, Child: 9, Remove: true},
		Signal{To: 7, SDP: &SDP{Type: "offer", SDP: "v=0\r\n"}},
		Signal{From: 7, Candidate: RawJSON(`{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`)},
		Stats{BytesP2P: 1 << 40, BufferMS: 900, Parents: []ParentHealth{{Stripe: 0, Parent: 3, Kbps: 1200, Path: "direct"}}},
		Report{Kind: ReportBadChunk, Peer: 3, Stripe: 1, Chunk: []byte{1, 2, 3}},
		Report{Kind: ReportSilent, Peer: 3},
		Keys{Keys: []ContentKey{{ID: 2, Key: "a", Salt: "b"}}},
		Leave{},
		Ended{Stream: "demo"},
		Error{Code: CodeUnauthorized, Message: "viewer token required"},
	}
	for _, m := range msgs {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), `{"v":1,"type":"`+m.Type()+`"`) {
			t.Fatalf("envelope: %s", b)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v (%s)", m.Type(), err, b)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip\n got %#v\nwant %#v", m.Type(), got, m)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	big := `{"v":1,"type":"stats","x":"` + strings.Repeat("a", 70<<10) + `"}`
	cases := map[string]string{
		"not json":          `{"v":1,`,
		"no version":        `{"type":"leave"}`,
		"future version":    `{"v":2,"type":"leave"}`,
		"unknown type":      `{"v":1,"type":"reboot"}`,
		"bad stream":        `{"v":1,"type":"join","stream":"../x","kind":"browser"}`,
		"bad kind":          `{"v":1,"type":"join","stream":"a","kind":"toaster"}`,
		"lying capacity":    `{"v":1,"type":"join","stream":"a","kind":"native","upload_kbps":99999999999}`,
		"negative capacity": `{"v":1,"type":"join","stream":"a","kind":"native","upload_kbps":-1}`,
		"wrong field type":  `{"v":1,"type":"join","stream":5,"kind":"native"}`,
		"signal both":       `{"v":1,"type":"signal","to":1,"sdp":{"type":"offer","sdp":"x"},"candidate":{}}`,
		"signal none":       `{"v":1,"type":"signal","to":1}`,
		"sdp type":          `{"v":1,"type":"signal","to":1,"sdp":{"type":"pranswer","sdp":"x"}}`,
		"report no chunk":   `{"v":1,"type":"report","kind":"bad_chunk","peer":1}`,
		"report peer 0":     `{"v":1,"type":"report","kind":"silent","peer":0}`,
		"report kind":       `{"v":1,"type":"report","kind":"vibes","peer":1}`,
		"report proof size": `{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":"AAEC","proof":"AAEC"}`,
		"silent with proof": `{"v":1,"type":"report","kind":"silent","peer":1,"proof":"AAEC"}`,
		"join proof key":    `{"v":1,"type":"join","stream":"a","kind":"native","proof_key":"AAEC"}`,
		"small too big":     big,
		"stats negative":    `{"v":1,"type":"stats","buffer_ms":-5}`,
		"assign both":       `{"v":1,"type":"assign","stripe":0,"parent":1,"child":2}`,
		"assign stripe":     `{"v":1,"type":"assign","stripe":99,"parent":1}`,
		"seeder no auth":    `{"v":1,"type":"seeder_hello","stream":"a","upload_kbps":1,"public_key":"p","origin_url":"o"}`,
		"seeder no id":      `{"v":1,"type":"seeder_hello","stream":"a","time":1,"nonce":"n","auth":"x","upload_kbps":1,"public_key":"p"}`,
		"seeder bad id":     `{"v":1,"type":"seeder_hello","stream":"a","seeder_id":"../x","time":1,"nonce":"n","auth":"x","upload_kbps":1,"public_key":"p"}`,
		"seeder no time":    `{"v":1,"type":"seeder_hello","stream":"a","seeder_id":"s","nonce":"n","auth":"x","upload_kbps":1,"public_key":"p"}`,
		"seeder no nonce":   `{"v":1,"type":"seeder_hello","stream":"a","seeder_id":"s","time":1,"auth":"x","upload_kbps":1,"public_key":"p"}`,
		"moved http":        `{"v":1,"type":"moved","url":"http://x/ws"}`,
		"moved empty":       `{"v":1,"type":"moved"}`,
		"array":             `[1,2,3]`,
		"null":              `null`,
	}
	for name, in := range cases {
		if m, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: accepted as %#v", name, m)
		}
	}
	if _, err := Decode(make([]byte, MaxMessage+1)); err != ErrTooLarge {
		t.Errorf("oversized: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"join","stream":"demo","kind":"browser"}`,
		`{"v":1,"type":"signal","to":3,"sdp":{"type":"offer","sdp":"v=0"}}`,
		`{"v":1,"type":"report","kind":"bad_chunk","peer":2,"stripe":1,"chunk":"AAEC"}`,
		`{"v":1,"type":"join","stream":"demo","kind":"native","proof_key":"` + strings.Repeat("A", 43) + `="}`,
		`{"v":1,"type":"stats","parents":[{"stripe":0,"parent":1,"kbps":5,"path":"turn"}]}`,
		`{"v":1,"type":"welcome","peer":1,"stripes":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The hand-written reader (wire.go) reads as encoding/json does.
		compareDecode(t, data)
		m, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode (as encoding/json writes it) and
		// decode to the same message.
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if ref, _ := refEncode(m); !bytes.Equal(b, ref) {
			t.Fatalf("Encode %s, encoding/json %s", b, ref)
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b, err)
		}
		// Compare encodings: an empty and a nil slice are the same message.
		if b2, _ := Encode(m2); string(b) != string(b2) {
			t.Fatalf("unstable: %s vs %s", b, b2)
		}
	})
}

func BenchmarkDecodeJoin(b *testing.B) {
	msg := []byte(`{"v":1,"type":"join","stream":"demo","upload_kbps":5000,"kind":"browser","nat":"cone","client":"chromium 156"}`)
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidStream(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"demo", true}, {"a", true}, {"0", true}, {"my_stream-2", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"Demo", false}, {"-x", false}, {"_x", false},
		{"a/b", false}, {"a b", false}, {"ä", false}, {"../etc", false}, {"a.b", false},
	} {
		if got := ValidStream(tc.s); got != tc.ok {
			t.Errorf("ValidStream(%q) = %v", tc.s, got)
		}
	}
}
