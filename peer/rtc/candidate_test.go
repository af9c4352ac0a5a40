package rtc

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// TestCandidateJSON: a candidate is written and read (internal/jsonwire)
// exactly as encoding/json wrote and read candidateInit before, and as
// pion's ICECandidateInit and the browser's JSON.stringify name the
// fields.
func TestCandidateJSON(t *testing.T) {
	mid, idx, ufrag := "0", uint16(3), "<u&f>"
	vals := []candidateInit{
		{},
		{Candidate: "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host", SDPMid: &mid, SDPMLineIndex: &idx, UsernameFragment: &ufrag},
	}
	rng := rand.New(rand.NewSource(1))
	for range 300 {
		v, _ := quick.Value(reflect.TypeOf(candidateInit{}), rng)
		vals = append(vals, v.Interface().(candidateInit))
	}
	for _, c := range vals {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.marshal(); string(got) != string(want) {
			t.Fatalf("marshal %#v\n got %s\nwant %s", c, got, want)
		}
		compareCandidate(t, want)
	}
	for _, in := range []string{
		`{"candidate":"c","sdpMid":null,"sdpMLineIndex":null}`,
		`{"CANDIDATE":"c","sdpmid":"1","SdpMLineIndex":65535,"usernameFragment":"u","extra":[1]}`,
		`{"sdpMLineIndex":65536}`, `{"sdpMLineIndex":-1}`, `{"sdpMLineIndex":"1"}`, `{"candidate":1}`,
		`null`, `[]`, `{"candidate":"a"} x`, `{`,
	} {
		compareCandidate(t, []byte(in))
	}
}

func compareCandidate(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := parseCandidate(data)
	var want candidateInit
	wantErr := json.Unmarshal(data, &want)
	if (gotErr != nil) != (wantErr != nil) || (wantErr == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("parse %s\n got %#v (%v)\nwant %#v (%v)", data, got, gotErr, want, wantErr)
	}
}

func FuzzParseCandidate(f *testing.F) {
	f.Add([]byte(`{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}`))
	f.Fuzz(func(t *testing.T, data []byte) { compareCandidate(t, data) })
}
