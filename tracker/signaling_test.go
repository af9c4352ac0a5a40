package tracker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/viewertoken"
)

var seederSecret = []byte("test-seeder-secret")

// testSeederKeys are the seeders a test tracker knows: s1 (seederSecret)
// and s2, each with its own secret.
var testSeederKeys = map[string][]byte{"s1": seederSecret, "s2": []byte("test-seeder-s2-secret")}

func testSeederKey(id string) ([]byte, error) {
	if k, ok := testSeederKeys[id]; ok {
		return k, nil
	}
	return nil, errors.New("unknown seeder")
}

type testTracker struct {
	t   *Tracker
	srv *httptest.Server
	url string
}

func newTestTracker(t *testing.T, cfg Config) *testTracker {
	t.Helper()
	cfg.SeederKey = testSeederKey
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = time.Minute // test clients send no stats
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tr)
	t.Cleanup(func() { tr.Close(); srv.Close() })
	return &testTracker{t: tr, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// client is a real websocket peer.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	in   chan protocol.Message
	done chan error
	id   protocol.PeerID
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(4 << 20)
	c := &client{t: t, conn: conn, in: make(chan protocol.Message, 1000), done: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.done <- err
				close(c.in)
				return
			}
			m, err := protocol.Decode(data)
			if err != nil {
				c.done <- err
				close(c.in)
				return
			}
			c.in <- m
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return c
}

func (c *client) sendRaw(b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.conn.Write(ctx, websocket.MessageText, b)
}

func (c *client) send(m protocol.Message) {
	b, err := protocol.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

// next waits for a message matching want.
func (c *client) next(what string, want func(protocol.Message) bool) protocol.Message {
	c.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("peer %d: connection closed while waiting for %s", c.id, what)
			}
			if want(m) {
				return m
			}
		case <-deadline:
			c.t.Fatalf("peer %d: no %s", c.id, what)
		}
	}
}

// closed waits for the tracker to close the connection.
func (c *client) closed() {
	c.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return
			}
		case <-deadline:
			c.t.Fatal("connection not closed by the tracker")
		}
	}
}

func isType[T protocol.Message](m protocol.Message) bool { _, ok := m.(T); return ok }

func errCode(code string) func(protocol.Message) bool {
	return func(m protocol.Message) bool { e, ok := m.(protocol.Error); return ok && e.Code == code }
}

type seederPeer struct {
	*client
	priv ed25519.PrivateKey
	key  chunk.MasterKey
}

// signedHello signs h as seeder "s1" at the tracker's now, with a fresh
// nonce.
func (tt *testTracker) signedHello(h protocol.SeederHello) protocol.SeederHello {
	h.Sign(seederSecret, "s1", tt.t.cfg.Now(), rand.Text())
	return h
}

func joinSeeder(t *testing.T, tt *testTracker, stream string) *seederPeer {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	mk, _ := chunk.NewMasterKey(1, rand.Reader)
	kb, _ := json.Marshal(mk)
	var ck protocol.ContentKey
	json.Unmarshal(kb, &ck)
	c := dial(t, tt.url)
	c.send(tt.signedHello(protocol.SeederHello{
		Stream: stream, UploadKbps: 100_000,
		OriginURL: "http://127.0.0.1:1", PublicKey: base64.StdEncoding.EncodeToString(pub),
		Keys: []protocol.ContentKey{ck}, Epoch: 77,
	}))
	w := c.next("welcome", isType[protocol.Welcome]).(protocol.Welcome)
	c.id = w.Peer
	return &seederPeer{client: c, priv: priv, key: mk}
}

func joinViewer(t *testing.T, tt *testTracker, j protocol.Join) (*client, protocol.Welcome) {
	t.Helper()
	c := dial(t, tt.url)
	if j.Kind == "" {
		j.Kind = protocol.KindNative
	}
	c.send(j)
	w := c.next("welcome", isType[protocol.Welcome]).(protocol.Welcome)
	c.id = w.Peer
	return c, w
}

