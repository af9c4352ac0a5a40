package peer_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/protocol"
)

const testStream = "peer-test"

// source is a broadcaster: it seals chunks of a fixed size, one per
// ChunkDur, with a keyframe every GOP chunks.
type source struct {
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	keys    *chunk.Keyring
	sealer  *chunk.Sealer
	epoch   uint32
	payload int
	gop     int
	dur     time.Duration
	eos     uint64 // sequence to flag end of stream (0: none)
	sealed  map[uint64][]byte
	plain   map[uint64][]byte
}

type detReader struct{ b byte }

func (d *detReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = d.b
		d.b = d.b*31 + 7
	}
	return len(p), nil
}

func newSource(tb testing.TB, payload int) *source {
	tb.Helper()
	seed := sha256.Sum256([]byte("peer test signing key"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	mk, err := chunk.NewMasterKey(7, &detReader{b: 3})
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := chunk.NewKeyring(mk)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := chunk.NewSealer(chunk.SealerConfig{Stream: testStream, PrivateKey: priv, Keys: keys, KeyID: 7})
	if err != nil {
		tb.Fatal(err)
	}
	return &source{priv: priv, pub: s.PublicKey(), keys: keys, sealer: s, epoch: 1000, payload: payload, gop: 8,
		dur: 250 * time.Millisecond, sealed: map[uint64][]byte{}, plain: map[uint64][]byte{}}
}

// chunk returns the sealed chunk seq (0 is the init segment), sealing it
// (and everything before it) on first use.
func (s *source) chunk(tb testing.TB, seq uint64) []byte {
	tb.Helper()
	if b, ok := s.sealed[seq]; ok {
		return b
	}
	if seq > 0 {
		s.chunk(tb, seq-1)
	}
	h := chunk.Header{Epoch: s.epoch, Seq: seq}
	n := s.payload
	if seq == 0 {
		h.Flags = chunk.FlagInit
		n = 700
	} else {
		h.MediaTime = uint64((time.Duration(seq-1) * s.dur).Microseconds())
		h.Duration = uint32(s.dur.Microseconds())
		if (seq-1)%uint64(s.gop) == 0 {
			h.Flags |= chunk.FlagKeyframe
		}
		if seq == s.eos {
			h.Flags |= chunk.FlagEndOfStream
		}
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(uint64(i)*13 + seq*101)
	}
	b, err := s.sealer.Seal(h, p)
	if err != nil {
		tb.Fatal(err)
	}
	s.sealed[seq], s.plain[seq] = b, p
	return b
}

// player records what an engine plays and checks every payload.
type player struct {
	src   *source
	clock func() time.Time
	epoch []uint32
	seqs  []uint64
	at    []time.Time
	wrong int
}

func (p *player) Init(epoch uint32, init []byte) {
	p.epoch = append(p.epoch, epoch)
	if !bytes.Equal(init, p.src.plain[0]) {
		p.wrong++
	}
}

func (p *player) Chunk(h chunk.Header, payload []byte) {
	p.seqs = append(p.seqs, h.Seq)
	p.at = append(p.at, p.clock())
	if !bytes.Equal(payload, p.src.plain[h.Seq]) {
		p.wrong++
	}
}

// swarm is a root and peers on a memnet.
type swarm struct {
	tb     testing.TB
	net    *memnet.Network
	src    *source
	origin *memnet.Origin
	// originLacks lists chunks never put on the origin (lost upstream).
	originLacks map[uint64]bool
	k           int
	root        *peer.Engine
	engines     map[peer.PeerID]*peer.Engine
	players     map[peer.PeerID]*player
	links       map[[2]peer.PeerID]*memnet.Link // [from,to] -> from's endpoint
	reports     []report
	pubAt       map[uint64]time.Time
	next        uint64
	stop        []func()
	cfg         func(*peer.Config)
	opts        memnet.LinkOptions
	// pairOpts overrides opts for the link between two peers (key with
	// the lower id first); wrap replaces a's endpoint towards b.
	pairOpts map[[2]peer.PeerID]memnet.LinkOptions
	wrap     func(a, b peer.PeerID, l *memnet.Link) peer.Link
	ends     map[[2]peer.PeerID]peer.Link
	// onReport, when set, sees every report as it is made (a tracker's
	// part in hostile-peer tests).
	onReport func(by peer.PeerID, r protocol.Report)
}

type report struct {
	by peer.PeerID
	r  protocol.Report
	at time.Time
}

const rootID peer.PeerID = 1

func newSwarm(tb testing.TB, ncfg memnet.Config, k, payload int, cfg func(*peer.Config)) *swarm {
	sw := &swarm{
		tb: tb, net: memnet.New(ncfg), src: newSource(tb, payload), k: k,
		engines: map[peer.PeerID]*peer.Engine{}, players: map[peer.PeerID]*player{},
		links: map[[2]peer.PeerID]*memnet.Link{}, ends: map[[2]peer.PeerID]peer.Link{},
		pairOpts: map[[2]peer.PeerID]memnet.LinkOptions{}, pubAt: map[uint64]time.Time{}, cfg: cfg,
	}
	sw.origin = memnet.NewOrigin(sw.net, 40*time.Millisecond)
	sw.root = sw.engine(rootID, true)
	sw.stop = append(sw.stop, sw.net.Every(50*time.Millisecond, func(now time.Time) {
		sw.root.Tick(now)
		// Every live engine, in id order (deterministic), killed ones
		// leaving gaps.
		ids := make([]peer.PeerID, 0, len(sw.engines))
		for id := range sw.engines {
			if id != rootID {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			sw.engines[id].Tick(now)
		}
	}))
	return sw
}

func logger(tb testing.TB) *slog.Logger {
	if os.Getenv("PEER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func (sw *swarm) engine(id peer.PeerID, root bool) *peer.Engine {
	c := peer.Config{
		Stream: testStream, PublicKey: sw.src.pub, Stripes: sw.k, Root: root,
		Clock: sw.net.Now, Logger: logger(sw.tb),
	}
	if !root {
		pl := &player{src: sw.src, clock: sw.net.Now}
		sw.players[id] = pl
		c.Player, c.Keys, c.Origin = pl, sw.src.keys, sw.origin
		c.Report = func(r protocol.Report) {
			sw.reports = append(sw.reports, report{id, r, sw.net.Now()})
			if sw.onReport != nil {
				sw.onReport(id, r)
			}
		}
	}
	if sw.cfg != nil {
		sw.cfg(&c)
	}
	e, err := peer.New(c)
	if err != nil {
		sw.tb.Fatal(err)
	}
	if !root {
		sw.engines[id] = e
	}
	return e
}

func (sw *swarm) get(id peer.PeerID) *peer.Engine {
	if id == rootID {
		return sw.root
	}
	return sw.engines[id]
}

// kill makes a peer vanish: its links close, its engine stops.
func (sw *swarm) kill(id peer.PeerID) {
	sw.net.Node(id).Kill()
	sw.engines[id].Close()
	delete(sw.engines, id)
	delete(sw.players, id)
}

// link returns a's endpoint towards b, connecting them on first use (one
// link per pair, as with one PeerConnection per neighbour pair).
func (sw *swarm) link(a, b peer.PeerID) peer.Link {
	if l := sw.ends[[2]peer.PeerID{a, b}]; l != nil {
		return l
	}
	opts := sw.opts
	if o, ok := sw.pairOpts[[2]peer.PeerID{min(a, b), max(a, b)}]; ok {
		opts = o
	}
	la, lb := sw.net.Connect(a, b, opts)
	sw.links[[2]peer.PeerID{a, b}], sw.links[[2]peer.PeerID{b, a}] = la, lb
	var ea, eb peer.Link = la, lb
	if sw.wrap != nil {
		ea, eb = sw.wrap(a, b, la), sw.wrap(b, a, lb)
	}
	sw.ends[[2]peer.PeerID{a, b}], sw.ends[[2]peer.PeerID{b, a}] = ea, eb
	la.OnMessage(func(m []byte) {
		if e := sw.get(a); e != nil {
			e.HandleMessage(b, ea, m)
		}
	})
	lb.OnMessage(func(m []byte) {
		if e := sw.get(b); e != nil {
			e.HandleMessage(a, eb, m)
		}
	})
	return ea
}

// edge makes parent feed child in stripe s.
func (sw *swarm) edge(s int, parent, child peer.PeerID) {
	sw.tb.Helper()
	lp, lc := sw.link(parent, child), sw.link(child, parent)
	if err := sw.get(parent).AddChild(s, child, lp); err != nil {
		sw.tb.Fatal(err)
	}
	if err := sw.get(child).SetParent(s, parent, lc); err != nil {
		sw.tb.Fatal(err)
	}
}

// addPeers creates peers first..first+n-1.
func (sw *swarm) addPeers(first peer.PeerID, n int) {
	for id := first; id < first+peer.PeerID(n); id++ {
		sw.engine(id, false)
	}
}

// tree builds stripe s: interior peers in BFS order under the root (root
// fanout rootFan, interior fanout fan), then leaves under the interior.
func (sw *swarm) tree(s int, interior, leaves []peer.PeerID, rootFan, fan int) map[peer.PeerID]peer.PeerID {
	parents := map[peer.PeerID]peer.PeerID{}
	type slot struct {
		id   peer.PeerID
		room int
	}
	q := []slot{{rootID, rootFan}}
	for _, c := range append(append([]peer.PeerID{}, interior...), leaves...) {
		for q[0].room == 0 {
			q = q[1:]
		}
		sw.edge(s, q[0].id, c)
		parents[c] = q[0].id
		q[0].room--
		if len(parents) <= len(interior) {
			q = append(q, slot{c, fan})
		}
	}
	return parents
}

// publish starts the broadcaster: init at once, then a chunk every
// ChunkDur, up to last.
func (sw *swarm) publish(last uint64) {
	sw.src.eos = last
	pub := func() {
		seq := sw.next
		b := sw.src.chunk(sw.tb, seq)
		if !sw.originLacks[seq] {
			if err := sw.origin.Put(b); err != nil {
				sw.tb.Fatal(err)
			}
		}
		sw.pubAt[seq] = sw.net.Now()
		if err := sw.root.Publish(b); err != nil {
			sw.tb.Fatal(err)
		}
		sw.next++
	}
	pub()
	var stop func()
	stop = sw.net.Every(sw.src.dur, func(time.Time) {
		if sw.next > last {
			stop()
			return
		}
		pub()
	})
	sw.stop = append(sw.stop, stop)
}

// checkPlayed asserts that peer id played from..to in order with correct
// payloads and returns the per-chunk latency from publish to play.
func (sw *swarm) checkPlayed(id peer.PeerID, from, to uint64) []time.Duration {
	sw.tb.Helper()
	p := sw.players[id]
	if p.wrong != 0 {
		sw.tb.Errorf("peer %d: %d wrong payloads", id, p.wrong)
	}
	if len(p.epoch) != 1 {
		sw.tb.Errorf("peer %d: %d inits", id, len(p.epoch))
	}
	var lat []time.Duration
	want := from
	for i, s := range p.seqs {
		if s < from || s > to {
			continue
		}
		if s != want {
			sw.tb.Errorf("peer %d: played %d, want %d (played %v)", id, s, want, p.seqs)
			return nil
		}
		lat = append(lat, p.at[i].Sub(sw.pubAt[s]))
		want++
	}
	if want != to+1 {
		sw.tb.Errorf("peer %d: played up to %d, want %d", id, want-1, to)
	}
	return lat
}

func ids(first, n int) []peer.PeerID {
	out := make([]peer.PeerID, n)
	for i := range out {
		out[i] = peer.PeerID(first + i)
	}
	return out
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (sw *swarm) close() {
	for _, f := range sw.stop {
		f()
	}
	for _, e := range sw.engines {
		e.Close()
	}
	sw.root.Close()
}

func (sw *swarm) String() string {
	return fmt.Sprintf("swarm{%d peers, t=%v}", len(sw.engines), sw.net.Now())
}
