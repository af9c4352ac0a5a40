package whip

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestBadRequests runs every refusal against a server that has a live,
// connected publish, and checks that the publish is not disturbed and no
// refused request started one.
func TestBadRequests(t *testing.T) {
	var mu sync.Mutex
	reasons := map[string]int{}
	env := newTestEnv(t, func(c *Config) {
		c.NoMediaTimeout = time.Minute
		c.OnRefused = func(r string) { mu.Lock(); reasons[r]++; mu.Unlock() }
	})
	good := newClient(t, clientOpts{})
	r := good.publish(t, env.web.URL, "live", "key-live", true)
	etag := r.header.Get("ETag")
	good.waitConnected(t)
	live := good.location

	vp8 := newClient(t, clientOpts{videoMime: webrtc.MimeTypeVP8}).offer(t, false)
	h264 := newClient(t, clientOpts{}).offer(t, false)
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	unknown := "/whip/live/0123456789abcdef0123456789abcdef"
	frag := func(ufrag string) string {
		return "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:0123456789abcdefghijklmnop\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
			"a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n"
	}
	liveUfrag := env.srv.lookup(live[len("/whip/live/"):]).ufrag

	cases := []struct {
		name     string
		method   string
		path     string
		key      string
		ctype    string
		body     string
		hdr      []string
		status   int
		contains string
		check    func(t *testing.T, r whipReply)
	}{
		{name: "malformed SDP", method: "POST", path: "/whip/live", key: "key-live", ctype: typeSDP, body: "hello, not SDP", status: 400, contains: "malformed SDP"},
		{name: "no media sections", method: "POST", path: "/whip/live", key: "key-live", ctype: typeSDP, body: head, status: 422, contains: "no media"},
		{name: "VP8 only", method: "POST", path: "/whip/live", key: "key-live", ctype: typeSDP, body: vp8, status: 422, contains: "the offer's video codecs are VP8; accepted are H.264"},
		{name: "no ICE credentials", method: "POST", path: "/whip/live", key: "key-live", ctype: typeSDP,
			body: head + "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=sendonly\r\n", status: 400, contains: "cannot use the offer"},
		{name: "huge body", method: "POST", path: "/whip/live", key: "key-live", ctype: typeSDP, body: h264 + strings.Repeat("a=x-pad:0\r\n", 7000), status: 413},
		{name: "wrong key", method: "POST", path: "/whip/live", key: "nope", ctype: typeSDP, body: h264, status: 401,
			check: func(t *testing.T, r whipReply) {
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			}},
		{name: "missing key", method: "POST", path: "/whip/live", ctype: typeSDP, body: h264, status: 401, contains: "Bearer"},
		{name: "basic auth", method: "POST", path: "/whip/live", ctype: typeSDP, body: h264, hdr: []string{"Authorization", "Basic dXNlcjpwYXNz"}, status: 401},
		{name: "key of another stream", method: "POST", path: "/whip/other", key: "key-live", ctype: typeSDP, body: h264, status: 403},
		{name: "key store down", method: "POST", path: "/whip/live", key: "down", ctype: typeSDP, body: h264, status: 503},
		{name: "wrong content type", method: "POST", path: "/whip/live", key: "key-live", ctype: "text/plain", body: h264, status: 415},
		{name: "GET", method: "GET", path: "/whip/live", key: "key-live", status: 405,
			check: func(t *testing.T, r whipReply) {
				if r.header.Get("Allow") != "POST, OPTIONS" {
					t.Errorf("Allow %q", r.header.Get("Allow"))
				}
			}},
		{name: "bad stream name", method: "POST", path: "/whip/a%3Cb", key: "key-live", ctype: typeSDP, body: h264, status: 404},
		{name: "bad session id", method: "DELETE", path: "/whip/live/xyz", key: "key-live", status: 404},
		{name: "PATCH unknown session", method: "PATCH", path: unknown, key: "key-live", ctype: typeSDPFrag, body: frag(liveUfrag), status: 404},
		{name: "DELETE unknown session", method: "DELETE", path: unknown, key: "key-live", status: 404},
		{name: "PATCH without key", method: "PATCH", path: live, ctype: typeSDPFrag, body: frag(liveUfrag), status: 401},
		{name: "PATCH with another stream's key", method: "PATCH", path: live, key: "key-other", ctype: typeSDPFrag, body: frag(liveUfrag), status: 403},
		{name: "PATCH wrong content type", method: "PATCH", path: live, key: "key-live", ctype: typeSDP, body: frag(liveUfrag), status: 415},
		{name: "PATCH malformed fragment", method: "PATCH", path: live, key: "key-live", ctype: typeSDPFrag, body: "v=0\r\nnonsense\r\n", status: 400},
		{name: "PATCH ICE restart", method: "PATCH", path: live, key: "key-live", ctype: typeSDPFrag, body: frag("ZZZZnewufrag"), status: 422, contains: "ICE restarts"},
		{name: "PATCH If-Match *", method: "PATCH", path: live, key: "key-live", ctype: typeSDPFrag, body: frag(liveUfrag), hdr: []string{"If-Match", "*"}, status: 422},
		{name: "PATCH stale ETag", method: "PATCH", path: live, key: "key-live", ctype: typeSDPFrag, body: frag(liveUfrag), hdr: []string{"If-Match", `"stale"`}, status: 412},
		{name: "PATCH huge", method: "PATCH", path: live, key: "key-live", ctype: typeSDPFrag, body: strings.Repeat("a=x\r\n", 20000), status: 413},
		{name: "PATCH good candidate", method: "PATCH", path: live, key: "key-live", ctype: typeSDPFrag, body: frag(liveUfrag), hdr: []string{"If-Match", etag}, status: 204},
		{name: "DELETE without key", method: "DELETE", path: live, status: 401},
		{name: "CORS preflight", method: "OPTIONS", path: "/whip/live", hdr: []string{"Origin", "https://example.org", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type"}, status: 204,
			check: func(t *testing.T, r whipReply) {
				h := r.header
				if h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
					!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Location") ||
					h.Get("Accept-Post") != typeSDP {
					t.Errorf("preflight headers %v", h)
				}
				if len(h.Values("Link")) != 0 {
					t.Error("ICE servers (TURN credentials) given to an unauthenticated preflight")
				}
			}},
		{name: "OPTIONS with key gets ICE servers", method: "OPTIONS", path: "/whip/live", key: "key-live", status: 204,
			check: func(t *testing.T, r whipReply) {
				links := r.header.Values("Link")
				if len(links) != 2 || links[0] != `<stun:127.0.0.1:3478>; rel="ice-server"` ||
					links[1] != `<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="1700000000:live"; credential="secret"; credential-type="password"` {
					t.Errorf("Link %q", links)
				}
			}},
		{name: "OPTIONS with wrong key", method: "OPTIONS", path: "/whip/live", key: "nope", status: 401},
		{name: "OPTIONS on a session", method: "OPTIONS", path: live, hdr: []string{"Access-Control-Request-Method", "PATCH"}, status: 204,
			check: func(t *testing.T, r whipReply) {
				if r.header.Get("Accept-Patch") != typeSDPFrag {
					t.Errorf("Accept-Patch %q", r.header.Get("Accept-Patch"))
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, env.web.URL+tc.path, tc.key, tc.ctype, []byte(tc.body), tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.status, strings.TrimSpace(r.body), tc.status)
			}
			if !strings.Contains(r.body, tc.contains) {
				t.Errorf("body %q lacks %q", r.body, tc.contains)
			}
			if r.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header")
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}

	// Nothing disturbed the live publish, and nothing else started.
	if n := len(env.pub.sessions()); n != 1 {
		t.Fatalf("%d publishes started", n)
	}
	select {
	case <-env.pub.last(t).ended:
		t.Fatalf("the live publish ended: %v", env.pub.last(t).endErr)
	default:
	}
	if good.pc.ConnectionState() != webrtc.PeerConnectionStateConnected || env.srv.Sessions() != 1 {
		t.Fatalf("live publish disturbed: %s, %d sessions", good.pc.ConnectionState(), env.srv.Sessions())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"bad_sdp", "no_media", "no_video_codec", "too_large", "bad_key", "no_key", "wrong_stream", "content_type", "ice_restart", "etag", "no_session"} {
		if reasons[want] == 0 {
			t.Errorf("refusal reason %q not reported (got %v)", want, reasons)
		}
	}
}

// TestCapacityAndClose: MaxSessions bounds sessions (503), a refused
// publish leaves nothing behind, Close ends every session with
// ErrServerClosed and later POSTs get 503.
func TestCapacityAndClose(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxSessions = 1; c.NoMediaTimeout = time.Minute })
	a := newClient(t, clientOpts{})
	a.publish(t, env.web.URL, "one", "key-one", true)
	b := newClient(t, clientOpts{})
	if r := do(t, "POST", env.web.URL+"/whip/two", "key-two", typeSDP, []byte(b.offer(t, true))); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("over capacity: %d %s", r.status, r.body)
	}

	// The publisher refuses: 503, and the slot is given back.
	env.pub.mu.Lock()
	env.pub.fail = errors.New("stream is revoked")
	env.pub.mu.Unlock()
	if d := do(t, "DELETE", env.web.URL+a.location, "key-one", "", nil); d.status != http.StatusOK {
		t.Fatalf("DELETE: %d", d.status)
	}
	c := newClient(t, clientOpts{})
	if r := do(t, "POST", env.web.URL+"/whip/three", "key-three", typeSDP, []byte(c.offer(t, true))); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "revoked") {
		t.Fatalf("refused publish: %d %s", r.status, r.body)
	}
	env.pub.mu.Lock()
	env.pub.fail = nil
	env.pub.mu.Unlock()

	d := newClient(t, clientOpts{})
	d.publish(t, env.web.URL, "four", "key-four", true)
	d.waitConnected(t)
	if err := env.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := env.pub.last(t).waitEnd(t, time.Second); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("End(%v) on Close, want ErrServerClosed", err)
	}
	if env.srv.Sessions() != 0 {
		t.Fatalf("%d sessions after Close", env.srv.Sessions())
	}
	e := newClient(t, clientOpts{})
	if r := do(t, "POST", env.web.URL+"/whip/five", "key-five", typeSDP, []byte(e.offer(t, true))); r.status != http.StatusServiceUnavailable {
		t.Fatalf("POST after Close: %d", r.status)
	}
}