func TestJoinAssignRelayLeave(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 2, RootCapacity: 1})
	seed := joinSeeder(t, tt, "show")

	a, wa := joinViewer(t, tt, protocol.Join{Stream: "show", UploadKbps: 20_000})
	if wa.Stripes != 2 || wa.Epoch != 77 || !wa.Live || wa.PublicKey == "" || len(wa.Keys) != 1 || wa.StatsMillis != 60000 {
		t.Fatalf("welcome %+v", wa)
	}
	// With one root slot per stripe, A hangs off the seeder in both stripes.
	for s := 0; s < 2; s++ {
		a.next("assign to seeder", func(m protocol.Message) bool {
			as, ok := m.(protocol.Assign)
			return ok && as.Parent == seed.id && !as.Remove && as.Depth == 1
		})
		seed.next("child A", func(m protocol.Message) bool {
			as, ok := m.(protocol.Assign)
			return ok && as.Child == a.id
		})
	}
	// B can only go below A (in A's interior stripe).
	b, _ := joinViewer(t, tt, protocol.Join{Stream: "show", UploadKbps: 20_000})
	b.next("assign under A", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && as.Parent == a.id && as.Depth == 2
	})
	a.next("child B", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Child == b.id })

	// Relay between paired peers carries the sender's id.
	b.send(protocol.Signal{To: a.id, SDP: &protocol.SDP{Type: "offer", SDP: "v=0 test"}})
	got := a.next("offer from B", isType[protocol.Signal]).(protocol.Signal)
	if got.From != b.id || got.SDP == nil || got.SDP.SDP != "v=0 test" {
		t.Fatalf("relayed %+v", got)
	}
	// Not paired: no such peer, or a peer with no edge to B.
	b.send(protocol.Signal{To: 999, Candidate: protocol.RawJSON(`{"candidate":"x"}`)})
	b.next("not_paired", errCode(protocol.CodeNotPaired))

	// A vanishes abruptly: B is re-parented (to the seeder or origin) quickly.
	start := time.Now()
	a.conn.CloseNow()
	b.next("re-parent", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent != a.id
	})
	t.Logf("re-parent after abrupt leave: %v", time.Since(start))
	if n := tt.t.Peers("show"); n != 1 {
		t.Fatalf("peers after leave: %d", n)
	}

	// Clean leave.
	b.send(protocol.Leave{})
	b.closed()
	if n := tt.t.Peers("show"); n != 0 {
		t.Fatalf("peers after clean leave: %d", n)
	}
}

func TestKeysBroadcastAndSeederLoss(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 2})
	v, w := joinViewer(t, tt, protocol.Join{Stream: "early"})
	if w.Live || w.PublicKey != "" {
		t.Fatalf("welcome before any seeder: %+v", w)
	}
	v.next("origin fallback", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == 0 })
	seed := joinSeeder(t, tt, "early")
	k := v.next("keys", isType[protocol.Keys]).(protocol.Keys)
	if !k.Live || k.PublicKey == "" || len(k.Keys) != 1 {
		t.Fatalf("keys %+v", k)
	}
	v.next("seeder as parent", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == seed.id })
	// Rotation from the seeder reaches viewers; a viewer cannot send keys.
	seed.send(protocol.Keys{Keys: []protocol.ContentKey{{ID: 1}, {ID: 2}}, Live: true})
	k = v.next("rotated keys", isType[protocol.Keys]).(protocol.Keys)
	if len(k.Keys) != 2 {
		t.Fatalf("rotation %+v", k)
	}
	seed.conn.CloseNow()
	k = v.next("not live", isType[protocol.Keys]).(protocol.Keys)
	if k.Live {
		t.Fatal("still live after the seeder left")
	}
	v.send(protocol.Keys{Keys: nil})
	v.closed()
}

