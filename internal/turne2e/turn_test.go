//go:build !js

package turne2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/httporigin"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/turnserver"
)

const (
	stream  = "turn-e2e"
	stripes = 2
	epoch   = 1
	// The root (lower id) dials, as the node does.
	rootID, childID = peer.PeerID(1), peer.PeerID(2)
	// chunkDur and payload make a 3 Mbit/s stream of 56 KB chunks (4 pieces).
	chunkDur = 150 * time.Millisecond
	payload  = 56_000
	keyEvery = 8 // a keyframe every 8 chunks: where an origin start may begin
)

var secret = []byte("turne2e-secret-0123456789")

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// plain is chunk seq's clear payload, different for every chunk.
func plain(seq uint64) []byte {
	p := make([]byte, payload)
	for i := range p {
		p[i] = byte(uint64(i) ^ seq)
	}
	return p
}

// player records what the child engine plays and when.
type player struct {
	mu    sync.Mutex
	inits int
	seqs  []uint64
	at    map[uint64]time.Time
	wrong int
}

func (p *player) Init(uint32, []byte) { p.mu.Lock(); p.inits++; p.mu.Unlock() }
func (p *player) Chunk(h chunk.Header, pl []byte) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seqs = append(p.seqs, h.Seq)
	p.at[h.Seq] = now
	if !bytes.Equal(pl, plain(h.Seq)) {
		p.wrong++
	}
}

func (p *player) last() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seqs) == 0 {
		return 0
	}
	return p.seqs[len(p.seqs)-1]
}

// bus relays signals between transports as the tracker does: in order, on
// its own goroutine.
type bus struct {
	mu sync.Mutex
	ts map[peer.PeerID]*rtc.Transport
	ch chan protocol.Signal
}

