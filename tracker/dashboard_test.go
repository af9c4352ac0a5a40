package tracker

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/store"
)

func TestEventRing(t *testing.T) {
	var r eventRing
	if got := r.since(0, 10); got != nil {
		t.Fatalf("empty ring: %v", got)
	}
	for i := range eventRingSize + 10 {
		r.add(Event{Kind: EventJoin, Peer: protocol.PeerID(i + 1)})
	}
	for _, tc := range []struct {
		after     uint64
		limit     int
		first     uint64
		wantCount int
	}{
		{0, 5000, 11, eventRingSize}, // the oldest ten were dropped
		{0, 3, eventRingSize + 8, 3}, // the newest three
		{eventRingSize + 5, 100, eventRingSize + 6, 5},
		{eventRingSize + 10, 100, 0, 0}, // nothing new
		{eventRingSize + 99, 100, 0, 0}, // a cursor from the future
		{20, 0, 0, 0},
	} {
		got := r.since(tc.after, tc.limit)
		if len(got) != tc.wantCount {
			t.Fatalf("since(%d, %d): %d events, want %d", tc.after, tc.limit, len(got), tc.wantCount)
		}
		for i, e := range got {
			if e.Seq != tc.first+uint64(i) || uint64(e.Peer) != e.Seq {
				t.Fatalf("since(%d, %d)[%d] = seq %d peer %d, want seq %d", tc.after, tc.limit, i, e.Seq, e.Peer, tc.first+uint64(i))
			}
		}
	}
}