func TestEvictions(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	seed := joinSeeder(t, tt, "ev")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "ev", UploadKbps: 50_000})
	var kids []*client
	for i := 0; i < 3; i++ {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "ev", UploadKbps: 0, NoUpload: true})
		c.next("parent P", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
		kids = append(kids, c)
	}
	// A genuine chunk reported as bad: the accuser lies and is evicted on
	// the third strike; P stays.
	kr, _ := chunk.NewKeyring(seed.key)
	good, err := chunk.Seal(nil, chunk.Header{KeyID: 1, Epoch: 77, Seq: 1}, []byte("payload"), kr, seed.priv, "ev")
	if err != nil {
		t.Fatal(err)
	}
	// One child alone with a forged chunk only gets itself moved.
	forged := append([]byte(nil), good...)
	forged[len(forged)-1] ^= 1
	kids[0].send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: p.id, Stripe: 0, Chunk: forged})
	kids[0].next("moved", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent != p.id
	})
	if tt.t.Peers("ev") != 4 {
		t.Fatalf("peers %d", tt.t.Peers("ev"))
	}
	// Two more children with forged (unverifiable) chunks: nothing proves
	// P sent them, so P is demoted and left by its children, not evicted
	// (issue 18 #2; TestBadChunkAccusations).
	for _, k := range kids[1:] {
		k.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: p.id, Stripe: 0, Chunk: forged})
		k.next("moved", func(m protocol.Message) bool {
			as, ok := m.(protocol.Assign)
			return ok && !as.Remove && as.Parent != p.id
		})
	}
	if n := tt.t.Peers("ev"); n != 4 || !tt.t.Alive(p.id) {
		t.Fatalf("peers %d, P alive %v", n, tt.t.Alive(p.id))
	}
}

func TestFalseAccuserEvicted(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	seed := joinSeeder(t, tt, "fa")
	kr, _ := chunk.NewKeyring(seed.key)
	good, err := chunk.Seal(nil, chunk.Header{KeyID: 1, Epoch: 77, Seq: 1}, []byte("x"), kr, seed.priv, "fa")
	if err != nil {
		t.Fatal(err)
	}
	liar, _ := joinViewer(t, tt, protocol.Join{Stream: "fa"})
	liar.next("parent", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == seed.id })
	// Accusing the seeder with genuine chunks: three strikes.
	for i := 0; i < 3; i++ {
		liar.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: seed.id, Stripe: 0, Chunk: good})
	}
	liar.next("evicted", errCode(protocol.CodeEvicted))
	liar.closed()
}