func newBus(t *testing.T) *bus {
	b := &bus{ts: map[peer.PeerID]*rtc.Transport{}, ch: make(chan protocol.Signal, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range b.ch {
			b.mu.Lock()
			tr := b.ts[s.To]
			b.mu.Unlock()
			if tr != nil {
				_ = tr.HandleSignal(s) // a late signal for a failed link is expected
			}
		}
	}()
	t.Cleanup(func() { close(b.ch); <-done })
	return b
}

func (b *bus) send(from peer.PeerID) func(protocol.Signal) {
	return func(s protocol.Signal) {
		s.From = from
		select {
		case b.ch <- s:
		default: // a full bus loses the signal, like a dropped websocket message
		}
	}
}

// scenario is one link setup between a root engine and a child engine.
type scenario struct {
	name string
	// turn gives both transports the TURN server; relayOnly forces it.
	turn, relayOnly bool
	// creds mints a peer's credentials (nil: valid for an hour).
	creds func(peerID string) (user, pass string)
	// denyLoopback turns the server's AllowLoopback off (the production
	// default): the peers' relayed candidates are on loopback.
	denyLoopback bool
}

// outcome is what happened.
type outcome struct {
	linkErr     error         // why the child's link closed (nil: it opened and lived)
	paths       []string      // Path() of the root's and the child's link, once open
	connect     time.Duration // dial to both ends open
	latency     []time.Duration
	played      []uint64
	inits       int
	wrong       int
	sealedTotal uint64 // sealed bytes of every chunk published
	stats       protocol.Stats
	ctr         peer.Counters // the child's
	rootCtr     peer.Counters
	srv         turnserver.Stats
}

// run publishes n chunks at the live rate from a root engine to a child
// engine over one rtc link set up as sc says. The child also has the HTTP
// origin (the seeder's own handler), which is what it falls back to when the
// link never opens.
func run(t *testing.T, sc scenario, n int) outcome {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := chunk.NewMasterKey(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := chunk.NewKeyring(mk)
	sealer, err := chunk.NewSealer(chunk.SealerConfig{Stream: stream, PrivateKey: priv, Keys: keys, KeyID: 1})
	if err != nil {
		t.Fatal(err)
	}

	srv, err := turnserver.New(turnserver.Config{
		UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: secret,
		AllowLoopback: !sc.denyLoopback, Logger: quiet(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("turn server close: %v", err)
		}
	})

	org := seeder.NewOrigin(quiet())
	win := org.Stream(stream, time.Minute, false)
	hs := httptest.NewServer(org.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(org.Close) // first: ends blocked long-polls so hs.Close does not wait

	pl := &player{at: map[uint64]time.Time{}}
	root, err := peer.New(peer.Config{Stream: stream, PublicKey: pub, Stripes: stripes, Root: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	child, err := peer.New(peer.Config{Stream: stream, PublicKey: pub, Stripes: stripes, Keys: keys, Player: pl,
		Origin: httporigin.New(hs.URL, stream)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Close() })

	iceFor := func(id peer.PeerID) []protocol.ICEServer {
		if !sc.turn {
			return nil
		}
		user, pass := turnserver.Credentials(secret, fmt.Sprint(id), time.Hour, time.Now())
		if sc.creds != nil {
			user, pass = sc.creds(fmt.Sprint(id))
		}
		return []protocol.ICEServer{{
			URLs:     []string{"turn:" + srv.UDPAddr().String() + "?transport=udp"},
			Username: user, Credential: pass,
		}}
	}

	// The loopback API, tuned for relay-only as rtc's default API is.
	var se webrtc.SettingEngine
	rtc.LoopbackSettings(&se)
	if sc.relayOnly {
		rtc.RelayOnlySettings(&se)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))

	b := newBus(t)
	type opened struct {
		side peer.PeerID
		l    *rtc.Link
	}
	openCh := make(chan opened, 2)
	closeCh := make(chan error, 2)
	newTransport := func(self peer.PeerID, e *peer.Engine) *rtc.Transport {
		tr, err := rtc.New(rtc.Config{
			Self: self, ICEServers: iceFor(self), API: api, RelayOnly: sc.relayOnly,
			ConnectTimeout: 3 * time.Second, Signal: b.send(self), Logger: quiet(),
			OnOpen: func(l *rtc.Link) {
				for s := range stripes {
					if self == rootID {
						_ = e.AddChild(s, l.Remote(), l)
					} else {
						_ = e.SetParent(s, l.Remote(), l)
					}
				}
				openCh <- opened{self, l}
			},
			OnMessage: func(l *rtc.Link, m []byte) { e.HandleMessage(l.Remote(), l, m) },
			OnClose: func(l *rtc.Link, err error) {
				e.RemovePeer(l.Remote())
				if self == childID {
					// As node does: the origin covers while the tracker
					// would find another parent.
					for s := range stripes {
						e.ParentFailed(s, l.Remote())
					}
					closeCh <- err
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		b.ts[self] = tr
		b.mu.Unlock()
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	rootT := newTransport(rootID, root)
	newTransport(childID, child)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the engines' owner ticker
		defer wg.Done()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				root.Tick(now)
				child.Tick(now)
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	var out outcome
	links := map[peer.PeerID]*rtc.Link{}
	dialAt := time.Now()
	if _, err := rootT.Dial(childID); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
wait:
	for len(links) < 2 {
		select {
		case o := <-openCh:
			links[o.side] = o.l
		case err := <-closeCh:
			out.linkErr = err
			break wait
		case <-deadline:
			t.Fatalf("%s: link neither opened nor failed in 10 s", sc.name)
		}
	}
	if out.linkErr == nil {
		out.connect = time.Since(dialAt)
		out.paths = []string{links[rootID].Path(), links[childID].Path()}
	}

	// Publish at the live rate; the origin window gets every chunk as the
	// seeder's does.
	// Chunk seq is due at t0 + seq×chunkDur, as a live encoder's would be:
	// sleeping a fixed time after each publish would let the stream drift
	// behind the media clock on a loaded machine, and the child would then
	// rightly repair chunks that are merely late.
	pubAt := map[uint64]time.Time{}
	t0 := time.Now()
	for seq := uint64(0); seq <= uint64(n); seq++ {
		time.Sleep(time.Until(t0.Add(time.Duration(seq) * chunkDur)))
		h := chunk.Header{Epoch: epoch, Seq: seq}
		kf := seq > 0 && (seq-1)%keyEvery == 0
		if seq == 0 {
			h.Flags = chunk.FlagInit
		} else {
			h.MediaTime = uint64((time.Duration(seq-1) * chunkDur).Microseconds())
			h.Duration = uint32(chunkDur.Microseconds())
			if kf {
				h.Flags |= chunk.FlagKeyframe
			}
		}
		sealed, err := sealer.Seal(h, plain(seq))
		if err != nil {
			t.Fatal(err)
		}
		out.sealedTotal += uint64(len(sealed))
		now := time.Now()
		ent := &seeder.Entry{Epoch: epoch, Seq: seq, Keyframe: kf, Sealed: sealed, Added: now,
			MediaTime: time.Duration(h.MediaTime) * time.Microsecond, Duration: chunkDur}
		if seq == 0 {
			win.StartEpoch(seeder.EpochInfo{Epoch: epoch, Init: ent})
		} else {
			win.Add(ent)
		}
		pubAt[seq] = now
		if err := root.Publish(sealed); err != nil {
			t.Fatal(err)
		}
	}
	// Over the link chunks arrive within milliseconds; from the origin they
	// are played up to the playout delay (1 s) late.
	end := time.Now().Add(5 * time.Second)
	for pl.last() < uint64(n) && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}

	pl.mu.Lock()
	out.played = slices.Clone(pl.seqs)
	out.inits, out.wrong = pl.inits, pl.wrong
	for _, s := range out.played {
		out.latency = append(out.latency, pl.at[s].Sub(pubAt[s]))
	}
	pl.mu.Unlock()
	out.stats = child.Stats()
	out.ctr = child.Counters()
	out.rootCtr = root.Counters()
	out.srv = srv.Stats()
	return out
}

// checkPlayedAll asserts every chunk 1..n was played once, in order, intact.
func checkPlayedAll(t *testing.T, o outcome, n int) {
	t.Helper()
	if len(o.played) != n || o.wrong != 0 || o.inits != 1 {
		t.Fatalf("played %d of %d chunks (%d wrong payloads, %d inits): %v", len(o.played), n, o.wrong, o.inits, o.played)
	}
	for i, s := range o.played {
		if s != uint64(i+1) {
			t.Fatalf("played out of order: %v", o.played)
		}
	}
}

// TestTURNPath streams chunks over a link whose peers are given the bundled
// TURN server: offered, ICE picks the direct pair (host candidates outrank
// relayed ones); forced (relay only), every byte goes through the relay and
// is counted as TURN by the engine and as relayed by the server. It reports
// the latency the relay adds.
func TestTURNPath(t *testing.T) {
	const n = 40
	cases := []struct {
		sc       scenario
		wantPath string
	}{
		{scenario{name: "none"}, peer.PathDirect},
		{scenario{name: "offered", turn: true}, peer.PathDirect},
		{scenario{name: "relay-only", turn: true, relayOnly: true}, peer.PathTURN},
	}
	res := map[string]outcome{}
	for _, c := range cases {
		t.Run(c.sc.name, func(t *testing.T) {
			o := run(t, c.sc, n)
			if o.linkErr != nil {
				t.Fatalf("link failed: %v (server refusals %v)", o.linkErr, o.srv.Refusals)
			}
			for i, p := range o.paths {
				if p != c.wantPath {
					t.Errorf("link %d path %q, want %q", i, p, c.wantPath)
				}
			}
			checkPlayedAll(t, o, n)
			st := o.stats
			// The link carries the stream; the origin may only patch what a
			// stall of this shared machine made late (seen once in many runs).
			link := st.BytesP2P + st.BytesTURN
			if o.ctr.Stalls != 0 || link < o.sealedTotal*3/4 || link+st.BytesOrigin < o.sealedTotal {
				t.Errorf("link carried %d B, origin %d B of %d sealed; counters %+v; root's %+v", link, st.BytesOrigin, o.sealedTotal, o.ctr, o.rootCtr)
			}
			if c.sc.turn && o.srv.Allocations == 0 {
				t.Errorf("no TURN allocation although the server was offered: %+v", o.srv)
			}
			switch c.wantPath {
			case peer.PathTURN:
				if st.BytesP2P != 0 || st.BytesTURN == 0 {
					t.Errorf("bytes p2p %d turn %d, want 0 and > 0", st.BytesP2P, st.BytesTURN)
				}
				// Both legs of the relay carried what the child got over
				// the link: root's allocation to the child's, and that to
				// the child.
				if o.srv.RelayedBytesToPeer < st.BytesTURN || o.srv.RelayedBytesToClient < st.BytesTURN {
					t.Errorf("server relayed %d to peers, %d to clients; want >= %d each", o.srv.RelayedBytesToPeer, o.srv.RelayedBytesToClient, st.BytesTURN)
				}
				if len(st.Parents) != stripes || st.Parents[0].Path != peer.PathTURN {
					t.Errorf("parent health %+v, want path turn", st.Parents)
				}
			default:
				if st.BytesTURN != 0 || st.BytesP2P == 0 {
					t.Errorf("bytes p2p %d turn %d, want > 0 and 0", st.BytesP2P, st.BytesTURN)
				}
				// Connectivity checks may cross the relay; the media must not.
				if o.srv.RelayedBytesToPeer > o.sealedTotal/10 {
					t.Errorf("server relayed %d bytes on a direct link", o.srv.RelayedBytesToPeer)
				}
			}
			res[c.sc.name] = o
			t.Logf("%s: path %v, connect %v, publish->play p50 %v p95 %v max %v; relayed %d B to peers for %d B sealed",
				c.sc.name, o.paths, o.connect.Round(time.Millisecond), pct(o.latency, .5), pct(o.latency, .95),
				pct(o.latency, 1), o.srv.RelayedBytesToPeer, o.sealedTotal)
		})
	}
	d, r := res["offered"], res["relay-only"]
	if len(d.latency) == n && len(r.latency) == n {
		t.Logf("TURN adds p50 %v, p95 %v per hop (3 Mbit/s, %d KB chunks, loopback)",
			pct(r.latency, .5)-pct(d.latency, .5), pct(r.latency, .95)-pct(d.latency, .95), payload/1000)
		// The relay is two more loopback UDP hops and a user-space copy; a
		// median beyond a chunk's duration would mean queueing in the
		// relay. (The tails follow the machine's load, direct or not.)
		if p50 := pct(r.latency, .5); p50 > chunkDur {
			t.Errorf("publish->play p50 through TURN %v, want < %v", p50, chunkDur)
		}
	}
}

// TestTURNRefusals forces relay-only links that the server must refuse:
// expired and forged credentials, and a relay towards loopback with
// loopback not allowed. The link never opens, the server counts the
// refusal, and the child plays from the origin instead: direct, then TURN,
// then the origin.
func TestTURNRefusals(t *testing.T) {
	const n = 24
	cases := []struct {
		sc     scenario
		reason turnserver.Reason
	}{
		{scenario{name: "expired", creds: func(id string) (string, string) {
			return turnserver.Credentials(secret, id, -time.Minute, time.Now())
		}}, turnserver.ReasonExpired},
		{scenario{name: "wrong-secret", creds: func(id string) (string, string) {
			return turnserver.Credentials([]byte("not-the-turne2e-secret"), id, time.Hour, time.Now())
		}}, turnserver.ReasonAuth},
		{scenario{name: "loopback-refused", denyLoopback: true}, turnserver.ReasonPeerAddress},
	}
	for _, c := range cases {
		t.Run(c.sc.name, func(t *testing.T) {
			t.Parallel() // mostly waiting for the connect timeout
			c.sc.turn, c.sc.relayOnly = true, true
			o := run(t, c.sc, n)
			if o.linkErr == nil {
				t.Fatalf("link opened (paths %v); want it refused", o.paths)
			}
			if !errors.Is(o.linkErr, rtc.ErrConnectTimeout) && !strings.Contains(o.linkErr.Error(), "ICE failed") {
				t.Errorf("link error %v, want a connect timeout or ICE failure", o.linkErr)
			}
			if o.srv.Refusals[c.reason] == 0 {
				t.Errorf("server refusals %v, want %q counted", o.srv.Refusals, c.reason)
			}
			if c.reason == turnserver.ReasonPeerAddress && o.srv.Allocations == 0 {
				t.Errorf("no allocation: the refusal should be the peer address, not the credentials")
			}
			if c.reason != turnserver.ReasonPeerAddress && (o.srv.Allocations != 0 || o.srv.RelayedBytesToPeer != 0) {
				t.Errorf("refused credentials still allocated or relayed: %+v", o.srv)
			}
			// The origin covered: playback started at a keyframe and ran
			// to the end without gaps.
			st := o.stats
			if st.BytesOrigin == 0 || st.BytesP2P != 0 || st.BytesTURN != 0 {
				t.Errorf("bytes origin %d p2p %d turn %d, want origin only", st.BytesOrigin, st.BytesP2P, st.BytesTURN)
			}
			if len(o.played) < n/3 || o.played[len(o.played)-1] != n || o.wrong != 0 {
				t.Fatalf("from the origin played %v (%d wrong), want a run ending at %d", o.played, o.wrong, n)
			}
			for i := 1; i < len(o.played); i++ {
				if o.played[i] != o.played[i-1]+1 {
					t.Fatalf("origin playback has gaps: %v", o.played)
				}
			}
			t.Logf("%s: link %v; refusals %v; played %d..%d from the origin", c.sc.name, o.linkErr,
				o.srv.Refusals, o.played[0], o.played[len(o.played)-1])
		})
	}
}

// pct is the q-quantile of d (nearest rank; q = 1 is the maximum).
func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
