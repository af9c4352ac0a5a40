package whip

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCheckOpus(t *testing.T) {
	cases := []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"TOC-only silence", []byte{0xf8}, true},
		{"20 ms CELT frame", []byte{0xf8, 0xff, 0xfe}, true},
		{"empty", nil, false},
		{"code 1 even", []byte{0xf9, 1, 2}, true},
		{"code 1 odd", []byte{0xf9, 1, 2, 3}, false},
		{"code 2 fits", []byte{0xfa, 2, 1, 2, 3}, true},
		{"code 2 overruns", []byte{0xfa, 9, 1}, false},
		{"code 3 CBR", []byte{0xfb, 0x02, 1, 2}, true},
		{"code 3 zero frames", []byte{0xfb, 0x00}, false},
		{"code 3 over 120 ms", []byte{0xfb, 0x07}, false}, // 7 x 20 ms
		{"code 3 CBR uneven", []byte{0xfb, 0x02, 1, 2, 3}, false},
		{"code 3 VBR", []byte{0xfb, 0x82, 1, 9, 8, 7}, true},
		{"code 3 VBR overrun", []byte{0xfb, 0x82, 9, 1}, false},
		{"code 3 padding", []byte{0xfb, 0x41, 2, 5, 0, 0}, true},
		{"code 3 padding overrun", []byte{0xfb, 0x41, 9, 5}, false},
		{"code 3 missing count", []byte{0xfb}, false},
		{"too long", make([]byte, maxOpusPacket+1), false},
	}
	for _, tc := range cases {
		if err := checkOpus(tc.pkt); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func FuzzCheckOpus(f *testing.F) {
	f.Add([]byte{0xf8, 0xff, 0xfe})
	f.Add([]byte{0xfb, 0xc3, 0xff, 0x01, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) { _ = checkOpus(b) })
}

const goodFrag = "a=ice-options:trickle ice2\r\n" +
	"a=group:BUNDLE 0 1\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
	"a=mid:0\r\n" +
	"a=ice-ufrag:EsAw\r\n" +
	"a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n" +
	"a=candidate:1387637174 1 udp 2122260223 127.0.0.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
	"a=candidate:3471623853 1 udp 2122194687 127.0.0.1 61765 typ host generation 0 ufrag EsAw network-id 2\r\n" +
	"a=end-of-candidates\r\n"

func TestParseSDPFrag(t *testing.T) {
	f, err := parseSDPFrag([]byte(goodFrag))
	if err != nil {
		t.Fatal(err)
	}
	if f.ufrag != "EsAw" || f.pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || !f.endOfCandidates || len(f.candidates) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	if c := f.candidates[0]; !c.hasMid || c.mid != "0" || !strings.HasPrefix(c.value, "1387637174 1 udp") {
		t.Fatalf("candidate %+v", c)
	}
	// LF line ends and a candidate before any m= line work too.
	f, err = parseSDPFrag([]byte("a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\n"))
	if err != nil || len(f.candidates) != 1 || f.candidates[0].hasMid {
		t.Fatalf("bare candidate: %+v, %v", f, err)
	}

	bad := []struct{ name, body string }{
		{"not SDP", "hello world"},
		{"session line", "v=0\r\n"},
		{"bad candidate", "a=candidate:garbage\r\n"},
		{"bad ufrag chars", "a=ice-ufrag:ab<>cd\r\n"},
		{"short pwd", "a=ice-pwd:short\r\n"},
		{"two ufrags", "a=ice-ufrag:abcd\r\na=ice-ufrag:efgh\r\n"},
		{"empty mid", "m=audio 9 UDP 0\r\na=mid:\r\n"},
		{"long line", "a=x:" + strings.Repeat("y", maxFragLine) + "\r\n"},
		{"too many lines", strings.Repeat("a=x\n", maxFragLines+1)},
		{"too many candidates", strings.Repeat("a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\n", maxFragCandidates+1)},
	}
	for _, tc := range bad {
		if _, err := parseSDPFrag([]byte(tc.body)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// FuzzParseSDPFrag: the PATCH body parser never panics, and what it
// returns respects its bounds.
func FuzzParseSDPFrag(f *testing.F) {
	f.Add([]byte(goodFrag))
	f.Add([]byte("a=candidate:1 1 udp 1 ::1 5000 typ host\na=end-of-candidates\n"))
	f.Add([]byte("m=video 9\r\na=mid:1\r\na=candidate:2 1 tcp 1 127.0.0.1 9 typ host tcptype active\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseSDPFrag(b)
		if err != nil {
			return
		}
		if len(fr.candidates) > maxFragCandidates {
			t.Fatalf("%d candidates", len(fr.candidates))
		}
		for _, c := range fr.candidates {
			if strings.ContainsAny(c.value, "\r\n") {
				t.Fatalf("candidate with a line break: %q", c.value)
			}
		}
	})
}

func TestCheckOffer(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	cases := []struct {
		name   string
		sdp    string
		status int
		msg    string
	}{
		{"garbage", "this is not SDP", http.StatusBadRequest, "malformed"},
		{"no media", head, http.StatusUnprocessableEntity, "no media"},
		{"VP8 only", head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", http.StatusUnprocessableEntity,
			"the offer's video codecs are VP8; accepted are H.264 (packetization-mode 0 or 1; baseline, main or high profile) or AV1 (main profile)"},
		{"audio only", head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", http.StatusUnprocessableEntity, "no video section"},
		{"data channel", head + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", http.StatusUnprocessableEntity, "data channels"},
		{"H.264", head + "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n", 0, ""},
		// OBS 30+ and browsers offer AV1 and VP9, here ahead of H.264.
		{"AV1 and VP9 before H.264, Opus", head + "m=video 9 UDP/TLS/RTP/SAVPF 45 98 102\r\na=rtpmap:45 AV1/90000\r\n" +
			"a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:102 H264/90000\r\n" +
			"a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
			"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", 0, ""},
		{"AV1 and VP9 only", head + "m=video 9 UDP/TLS/RTP/SAVPF 45 98\r\na=rtpmap:45 AV1/90000\r\na=rtpmap:98 VP9/90000\r\n", 0, ""},
		{"VP8 and VP9 only", head + "m=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:98 VP9/90000\r\n",
			http.StatusUnprocessableEntity, "the offer's video codecs are VP8, VP9; accepted are H.264"},
	}
	for _, tc := range cases {
		_, e := checkOffer([]byte(tc.sdp))
		switch {
		case tc.status == 0 && e != nil:
			t.Errorf("%s: refused: %v", tc.name, e)
		case tc.status != 0 && (e == nil || e.status != tc.status || !strings.Contains(e.msg, tc.msg)):
			t.Errorf("%s: got %v, want %d %q", tc.name, e, tc.status, tc.msg)
		}
	}
}

func FuzzCheckOffer(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, e := checkOffer(b)
		if e != nil && e.status != http.StatusBadRequest && e.status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d", e.status)
		}
	})
}

func TestLinkHeader(t *testing.T) {
	cases := []struct {
		url, user, cred string
		want            string
	}{
		{"stun:stun.example.net", "", "", `<stun:stun.example.net>; rel="ice-server"`},
		{"turn:t.example.net?transport=udp", "1700000000:p1", `pa"ss`, `<turn:t.example.net?transport=udp>; rel="ice-server"; username="1700000000:p1"; credential="pa\"ss"; credential-type="password"`},
		{"turn:evil>; rel=x", "", "", ""},
		{"turn:t", "u\r\nX-Injected: 1", "c", ""},
	}
	for _, tc := range cases {
		got, ok := linkHeader(tc.url, iceServer(tc.url, tc.user, tc.cred))
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("linkHeader(%q) = %q, %v; want %q", tc.url, got, ok, tc.want)
		}
	}
}

func TestClockAndSync(t *testing.T) {
	v, a := newClock(90000), newClock(48000)
	// Video starts at RTP 4294960000 (wraps soon), audio at 1000, audio
	// arrived 30 ms after video.
	vbase := uint32(4294960000)
	v.start(vbase, 0)
	a.start(1000, 30*time.Millisecond)
	if got := v.media(v.ticks(vbase + 90000)); got != time.Second {
		t.Fatalf("video 1 s across the wrap = %v", got)
	}
	if got := a.media(a.ticks(1000 + 4800)); got != 130*time.Millisecond {
		t.Fatalf("audio +100 ms = %v", got)
	}
	// Sender reports: both captured at NTP second 100 exactly: video RTP
	// 4294960000+9000 (0.1 s in), audio 1000+960 (0.02 s in). So the
	// audio base was captured 80 ms after the video base: its offset
	// must become 80 ms, not the 30 ms that arrival said.
	v.senderReport(100<<32, vbase+9000)
	a.senderReport(100<<32, 1000+960)
	if d := syncAudio(v, a); d != 50*time.Millisecond || a.offset != 80*time.Millisecond {
		t.Fatalf("sync moved audio by %v to %v", d, a.offset)
	}
	// A second agreeing SR changes nothing; an absurd one is ignored.
	if d := syncAudio(v, a); d != 0 {
		t.Fatalf("second sync moved %v", d)
	}
	a.senderReport(200<<32, 1000+960)
	if d := syncAudio(v, a); d != 0 {
		t.Fatalf("absurd SR moved audio by %v", d)
	}
	if got := ntpDuration(1<<32 | 1<<31); got != 1500*time.Millisecond {
		t.Fatalf("ntpDuration = %v", got)
	}
	// Timestamps a day away are flagged out of range, not overflowed.
	if d := v.toDuration(1 << 62); !outOfRange(d) {
		t.Fatalf("huge tick count gave %v", d)
	}
}