func TestViewerTokens(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.CreateStream("open")
	st.CreateStream("vip")
	st.SetPrivate("vip", true)
	secret := []byte("viewer-secret")
	tt := newTestTracker(t, Config{Access: StoreAccess{Store: st, TokenSecret: secret}})
	joinSeeder(t, tt, "vip")

	cases := []struct {
		name, stream, token, code string
	}{
		{"public", "open", "", ""},
		{"unknown stream", "nope", "", protocol.CodeNoStream},
		{"private without token", "vip", "", protocol.CodeUnauthorized},
		{"private bad token", "vip", "garbage.token", protocol.CodeUnauthorized},
		{"private expired", "vip", viewertoken.Mint(secret, "vip", time.Now().Add(-time.Minute)), protocol.CodeUnauthorized},
		{"token for another stream", "vip", viewertoken.Mint(secret, "open", time.Now().Add(time.Hour)), protocol.CodeUnauthorized},
		{"private valid", "vip", viewertoken.Mint(secret, "vip", time.Now().Add(time.Hour)), ""},
	}
	for _, c := range cases {
		cl := dial(t, tt.url)
		cl.send(protocol.Join{Stream: c.stream, Token: c.token, Kind: protocol.KindBrowser})
		if c.code == "" {
			w := cl.next("welcome", isType[protocol.Welcome]).(protocol.Welcome)
			if c.stream == "vip" && len(w.Keys) == 0 {
				t.Errorf("%s: admitted without keys", c.name)
			}
			continue
		}
		// Refused: an error, never a welcome or keys, then a close.
		m := cl.next("refusal", func(m protocol.Message) bool { return true })
		if e, ok := m.(protocol.Error); !ok || e.Code != c.code {
			t.Errorf("%s: got %#v, want error %s", c.name, m, c.code)
		}
		for m := range cl.in {
			if _, ok := m.(protocol.Keys); ok {
				t.Errorf("%s: keys leaked to a refused viewer", c.name)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	tt := newTestTracker(t, Config{MsgRate: 5, MsgBurst: 10})
	join := `{"v":1,"type":"join","stream":"s","kind":"native"}`
	cases := []struct {
		name  string
		first string // raw first message
		then  []string
		code  string // error code expected, "" for a bare close
		stays bool   // the session survives
	}{
		{"invalid json first", `{"v":1,`, nil, protocol.CodeBadMessage, false},
		{"unknown type first", `{"v":1,"type":"reboot"}`, nil, protocol.CodeBadMessage, false},
		{"stats first", `{"v":1,"type":"stats"}`, nil, protocol.CodeBadMessage, false},
		{"impossible capacity", `{"v":1,"type":"join","stream":"s","kind":"native","upload_kbps":99999999999}`, nil, protocol.CodeBadMessage, false},
		{"bad seeder auth", `{"v":1,"type":"seeder_hello","stream":"s","seeder_id":"s1","time":1,"nonce":"n","auth":"x","upload_kbps":1,"public_key":"p","origin_url":"o"}`, nil, protocol.CodeUnauthorized, false},
		{"v1 seeder hello (no id, time, nonce)", `{"v":1,"type":"seeder_hello","stream":"s","auth":"x","upload_kbps":1,"public_key":"p","origin_url":"o"}`, nil, protocol.CodeBadMessage, false},
		{"unknown type after join", join, []string{`{"v":1,"type":"reboot"}`}, protocol.CodeBadMessage, true},
		{"invalid json after join", join, []string{`nope`}, protocol.CodeBadMessage, true},
		{"unexpected welcome", join, []string{`{"v":1,"type":"welcome","peer":1,"stripes":2}`}, protocol.CodeBadMessage, true},
		{"report about a stranger", join, []string{`{"v":1,"type":"report","kind":"silent","peer":424242}`}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := dial(t, tt.url)
			cl.sendRaw([]byte(c.first))
			for _, m := range c.then {
				cl.next("welcome", isType[protocol.Welcome])
				cl.sendRaw([]byte(m))
			}
			if c.code != "" {
				cl.next(c.code, errCode(c.code))
			}
			if c.stays {
				// Still served: a clean leave works.
				cl.send(protocol.Leave{})
			}
			cl.closed()
		})
	}
	t.Run("oversized frame", func(t *testing.T) {
		cl := dial(t, tt.url)
		cl.sendRaw([]byte(join))
		cl.next("welcome", isType[protocol.Welcome])
		cl.sendRaw([]byte(`{"v":1,"type":"report","kind":"bad_chunk","peer":1,"chunk":"` + strings.Repeat("A", protocol.MaxMessage) + `"}`))
		cl.closed()
	})
	t.Run("binary frame", func(t *testing.T) {
		cl := dial(t, tt.url)
		cl.sendRaw([]byte(join))
		cl.next("welcome", isType[protocol.Welcome])
		cl.conn.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3})
		cl.closed()
	})
	t.Run("flood", func(t *testing.T) {
		cl := dial(t, tt.url)
		cl.sendRaw([]byte(join))
		cl.next("welcome", isType[protocol.Welcome])
		for i := 0; i < 200; i++ {
			cl.send(protocol.Stats{})
		}
		cl.next("rate limited", errCode(protocol.CodeRateLimited))
		cl.closed()
	})
	t.Run("silent client", func(t *testing.T) {
		// Joins and never reports: dropped after three stats intervals.
		tt := newTestTracker(t, Config{StatsInterval: 300 * time.Millisecond})
		cl := dial(t, tt.url)
		cl.sendRaw([]byte(join))
		cl.next("welcome", isType[protocol.Welcome])
		start := time.Now()
		cl.closed()
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("dropped after %v", d)
		}
	})
	// Other peers are untouched by all of this.
	ok, _ := joinViewer(t, tt, protocol.Join{Stream: "s"})
	ok.send(protocol.Leave{})
	ok.closed()
}