func eventsOf(tr *Tracker, stream string) []Event {
	st := tr.streamState(stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.dash.events.since(0, eventRingSize)
}

func countKind(evs []Event, k EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func TestSwarmEvents(t *testing.T) {
	tr := newSimTracker(t, 2)
	seeder := simSeeder(t, tr, "ev", 0)
	peers := simJoin(t, tr, "ev", 40, protocol.KindNative)
	st := tr.streamState("ev")
	evs := eventsOf(tr, "ev")
	if countKind(evs, EventSeeder) != 1 || countKind(evs, EventJoin) != 40 {
		t.Fatalf("after 40 joins: %d seeder, %d join events", countKind(evs, EventSeeder), countKind(evs, EventJoin))
	}
	for _, e := range evs {
		if e.Kind == EventJoin && e.Detail != "native" {
			t.Fatalf("join detail %q", e.Detail)
		}
	}
	// Find an interior peer: its departure re-parents its children.
	var leaver *session
	var orphans int
	st.mu.Lock()
	for _, p := range peers {
		n := 0
		for s := range 2 {
			kids, _ := st.forest.Children(nil, overlay.PeerID(p.id), s)
			n += len(kids)
		}
		if n > 0 {
			leaver, orphans = p, n
			break
		}
	}
	st.mu.Unlock()
	if leaver == nil {
		t.Fatal("no interior peer among 40")
	}
	before := len(eventsOf(tr, "ev"))
	leaver.close("left")
	st.leave(leaver)
	evs = eventsOf(tr, "ev")[before:]
	if countKind(evs, EventLeave) != 1 || evs[0].Peer != leaver.id || evs[0].Detail != "left" {
		t.Fatalf("leave events: %+v", evs)
	}
	if got := countKind(evs, EventReparent); got < orphans {
		t.Errorf("%d orphans, %d reparent events", orphans, got)
	}
	for _, e := range evs {
		if e.Kind == EventReparent && (e.From != int64(leaver.id) || e.To == int64(leaver.id)) {
			t.Errorf("reparent %+v: should move away from %d", e, leaver.id)
		}
	}

	// Publish start, key rotation, stop.
	before = len(eventsOf(tr, "ev"))
	keys := []protocol.ContentKey{{ID: 1, Key: "k", Salt: "s"}}
	st.updateFromSeeder(protocol.Keys{Keys: keys, Epoch: 5, Live: true})
	st.updateFromSeeder(protocol.Keys{Keys: append(keys, protocol.ContentKey{ID: 2, Key: "k2", Salt: "s2"}), Epoch: 5, Live: true})
	st.updateFromSeeder(protocol.Keys{Keys: keys[:1], Epoch: 5, Live: false})
	evs = eventsOf(tr, "ev")[before:]
	kinds := []EventKind{}
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	want := []EventKind{EventPublishStart, EventKeys, EventPublishStop, EventKeys}
	if len(kinds) != len(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("events %v, want %v", kinds, want)
		}
	}
	if evs[0].Epoch != 5 || evs[1].Detail != "key ids 1 2" {
		t.Errorf("publish/keys detail: %+v %+v", evs[0], evs[1])
	}

	// An eviction: a parent that reports its own child for bad chunks three
	// times (it cannot have received chunks from it) strikes out.
	st.mu.Lock()
	var bad *session
	var kids []overlay.PeerID
	stripe := 0 // where bad is the kids' parent: reports name it
	for _, p := range peers[:len(peers)-1] {
		if p == leaver {
			continue
		}
		for s := range 2 {
			kids, _ = st.forest.Children(kids[:0], overlay.PeerID(p.id), s)
			if len(kids) >= 2 {
				bad, stripe = p, s
				break
			}
		}
		if bad != nil {
			break
		}
	}
	st.mu.Unlock()
	if bad != nil {
		for range 3 {
			st.report(bad, protocol.Report{Kind: protocol.ReportBadChunk, Peer: protocol.PeerID(kids[0]), Stripe: stripe, Chunk: []byte("junk")})
		}
		evs = eventsOf(tr, "ev")
		found := false
		for _, e := range evs {
			found = found || (e.Kind == EventEvict && e.Peer == bad.id)
		}
		if !found {
			t.Errorf("no evict event for %d", bad.id)
		}
	}
	seeder.close("gone")
	st.leave(seeder)
	if evs := eventsOf(tr, "ev"); evs[len(evs)-1].Kind != EventSeederGone {
		t.Errorf("last event %+v", evs[len(evs)-1])
	}
}

func TestTimeSeries(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tr := newSimTracker(t, 2)
	tr.cfg.Now = func() time.Time { return now }
	seeder := simSeeder(t, tr, "ts", 1)
	peers := simJoin(t, tr, "ts", 4, protocol.KindNative)
	st := tr.streamState("ts")

	// The first report with media, 800 ms after the join.
	now = now.Add(800 * time.Millisecond)
	for i, p := range peers {
		st.stats(p, protocol.Stats{BytesP2P: 1000, BytesSeeder: 75, BytesOrigin: 100, BufferMS: 900, BehindLiveMS: 1000 + 100*i})
	}
	st.stats(seeder, protocol.Stats{BytesUp: 300})
	now = now.Add(time.Second)
	in := IngestStat{Live: true, Protocol: "rtmp", Kbps: 2500, FPS: 30}
	st.mu.Lock()
	p := st.sample(now, in)
	st.mu.Unlock()
	// Received 4×1100, from the seeder's root peer 4×75 and the origin
	// 4×100: peers sent 4×925.
	if p.Offload == nil || math.Abs(*p.Offload-3700.0/4400) > 1e-9 {
		t.Fatalf("offload %v", p.Offload)
	}
	if p.Viewers != 4 || p.JoinMS == nil || *p.JoinMS != 800 || p.BehindMS == nil || *p.BehindMS != 1200 {
		t.Fatalf("point %+v join %v behind %v", p, p.JoinMS, p.BehindMS)
	}
	if p.EgressBps != 700 || p.IngestKbps != 2500 || p.FPS != 30 {
		t.Fatalf("egress %v ingest %v fps %v", p.EgressBps, p.IngestKbps, p.FPS)
	}

	// Deltas, not totals: a second report adds only what is new, and a
	// departed peer's bytes stay counted.
	for _, p := range peers {
		st.stats(p, protocol.Stats{BytesP2P: 3000, BytesSeeder: 75, BytesOrigin: 100, BufferMS: 900, Stalls: 1, StalledMS: 1870})
	}
	peers[0].close("left")
	st.leave(peers[0])
	now = now.Add(time.Second)
	st.mu.Lock()
	p = st.sample(now, in)
	ov := st.overviewLocked(in)
	st.mu.Unlock()
	if p.Viewers != 3 || p.Stalls != 4 {
		t.Fatalf("viewers %d stalls %d", p.Viewers, p.Stalls)
	}
	if ov.Bytes.Viewers != 4*2925 || ov.Bytes.Seeder != 300 || ov.Bytes.Origin != 400 || ov.SeederBytes != 700 || ov.Stalls != 4 {
		t.Fatalf("overview bytes %+v seeder %d stalls %d", ov.Bytes, ov.SeederBytes, ov.Stalls)
	}
	// Over the last two seconds: received 12400, from peers 11700.
	if math.Abs(*p.Offload-11700.0/12400) > 1e-9 || p.EgressBps != 350 {
		t.Fatalf("offload %v egress %v", *p.Offload, p.EgressBps)
	}
	if ov.StallsPerViewerHour != nil {
		t.Errorf("stalls per viewer-hour before a viewer-minute: %v", *ov.StallsPerViewerHour)
	}
	// Ten more idle seconds: rolling figures forget, totals do not.
	for range 60 {
		now = now.Add(time.Second)
		st.mu.Lock()
		p = st.sample(now, in)
		st.mu.Unlock()
	}
	st.mu.Lock()
	ov = st.overviewLocked(in)
	series := st.dash.seriesLocked()
	st.mu.Unlock()
	if p.Offload != nil || p.EgressBps != 0 || ov.OffloadTotal == nil {
		t.Errorf("idle: offload %v egress %v total %v", p.Offload, p.EgressBps, ov.OffloadTotal)
	}
	// 4 stalls over (4+3+60×3) viewer-seconds.
	if ov.StallsPerViewerHour == nil || math.Abs(*ov.StallsPerViewerHour-4/(187.0/3600)) > 1e-6 {
		t.Errorf("stalls per viewer-hour %v", ov.StallsPerViewerHour)
	}
	// 4×1.87 s stalled over 187 viewer-seconds: 4 % of watch time.
	if ov.StalledShare == nil || math.Abs(*ov.StalledShare-0.04) > 1e-9 {
		t.Errorf("stalled share %v", ov.StalledShare)
	}
	if len(series) != 62 || series[0].T+61 != series[61].T {
		t.Errorf("series of %d points", len(series))
	}
	// The ring keeps SeriesLen points.
	st.mu.Lock()
	for range SeriesLen {
		now = now.Add(time.Second)
		st.sample(now, in)
	}
	series = st.dash.seriesLocked()
	st.mu.Unlock()
	if len(series) != SeriesLen || series[SeriesLen-1].T != now.Unix() {
		t.Errorf("ring: %d points, last %d", len(series), series[len(series)-1].T)
	}
}

// dashServer serves a tracker's dashboard as `banyan up` mounts it.
func dashServer(t *testing.T, tr *Tracker, tls bool, page ...http.Handler) (*httptest.Server, *store.Store, string) {
	t.Helper()
	var pageH http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "DASHBOARD PAGE") })
	if len(page) > 0 {
		pageH = page[0]
	}
	s, tok := adminStore(t)
	mux := http.NewServeMux()
	tr.MountDashboard(mux, DashboardConfig{
		Store: s, StreamLifetime: 3 * time.Second,
		Page: pageH,
		Ingest: func(stream string) (string, float64, float64, bool) {
			if stream == "ev" {
				return "rtmp", 2500, 30, true
			}
			return "", 0, 0, false
		},
		Keyframes: func(stream string) (time.Duration, string) {
			return 8300 * time.Millisecond, "set Keyframe Interval 1 s"
		},
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewUnstartedServer(mux)
		srv.Config.ReadTimeout = time.Second // the event stream must outlive it
		srv.StartTLS()
	} else {
		srv = httptest.NewUnstartedServer(mux)
		srv.Config.ReadTimeout = time.Second
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, s, tok
}

func noRedirect(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

func TestDashboardAuth(t *testing.T) {
	tr := newSimTracker(t, 2)
	simSeeder(t, tr, "ev", 1)
	simJoin(t, tr, "ev", 5, protocol.KindNative)
	srv, st, tok := dashServer(t, tr, false)
	client := noRedirect(srv.Client())
	req := func(method, path string, body io.Reader, hdr ...string) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(method, srv.URL+path, body)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	login := func(token string, hdr ...string) *http.Response {
		resp, _ := req("POST", "/dashboard/login", strings.NewReader(url.Values{"token": {token}}.Encode()),
			append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
		return resp
	}

	// No session: the login form, refused; the API 401.
	resp, body := req("GET", "/dashboard", nil)
	if resp.StatusCode != 401 || !strings.Contains(body, `<form method="post" action="/dashboard/login"`) || strings.Contains(body, "DASHBOARD PAGE") {
		t.Fatalf("GET /dashboard without a session: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("login page headers: %v", resp.Header)
	}
	for _, path := range []string{"/dashboard/api/streams", "/dashboard/api/stream?name=ev", "/dashboard/api/peer?stream=ev&id=0", "/dashboard/events?stream=ev", "/dashboard/nope"} {
		if resp, _ := req("GET", path, nil); resp.StatusCode != 401 {
			t.Errorf("GET %s without a session: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := req("GET", "/dashboard/api/streams", nil, "Cookie", SessionCookie+"=wrong"); resp.StatusCode != 401 {
		t.Errorf("wrong cookie: %d", resp.StatusCode)
	}
	if resp, _ := req("POST", "/dashboard/logout", nil); resp.StatusCode != 401 {
		t.Errorf("logout without a session: %d", resp.StatusCode)
	}

	// Wrong token: refused, no cookie.
	if r := login("not-the-token"); r.StatusCode != 401 || len(r.Cookies()) != 0 {
		t.Fatalf("wrong token: %d cookies %v", r.StatusCode, r.Cookies())
	}
	// Cross-site login (login CSRF): refused.
	if r := login(tok, "Sec-Fetch-Site", "cross-site"); r.StatusCode != 403 || len(r.Cookies()) != 0 {
		t.Fatalf("cross-site login: %d", r.StatusCode)
	}
	// An oversized form.
	if r, _ := req("POST", "/dashboard/login", strings.NewReader("token="+strings.Repeat("a", 10000)), "Content-Type", "application/x-www-form-urlencoded"); r.StatusCode != 400 {
		t.Errorf("oversized login form: %d", r.StatusCode)
	}

	// The right token: a strict, HttpOnly session cookie and a redirect.
	r := login(tok, "Sec-Fetch-Site", "same-origin")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard" {
		t.Fatalf("login: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	raw := r.Header.Get("Set-Cookie")
	for _, want := range []string{SessionCookie + "=", "Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200", "Expires="} {
		if !strings.Contains(raw, want) {
			t.Errorf("cookie %q lacks %q", raw, want)
		}
	}
	// Issue 18 #11: the cookie is a session token, never the admin token
	// itself (before the fix it was, and it never expired).
	if strings.Contains(raw, tok) || strings.Contains(raw, "Secure") {
		t.Errorf("plain-HTTP session cookie %q: the admin token, or Secure", raw)
	}
	var sess string
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie {
			sess = c.Value
		}
	}
	cookie := SessionCookie + "=" + sess
	if resp, _ := req("GET", "/dashboard/api/streams", nil, "Cookie", SessionCookie+"="+tok); resp.StatusCode != 401 {
		t.Errorf("the admin token as the cookie: %d, want 401", resp.StatusCode)
	}
	if resp, body := req("GET", "/dashboard", nil, "Cookie", cookie); resp.StatusCode != 200 || body != "DASHBOARD PAGE" {
		t.Fatalf("page with the cookie: %d %q", resp.StatusCode, body)
	}
	resp, body = req("GET", "/dashboard/api/streams", nil, "Cookie", cookie)
	var ov struct{ Streams []StreamOverview }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ov) != nil || len(ov.Streams) != 1 || ov.Streams[0].Viewers != 5 || !ov.Streams[0].Live || ov.Streams[0].Ingest.Protocol != "rtmp" ||
		ov.Streams[0].Ingest.KeyframeS != 8.3 || ov.Streams[0].Ingest.Advice != "set Keyframe Interval 1 s" {
		t.Fatalf("streams with the cookie: %d %s", resp.StatusCode, body)
	}
	if resp, _ := req("GET", "/dashboard/api/streams", nil, "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
		t.Errorf("bearer token: %d", resp.StatusCode)
	}
	// Cross-site, even with the cookie: refused.
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}, {"Origin", "https://evil.example"}} {
		if resp, _ := req("GET", "/dashboard/api/streams", nil, "Cookie", cookie, hdr[0], hdr[1]); resp.StatusCode != 403 {
			t.Errorf("%s: %s with the cookie: %d", hdr[0], hdr[1], resp.StatusCode)
		}
	}
	// Bad parameters.
	for path, want := range map[string]int{
		"/dashboard/api/stream?name=ev":           200,
		"/dashboard/api/stream?name=none":         404,
		"/dashboard/api/stream?name=../x":         400,
		"/dashboard/api/peer?stream=ev&id=0":      200,
		"/dashboard/api/peer?stream=ev&id=-1":     400,
		"/dashboard/api/peer?stream=ev&id=123456": 404,
		"/dashboard/events?stream=B%20AD":         400,
		"/dashboard/nope":                         404,
	} {
		if resp, body := req("GET", path, nil, "Cookie", cookie); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
	}
	// Logout clears the cookie.
	resp, _ = req("POST", "/dashboard/logout", nil, "Cookie", cookie, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	// The session ends on the server: a saved copy of the cookie is dead.
	if resp, _ := req("GET", "/dashboard/api/streams", nil, "Cookie", cookie); resp.StatusCode != 401 {
		t.Errorf("session cookie after logout: %d", resp.StatusCode)
	}
	// Both are in the audit log (failed logins are not: they go to the
	// server log, rate-limited, so a flood cannot push real entries out).
	if a, err := st.Audit(10); err != nil || len(a) != 2 || a[0].Action != "logout" || a[1].Action != "login" || a[1].Via != "dashboard" {
		t.Errorf("audit log: %+v %v", a, err)
	}
}

func TestDashboardSecureCookieOverTLS(t *testing.T) {
	tr := newSimTracker(t, 2)
	srv, _, tok := dashServer(t, tr, true)
	client := noRedirect(srv.Client())
	resp, err := client.PostForm(srv.URL+"/dashboard/login", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if raw := resp.Header.Get("Set-Cookie"); resp.StatusCode != 303 || !strings.Contains(raw, "Secure") || !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
		t.Fatalf("TLS login: %d %q", resp.StatusCode, raw)
	}
}

// TestDashboardEventStream reads the server-sent events: an init frame
// with the series, then ticks with new events, past the server's
// ReadTimeout, until the stream's lifetime ends it.
func TestDashboardEventStream(t *testing.T) {
	tr := newSimTracker(t, 2)
	simSeeder(t, tr, "ev", 1)
	peers := simJoin(t, tr, "ev", 12, protocol.KindNative)
	srv, _, tok := dashServer(t, tr, false)
	r, _ := http.NewRequest("GET", srv.URL+"/dashboard/events?stream=ev", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var frames []Frame
	left := false
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var f Frame
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
		if len(frames) == 1 && !left {
			// A peer leaves: the next frames show it.
			peers[0].close("left")
			tr.streamState("ev").leave(peers[0])
			left = true
		}
	}
	took := time.Since(start)
	if took < 2500*time.Millisecond || took > 6*time.Second {
		t.Errorf("stream lasted %v, lifetime 3 s (server ReadTimeout 1 s)", took)
	}
	if len(frames) < 3 {
		t.Fatalf("%d frames", len(frames))
	}
	f0, fl := frames[0], frames[len(frames)-1]
	if f0.Type != "init" || f0.Stream == nil || countKind(f0.Stream.Events, EventJoin) != 12 || f0.Stream.Topology.Peers != 12 || len(f0.Streams) != 1 {
		t.Fatalf("init frame: %+v", f0)
	}
	if fl.Type != "tick" || fl.Stream.Topology.Peers != 11 || fl.Streams[0].Viewers != 11 || len(fl.Stream.Series) > 1 {
		t.Fatalf("last frame: type %s peers %d", fl.Type, fl.Stream.Topology.Peers)
	}
	leaves := 0
	for _, f := range frames[1:] {
		leaves += countKind(f.Stream.Events, EventLeave)
	}
	if leaves != 1 {
		t.Errorf("%d leave events over the ticks, want exactly 1", leaves)
	}
}

// FuzzDashboardQuery throws arbitrary query strings at the dashboard's
// endpoints: never a panic, never a 5xx, only the documented statuses.
func FuzzDashboardQuery(f *testing.F) {
	tr := newSimTracker(f, 2)
	simSeeder(f, tr, "ev", 1)
	simJoin(f, tr, "ev", 8, protocol.KindNative)
	s, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	tok, _, _ := s.EnsureAdminToken()
	h := tr.DashboardHandler(DashboardConfig{Store: s})
	for _, seed := range []string{"/dashboard/api/peer?stream=ev&id=3", "/dashboard/api/stream?name=ev", "/dashboard/api/peer?stream=ev&id=18446744073709551615",
		"/dashboard/api/stream?name=%00", "/dashboard/api/peer?stream=ev&id=1e9", "/dashboard/api/streams?x=1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/dashboard/api/") {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.URL = u
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 404, 405, 301, 307, 308: // redirects: ServeMux cleaning a path
		default:
			t.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
	})
}