func TestReportedSilentParentReparents(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	joinSeeder(t, tt, "r")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "r", UploadKbps: 50_000})
	c, _ := joinViewer(t, tt, protocol.Join{Stream: "r", NoUpload: true})
	c.next("parent P", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
	start := time.Now()
	c.send(protocol.Report{Kind: protocol.ReportSilent, Peer: p.id, Stripe: 0})
	c.next("new parent", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent != p.id
	})
	t.Logf("re-parent after silent report: %v", time.Since(start))
}

// TestSilentParentTakesNoNewChildren: a parent reported silent may be gone;
// joiners are not placed under it until its next stats show it alive.
func TestSilentParentTakesNoNewChildren(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	joinSeeder(t, tt, "su")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "su", UploadKbps: 30_000})
	c1, _ := joinViewer(t, tt, protocol.Join{Stream: "su", NoUpload: true})
	c1.next("parent P", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
	c1.send(protocol.Report{Kind: protocol.ReportSilent, Peer: p.id, Stripe: 0})
	c1.next("moved off P", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent != p.id
	})
	noChildrenUntilStats(t, tt, "su", p, "reported silent")
}

// noChildrenUntilStats checks that a suspect parent p (why) gets no joiner
// until its next stats, and then gets one again.
func noChildrenUntilStats(t *testing.T, tt *testTracker, stream string, p *client, why string) {
	t.Helper()
	c2, _ := joinViewer(t, tt, protocol.Join{Stream: stream, NoUpload: true})
	c2.next("a parent other than the suspect", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		if ok && as.Parent == p.id {
			t.Fatalf("a joiner was placed under a parent %s", why)
		}
		return ok && !as.Remove
	})
	tt.statsClearSuspicion(t, stream, p, 30_000)
	c3, _ := joinViewer(t, tt, protocol.Join{Stream: stream, NoUpload: true})
	c3.next("parent P again", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
}

func TestStreamManager(t *testing.T) {
	tt := newTestTracker(t, Config{})
	h := tt.t.IngestHandler()
	get := func(q string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/ingest?"+q, nil))
		var m map[string]any
		json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	if code, _ := get("stream=a"); code != 503 {
		t.Fatalf("no seeders: %d", code)
	}
	if code, _ := get("stream=../x"); code != 400 {
		t.Fatalf("bad name: %d", code)
	}
	tt.t.AddIngest(IngestPoint{RTMPURL: "rtmp://eu1/live", Region: "eu"})
	tt.t.AddIngest(IngestPoint{RTMPURL: "rtmp://us1/live", Region: "us"})
	tt.t.AddIngest(IngestPoint{RTMPURL: "rtmp://us2/live", Region: "us"})
	// Load us1 with a live stream through a real seeder session.
	c := dial(t, tt.url)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	c.send(tt.signedHello(protocol.SeederHello{Stream: "busy", UploadKbps: 1000,
		PublicKey: base64.StdEncoding.EncodeToString(pub), RTMPURL: "rtmp://us1/live", Epoch: 5}))
	c.next("welcome", isType[protocol.Welcome])
	for _, tc := range []struct{ q, want string }{
		{"stream=busy", "rtmp://us1/live"},            // stays where it is live
		{"stream=new&region=us", "rtmp://us2/live"},   // least-loaded in region
		{"stream=new&region=eu", "rtmp://eu1/live"},   // region preferred
		{"stream=new", "rtmp://eu1/live"},             // least loaded, then name
		{"stream=new&region=mars", "rtmp://eu1/live"}, // unknown region: any
	} {
		code, m := get(tc.q)
		if code != 200 || m["rtmp_url"] != tc.want {
			t.Errorf("%s: %d %v, want %s", tc.q, code, m, tc.want)
		}
	}
}

// TestLateStatsTakeNoNewChildren: a viewer whose stats are a quarter of
// an interval overdue may have vanished (a mass departure): joiners are
// not placed under it before it reports again, long before the reaper
// drops it at three intervals. Before, a parent that had vanished took
// every orphan until it was dropped.
func TestLateStatsTakeNoNewChildren(t *testing.T) {
	var offset atomic.Int64 // the tracker's clock: frozen, moved by hand
	base := time.Now()
	now := func() time.Time { return base.Add(time.Duration(offset.Load())) }
	const iv = 200 * time.Millisecond
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1, StatsInterval: iv, Now: now})
	joinSeeder(t, tt, "late")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "late", UploadKbps: 30_000})
	c1, _ := joinViewer(t, tt, protocol.Join{Stream: "late", NoUpload: true})
	c1.next("parent P", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
	// P's stats are overdue (the others' too, but they have no slots).
	offset.Store(int64(iv * 3 / 2))
	time.Sleep(3 * iv) // a few reaper ticks (every iv/2, real time)
	// Its stats come: it takes children again.
	noChildrenUntilStats(t, tt, "late", p, "whose stats are overdue")
}

// TestSilentReportSkipsUnheardParent: the orphan of a parent reported
// silent is not re-hung under a peer the tracker has not heard from since
// the parent went quiet (it may have vanished in the same instant, as in
// a mass departure, and nobody has reported it yet); with no other slot it
// is fed by the origin until one is heard from.
func TestSilentReportSkipsUnheardParent(t *testing.T) {
	var offset atomic.Int64 // the tracker's clock: frozen, moved by hand
	base := time.Now()
	now := func() time.Time { return base.Add(time.Duration(offset.Load())) }
	// A long stats interval: the reaper suspects nobody in this test.
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 2, StatsInterval: 10 * time.Second, Now: now})
	joinSeeder(t, tt, "q")
	a, _ := joinViewer(t, tt, protocol.Join{Stream: "q", UploadKbps: 30_000})
	b, _ := joinViewer(t, tt, protocol.Join{Stream: "q", UploadKbps: 30_000})
	c, _ := joinViewer(t, tt, protocol.Join{Stream: "q", NoUpload: true})
	var par protocol.PeerID
	c.next("a parent", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		par = as.Parent
		return ok && !as.Remove && (as.Parent == a.id || as.Parent == b.id)
	})
	other := a
	if par == a.id {
		other = b
	}
	heard := func(p *client) {
		t.Helper()
		at := now()
		p.send(protocol.Stats{UploadKbps: 30_000})
		for i := 0; ; i++ {
			var h time.Time
			tt.t.withForest("q", func(f *overlay.Forest) { h = f.LastHeard(overlay.PeerID(p.id)) })
			if !h.Before(at) {
				return
			}
			if i == 200 {
				t.Fatal("stats not recorded")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	heard(other)
	// A second later the parent is reported silent; the other peer has
	// sent nothing since.
	offset.Store(int64(time.Second))
	c.send(protocol.Report{Kind: protocol.ReportSilent, Peer: par, Stripe: 0})
	c.next("moved", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		if ok && !as.Remove && as.Parent == other.id {
			t.Fatal("re-hung under a peer not heard from since its parent went quiet")
		}
		return ok && !as.Remove
	})
	// Its stats come: the orphan moves there from the origin.
	heard(other)
	c.next("the heard peer", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent == other.id
	})
}
