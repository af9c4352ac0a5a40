package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
	"testing"
	"time"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
)

// twoStripeTree builds 50 peers: 2..26 interior in stripe 0 and leaves in
// stripe 1, 27..51 the other way round.
func twoStripeTree(sw *swarm) (map[peer.PeerID]peer.PeerID, map[peer.PeerID]peer.PeerID) {
	a, b := ids(2, 25), ids(27, 25)
	sw.addPeers(2, 50)
	p0 := sw.tree(0, a, b, 4, 3)
	p1 := sw.tree(1, b, a, 4, 3)
	return p0, p1
}

func TestTreeDelivery(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 1, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, UploadBps: 50e6}, 2, 90_000, nil)
	defer sw.close()
	twoStripeTree(sw)
	const last = 40
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 3*time.Second)

	var all []time.Duration
	for id := range sw.engines {
		all = append(all, sw.checkPlayed(id, 1, last)...)
		c := sw.engines[id].Counters()
		if c.Stalls != 0 || c.BadChunks != 0 || c.RepairedOrigin != 0 {
			t.Errorf("peer %d: %+v", id, c)
		}
	}
	if len(sw.reports) != 0 {
		t.Errorf("reports: %v", sw.reports)
	}
	if sw.origin.Requests != 0 {
		t.Errorf("origin served %d requests, want 0", sw.origin.Requests)
	}
	t.Logf("publish->play latency p50 %v p95 %v max %v over %d plays", percentile(all, .5), percentile(all, .95), percentile(all, 1), len(all))
}

// corrupter flips one bit in every piece of chunk seq it sends.
type corrupter struct {
	*memnet.Link
	seq uint64
}

func (c *corrupter) Send(m []byte) error {
	if p, err := chunk.ParsePiece(m); err == nil && p.Seq == c.seq && p.Index == p.Count-1 {
		m = bytes.Clone(m)
		m[len(m)-80] ^= 0x10 // inside the ciphertext
	}
	return c.Link.Send(m)
}

func TestForgedPiece(t *testing.T) {
	const bad, evil = 10, peer.PeerID(2)
	sw := newSwarm(t, memnet.Config{Seed: 2, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		if a == evil {
			return &corrupter{Link: l, seq: bad}
		}
		return l
	}
	p0, _ := twoStripeTree(sw)
	const last = 24
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)

	children := map[peer.PeerID]bool{}
	subtree := map[peer.PeerID]bool{evil: true}
	for changed := true; changed; {
		changed = false
		for c, p := range p0 {
			if subtree[p] && !subtree[c] {
				subtree[c], changed = true, true
				children[c] = p == evil
			}
		}
	}
	if len(subtree) < 5 {
		t.Fatalf("subtree of %d too small: %v", evil, subtree)
	}
	for id := range sw.engines {
		sw.checkPlayed(id, 1, last) // includes: no wrong payload played
		c := sw.engines[id].Counters()
		if c.Stalls != 0 {
			t.Errorf("peer %d stalled: %+v", id, c)
		}
		// Below the forger's children the forged pieces may never
		// arrive: a child that finds the forgery drops what of it is
		// still queued and sends the notice instead.
		if subtree[id] && id != evil && c.BadChunks+c.Notices == 0 {
			t.Errorf("peer %d in the forged subtree saw neither the bad chunk nor a notice", id)
		}
		if !subtree[id] && c.BadChunks != 0 {
			t.Errorf("peer %d outside the subtree saw %d bad chunks", id, c.BadChunks)
		}
	}
	reporters := map[peer.PeerID]bool{}
	for _, r := range sw.reports {
		if r.r.Kind != protocol.ReportBadChunk || r.r.Peer != evil || !children[r.by] {
			t.Errorf("unexpected report %+v by %d", r.r, r.by)
			continue
		}
		if _, err := chunk.Verify(sw.src.pub, testStream, r.r.Chunk); err == nil {
			t.Errorf("report by %d carries a chunk that verifies", r.by)
		}
		if h, err := chunk.ParseHeader(r.r.Chunk); err != nil || h.Seq != bad {
			t.Errorf("report by %d carries chunk %v (%v), want seq %d", r.by, h, err, bad)
		}
		reporters[r.by] = true
	}
	for c, direct := range children {
		if direct && !reporters[c] {
			t.Errorf("child %d of the forger did not report it", c)
		}
	}
	t.Logf("forger %d: subtree %d peers, %d direct children reported it", evil, len(subtree)-1, len(reporters))
}

func TestKilledInteriorPeer(t *testing.T) {
	const victim = peer.PeerID(3)
	sw := newSwarm(t, memnet.Config{Seed: 3, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	p0, _ := twoStripeTree(sw)
	const last = 40
	sw.publish(last)
	sw.net.RunFor(3 * time.Second)
	sw.kill(victim)
	killed := sw.net.Now()
	sw.net.RunFor((last-12)*250*time.Millisecond + 2*time.Second)

	orphans := 0
	var margin []time.Duration // how early before its deadline each chunk played
	for id, e := range sw.engines {
		sw.checkPlayed(id, 1, last)
		c := e.Counters()
		if c.Stalls != 0 {
			t.Errorf("peer %d stalled %d times", id, c.Stalls)
		}
		if p0[id] == victim {
			orphans++
			if c.RepairedPeer+c.RepairedOrigin == 0 {
				t.Errorf("orphan %d repaired nothing: %+v", id, c)
			}
			lat := sw.checkPlayed(id, 13, last)
			for _, l := range lat {
				margin = append(margin, time.Second-l)
			}
		}
	}
	// The orphans probe their quiet parent and report it once it answers
	// no ping (liveness.go), well before SilentAfter (3 s).
	reported := map[peer.PeerID]time.Duration{}
	for _, r := range sw.reports {
		if r.r.Kind != protocol.ReportSilent || r.r.Peer != victim {
			t.Errorf("unexpected report %+v by %d", r.r, r.by)
			continue
		}
		if _, ok := reported[r.by]; !ok {
			reported[r.by] = r.at.Sub(killed)
		}
	}
	if orphans == 0 {
		t.Fatal("victim had no children")
	}
	if len(reported) != orphans {
		t.Errorf("%d of %d orphans reported the victim", len(reported), orphans)
	}
	for id, d := range reported {
		if d > 2*time.Second {
			t.Errorf("orphan %d reported the victim %v after it died, want ≤ 2 s", id, d)
		}
	}
	t.Logf("orphans reported the victim after %v", reported)
	t.Logf("%d orphans; publish->play latency after the loss p50 %v p95 %v max %v (deadline about 1 s)",
		orphans, time.Second-percentile(margin, .5), time.Second-percentile(margin, .05), time.Second-percentile(margin, 0))
}

func TestReplayIgnored(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 4, Latency: 5 * time.Millisecond}, 1, 30_000, func(c *peer.Config) {
		c.Window = 3 * time.Second
	})
	defer sw.close()
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	const last = 30
	sw.publish(last)
	sw.net.RunFor(25 * 250 * time.Millisecond)

	before2, before3 := sw.engines[2].Counters(), sw.engines[3].Counters()
	rootEnd := sw.links[[2]peer.PeerID{rootID, 2}]
	replay := func(seq uint64) {
		ps, err := chunk.Split(sw.src.chunk(t, seq), chunk.MaxMessageSize)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if err := rootEnd.Send(chunk.AppendPiece(nil, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	replay(20) // recent: a duplicate
	replay(2)  // older than the 3 s window: stale
	sw.net.RunFor(6 * 250 * time.Millisecond)
	after2, after3 := sw.engines[2].Counters(), sw.engines[3].Counters()
	if after2.Duplicate == before2.Duplicate || after2.Stale == before2.Stale {
		t.Errorf("replays not recognised: before %+v after %+v", before2, after2)
	}
	if after3.Duplicate != before3.Duplicate || after3.Stale != before3.Stale {
		t.Errorf("replayed pieces were forwarded: before %+v after %+v", before3, after3)
	}
	sw.net.RunFor(2 * time.Second)
	sw.checkPlayed(2, 1, last)
	sw.checkPlayed(3, 1, last)
}

// slowRun runs root -> P -> 5 children and returns the publish->play
// latencies of children 3..6 and the reports; child 7 is slow when slow.
func slowRun(t *testing.T, slow bool) ([]time.Duration, []report, peer.Counters) {
	sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 10 * time.Millisecond, Jitter: 2 * time.Millisecond, UploadBps: 100e6}, 1, 90_000, nil)
	defer sw.close()
	if slow {
		sw.pairOpts[[2]peer.PeerID{2, 7}] = memnet.LinkOptions{Bps: 500e3, HighWater: 128 << 10}
	}
	sw.addPeers(2, 6)
	sw.edge(0, rootID, 2)
	for c := peer.PeerID(3); c <= 7; c++ {
		sw.edge(0, 2, c)
	}
	const last = 40
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)
	var lat []time.Duration
	for c := peer.PeerID(3); c <= 6; c++ {
		lat = append(lat, sw.checkPlayed(c, 1, last)...)
		if s := sw.engines[c].Counters().Stalls; s != 0 {
			t.Errorf("fast child %d stalled %d times", c, s)
		}
	}
	return lat, sw.reports, sw.engines[2].Counters()
}

func TestSlowChildSkipped(t *testing.T) {
	base, _, _ := slowRun(t, false)
	lat, reports, pc := slowRun(t, true)
	b95, s95 := percentile(base, .95), percentile(lat, .95)
	t.Logf("fast children publish->play p50/p95: %v/%v without a slow sibling, %v/%v with one (%d skips)",
		percentile(base, .5), b95, percentile(lat, .5), s95, pc.Skips)
	// The slow sibling's link holds up to the scheduler's per-link cap,
	// which counts against the uplink budget: the others may wait up to
	// one budget's drain (known regression of the uplink scheduler, 2026-12:
	// ~+50 ms at p95; it was +0 with every piece handed to the links).
	if s95 > b95+75*time.Millisecond {
		t.Errorf("a slow sibling delayed the others: p95 %v -> %v", b95, s95)
	}
	if pc.Skips == 0 {
		t.Error("the slow child was never skipped")
	}
	found := false
	for _, r := range reports {
		if r.by == 2 && r.r.Kind == protocol.ReportSlow && r.r.Peer == 7 {
			found = true
		}
	}
	if !found {
		t.Errorf("slow child not reported: %v", reports)
	}
}

func TestDeterministic(t *testing.T) {
	run := func() string {
		sw := newSwarm(t, memnet.Config{Seed: 9, Latency: 10 * time.Millisecond, Jitter: 8 * time.Millisecond, Loss: 0.002, Unordered: true}, 2, 40_000, nil)
		defer sw.close()
		twoStripeTree(sw)
		sw.publish(16)
		sw.net.RunFor(3 * time.Second)
		sw.kill(5)
		sw.net.RunFor(3 * time.Second)
		var b strings.Builder
		fmt.Fprintf(&b, "%d %d %d|", sw.net.Delivered, sw.net.Dropped, sw.origin.Requests)
		for id := peer.PeerID(2); id <= 51; id++ {
			if p := sw.players[id]; p != nil {
				fmt.Fprintf(&b, "%d:%v%v|", id, p.seqs, p.at)
			}
		}
		return b.String()
	}
	a, b := run(), run()
	if a != b {
		t.Fatal("two runs with the same seed differ")
	}
}

// A joiner takes its first chunks from its parents' catch-up burst, at a
// keyframe, without the origin. Late in the stream (past chunk 64, 16 s)
// is the regression case: with no media chunk held yet, every catch-up
// piece looked more than MaxAhead past "newest = 0" and was dropped.
func TestJoinMidStream(t *testing.T) {
	for _, tc := range []struct {
		name       string
		last       uint64
		joinAt     time.Duration
		joinedSeqs uint64 // chunks published before the join, roughly
	}{
		{"early", 40, 5 * time.Second, 20},
		{"past chunk 64", 100, 20 * time.Second, 80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := newSwarm(t, memnet.Config{Seed: 6, Latency: 15 * time.Millisecond}, 2, 60_000, nil)
			defer sw.close()
			twoStripeTree(sw)
			sw.publish(tc.last)
			sw.net.RunFor(tc.joinAt + 100*time.Millisecond)
			joined := sw.net.Now()
			sw.engine(60, false)
			sw.edge(0, 20, 60) // interior in stripe 0
			sw.edge(1, 40, 60) // interior in stripe 1
			sw.net.RunFor(time.Duration(tc.last-tc.joinedSeqs)*250*time.Millisecond + 2*time.Second)

			p := sw.players[60]
			if len(p.seqs) == 0 {
				t.Fatal("joiner played nothing")
			}
			first := p.seqs[0]
			sw.checkPlayed(60, first, tc.last)
			if (first-1)%8 != 0 {
				t.Errorf("joiner started at %d, not a keyframe", first)
			}
			wait := p.at[0].Sub(joined)
			c := sw.engines[60].Counters()
			if sw.origin.Requests != 0 || c.Stalls != 0 {
				t.Errorf("joiner used the origin (%d requests) or stalled: %+v", sw.origin.Requests, c)
			}
			if c.FirstPieceAt.IsZero() || c.FirstFromOrigin || c.FirstChunkAt.Before(c.FirstPieceAt) || !c.OriginLiveAt.IsZero() {
				t.Errorf("join times: first piece %v, first chunk %v (origin %v), live edge asked %v",
					c.FirstPieceAt, c.FirstChunkAt, c.FirstFromOrigin, c.OriginLiveAt)
			}
			if wait > 500*time.Millisecond {
				t.Errorf("join to first chunk took %v", wait)
			}
			t.Logf("join to first chunk %v (chunk %d, published %v before the join)", wait, first, joined.Sub(sw.pubAt[first]))
		})
	}
}

func TestOriginFedStripe(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 7, Latency: 10 * time.Millisecond}, 2, 30_000, nil)
	defer sw.close()
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(1, rootID, 2)
	sw.edge(0, 2, 3)
	if err := sw.engines[3].SetParent(1, 0, nil); err != nil { // no room in stripe 1
		t.Fatal(err)
	}
	const last = 24
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)
	sw.checkPlayed(3, 1, last)
	c := sw.engines[3].Counters()
	if c.Stalls != 0 || c.RepairedOrigin < last/2-1 {
		t.Errorf("origin-fed stripe: %+v", c)
	}
}

func TestStartFromOrigin(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 8, Latency: 10 * time.Millisecond}, 2, 30_000, nil)
	defer sw.close()
	const last = 40
	sw.publish(last)
	sw.net.RunFor(4 * time.Second)
	sw.engine(2, false)
	for s := range 2 {
		if err := sw.engines[2].SetParent(s, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	sw.net.RunFor((last-16)*250*time.Millisecond + 2*time.Second)
	p := sw.players[2]
	if len(p.seqs) == 0 {
		t.Fatal("played nothing")
	}
	sw.checkPlayed(2, p.seqs[0], last)
	c := sw.engines[2].Counters()
	if c.OriginStarts != 1 || c.Stalls != 0 {
		t.Errorf("%+v", c)
	}
	// The join timeline: the live edge asked for, then the first chunk,
	// from the origin, before playback; no parent, so no piece.
	if c.OriginLiveAt.IsZero() || !c.FirstFromOrigin || c.FirstChunkAt.Before(c.OriginLiveAt) ||
		c.StartedAt.Before(c.FirstChunkAt) || !c.FirstPieceAt.IsZero() {
		t.Errorf("join times: live %v, first chunk %v (origin %v), started %v, first piece %v",
			c.OriginLiveAt, c.FirstChunkAt, c.FirstFromOrigin, c.StartedAt, c.FirstPieceAt)
	}
}

// TestOriginLacksAChunk: a peer fed by the origin alone, which never got
// one chunk, skips that chunk and plays on.
func TestOriginLacksAChunk(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 8, Latency: 10 * time.Millisecond}, 1, 30_000, nil)
	defer sw.close()
	const last, lost = 48, 26
	sw.originLacks = map[uint64]bool{lost: true}
	sw.publish(last)
	sw.net.RunFor(4 * time.Second)
	sw.engine(2, false)
	for s := range 1 {
		if err := sw.engines[2].SetParent(s, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	sw.net.RunFor((last-16)*250*time.Millisecond + 3*time.Second)
	p := sw.players[2]
	if len(p.seqs) == 0 {
		t.Fatal("played nothing")
	}
	after := 0
	for _, q := range p.seqs {
		if q > lost {
			after++
		}
	}
	c := sw.engines[2].Counters()
	t.Logf("played %d chunks (%d after the lost one, first %d, last %d), stalls %d", len(p.seqs), after, p.seqs[0], p.seqs[len(p.seqs)-1], c.Stalls)
	if p.seqs[len(p.seqs)-1] != last || after < last-lost-1 {
		t.Errorf("played up to %d, %d chunks after the one the origin lacks; want all %d after it", p.seqs[len(p.seqs)-1], after, last-lost)
	}
}

// TestLossyLinks loses 5 % of all messages (an unreliable data channel
// losing pieces): repair must keep every peer stall-free.
func TestLossyLinks(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 10, Latency: 15 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.05, Unordered: true}, 2, 90_000, nil)
	defer sw.close()
	twoStripeTree(sw)
	const last = 40
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 3*time.Second)
	var c peer.Counters
	var lat []time.Duration
	for id, e := range sw.engines {
		lat = append(lat, sw.checkPlayed(id, 1, last)...)
		ec := e.Counters()
		if ec.Stalls != 0 {
			t.Errorf("peer %d stalled %d times", id, ec.Stalls)
		}
		c.WantsSent += ec.WantsSent
		c.RepairedOrigin += ec.RepairedOrigin
		c.RepairedPeer += ec.RepairedPeer
	}
	t.Logf("5%% message loss: %d wants, %d chunks completed by peers' repair, %d from the origin; publish->play p50 %v p95 %v max %v",
		c.WantsSent, c.RepairedPeer, c.RepairedOrigin, percentile(lat, .5), percentile(lat, .95), percentile(lat, 1))
}

// flooder sends 20 junk pieces with every message it forwards.
type flooder struct {
	*memnet.Link
	seq uint64
}

func (f *flooder) Send(m []byte) error {
	if p, err := chunk.ParsePiece(m); err == nil && p.Seq > 0 {
		for i := range 20 {
			junk := chunk.AppendPiece(nil, chunk.Piece{Epoch: p.Epoch, Seq: p.Seq + 2, Index: uint16(1 + i%4), Count: 6, Data: make([]byte, chunk.DefaultPieceData)})
			_ = f.Link.Send(junk)
		}
	}
	return f.Link.Send(m)
}

func TestFloodingParent(t *testing.T) {
	const evil, victim = peer.PeerID(2), peer.PeerID(3)
	sw := newSwarm(t, memnet.Config{Seed: 12, Latency: 10 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		if a == evil && b == victim {
			return &flooder{Link: l}
		}
		return l
	}
	sw.addPeers(2, 3)
	sw.edge(0, rootID, evil)
	sw.edge(1, rootID, evil)
	sw.edge(0, evil, victim)
	sw.edge(1, rootID, victim)
	sw.edge(0, victim, 4)
	sw.edge(1, rootID, 4)
	const last = 40
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)
	c := sw.engines[victim].Counters()
	if c.Flooded == 0 {
		t.Errorf("flood not detected: %+v", c)
	}
	for _, id := range []peer.PeerID{victim, 4} {
		sw.checkPlayed(id, 1, last)
		if s := sw.engines[id].Counters().Stalls; s != 0 {
			t.Errorf("peer %d stalled %d times", id, s)
		}
	}
	t.Logf("victim dropped %d messages over the flooder's budget, repaired %d chunks from peers and %d from the origin", c.Flooded, c.RepairedPeer, c.RepairedOrigin)
}

func TestStats(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 13, Latency: 20 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(1, rootID, 2)
	sw.edge(0, 2, 3)
	sw.edge(1, rootID, 3)
	sw.publish(40)
	sw.net.RunFor(5 * time.Second)
	_ = sw.engines[2].Stats()
	sw.net.RunFor(2 * time.Second)
	s := sw.engines[2].Stats()
	if s.BytesP2P == 0 || s.BytesUp == 0 || s.BytesOrigin != 0 || s.Children != 1 || len(s.Parents) != 2 {
		t.Errorf("stats %+v", s)
	}
	// Half of a 1.9 Mbit/s stream goes on to peer 3.
	if s.UploadKbps < 800 || s.UploadKbps > 1100 {
		t.Errorf("upload %d kbit/s, want about 970", s.UploadKbps)
	}
	if s.HopLatencyMS < 19 || s.HopLatencyMS > 25 {
		t.Errorf("hop latency %d ms, want about 20", s.HopLatencyMS)
	}
	if s.BufferMS < 500 || s.BufferMS > 1300 || s.BehindLiveMS < 700 || s.BehindLiveMS > 1500 {
		t.Errorf("buffer %d ms, behind live %d ms, want about 1 s", s.BufferMS, s.BehindLiveMS)
	}
	if s.LastSeq < 27 || s.Parents[0].Path != peer.PathMem || s.Parents[0].Kbps == 0 {
		t.Errorf("stats %+v", s)
	}
	if cs := sw.engines[2].Children(); len(cs) != 1 || cs[0].Peer != 3 || cs[0].BytesUp == 0 {
		t.Errorf("children %+v", cs)
	}
}

// blockingOrigin long-polls: Fetch waits until the chunk exists or ctx ends.
type blockingOrigin struct {
	mu     sync.Mutex
	chunks map[uint64][]byte
	cond   chan struct{}
	live   peer.LiveEdge
}

func (o *blockingOrigin) put(seq uint64, b []byte, key bool) {
	o.mu.Lock()
	o.chunks[seq] = b
	if seq > 0 {
		o.live.Epoch, o.live.Seq = 1000, seq
		if key {
			o.live.Keyframe = seq
		}
	}
	close(o.cond)
	o.cond = make(chan struct{})
	o.mu.Unlock()
}

func (o *blockingOrigin) Fetch(ctx context.Context, epoch uint32, seq uint64) ([]byte, error) {
	for {
		o.mu.Lock()
		b, c := o.chunks[seq], o.cond
		o.mu.Unlock()
		if b != nil {
			return b, nil
		}
		select {
		case <-c:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (o *blockingOrigin) Live(context.Context) (peer.LiveEdge, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live.Seq == 0 {
		return o.live, errors.New("nothing yet")
	}
	return o.live, nil
}

// TestBlockingOrigin runs an origin-only viewer on the real clock with a
// long-polling origin (the engine's own goroutines), and checks Close
// waits for a fetch that is still blocked.
func TestBlockingOrigin(t *testing.T) {
	src := newSource(t, 5000)
	src.dur = 50 * time.Millisecond
	o := &blockingOrigin{chunks: map[uint64][]byte{}, cond: make(chan struct{})}
	pl := &syncPlayer{}
	e, err := peer.New(peer.Config{Stream: testStream, PublicKey: src.pub, Stripes: 2, Keys: src.keys, Origin: o, Player: pl,
		PlayoutDelay: 300 * time.Millisecond, OriginLead: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for s := range 2 {
		_ = e.SetParent(s, 0, nil)
	}
	const last = 30
	for seq := uint64(0); seq <= last; seq++ {
		o.put(seq, src.chunk(t, seq), seq > 0 && (seq-1)%8 == 0)
		time.Sleep(src.dur)
		e.Tick(time.Now())
	}
	for i := 0; i < 40 && pl.last() < last; i++ {
		time.Sleep(20 * time.Millisecond)
		e.Tick(time.Now())
	}
	seqs := pl.get()
	if len(seqs) == 0 || seqs[len(seqs)-1] != last {
		t.Fatalf("played %v", seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("played %v", seqs)
		}
	}
	// A fetch for a chunk that never comes blocks until Close.
	time.Sleep(300 * time.Millisecond)
	e.Tick(time.Now())
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}

type syncPlayer struct {
	mu   sync.Mutex
	seqs []uint64
}

func (p *syncPlayer) Init(uint32, []byte) {}
func (p *syncPlayer) Chunk(h chunk.Header, _ []byte) {
	p.mu.Lock()
	p.seqs = append(p.seqs, h.Seq)
	p.mu.Unlock()
}
func (p *syncPlayer) get() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.seqs...)
}
func (p *syncPlayer) last() uint64 {
	s := p.get()
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func TestNoticeFromChildIgnored(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 14, Latency: 10 * time.Millisecond}, 1, 30_000, nil)
	defer sw.close()
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	sw.publish(20)
	sw.net.RunFor(time.Second)
	child := sw.links[[2]peer.PeerID{3, 2}]
	for seq := uint64(6); seq < 20; seq++ {
		m := []byte{'B', 1, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0, byte(seq)} // epoch 1000
		if err := child.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	sw.net.RunFor(6 * time.Second)
	c := sw.engines[2].Counters()
	if c.Notices != 0 || c.RepairedOrigin != 0 || c.WantsSent != 0 {
		t.Errorf("a child's notices diverted its parent: %+v", c)
	}
	sw.checkPlayed(2, 1, 20)
}

// With one stripe, moving a peer from its parent to the origin must not
// cost it its sense of time: the parent's arrivals were its only live-edge
// estimate (regression: the peer stopped fetching and playing, and counted
// no stalls either).
func TestSingleStripeParentToOrigin(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 11, Latency: 10 * time.Millisecond}, 1, 30_000, nil)
	defer sw.close()
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	const last = 32
	sw.publish(last)
	sw.net.After(2*time.Second, func() {
		// The tracker moved 3 away from 2 (evicted) with no room
		// elsewhere: the origin feeds it.
		sw.kill(2)
		if err := sw.engines[3].SetParent(0, 0, nil); err != nil {
			t.Error(err)
		}
	})
	sw.net.RunFor(last*250*time.Millisecond + 3*time.Second)
	sw.checkPlayed(3, 1, last)
	if c := sw.engines[3].Counters(); c.RepairedOrigin == 0 {
		t.Errorf("nothing came from the origin after the switch: %+v", c)
	}
}

// dropLast loses the last piece of every chunk it carries, repairs included.
type dropLast struct{ *memnet.Link }

func (d dropLast) Send(m []byte) error {
	if p, err := chunk.ParsePiece(m); err == nil && p.Seq > 0 && p.Index == p.Count-1 {
		return nil
	}
	return d.Link.Send(m)
}

// TestRangeRescue: a chunk the mesh delivered all but one piece of is
// completed with a range request for that piece, not by fetching it whole.
func TestRangeRescue(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 21, Latency: 10 * time.Millisecond}, 1, 60_000, nil)
	defer sw.close()
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		if a == 2 && b == 3 {
			return dropLast{l}
		}
		return l
	}
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	const last = 24
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 3*time.Second)
	sw.checkPlayed(3, 1, last)
	c := sw.get(3).Counters()
	if c.Stalls != 0 || c.RepairedOrigin < last/2 {
		t.Fatalf("child: %d stalls, %d chunks completed from the origin, want none and most of %d", c.Stalls, c.RepairedOrigin, last)
	}
	whole := uint64(len(sw.src.chunk(t, 5)))
	if sw.origin.RangeRequests < c.RepairedOrigin/2 {
		t.Errorf("%d range requests for %d rescues", sw.origin.RangeRequests, c.RepairedOrigin)
	}
	if per := sw.origin.BytesServed / max(sw.origin.Requests, 1); per > whole/2 {
		t.Errorf("the origin served %d bytes per request for %d-byte chunks missing one piece", per, whole)
	}
	t.Logf("%d rescues, %d range requests, %d bytes served (%d-byte chunks)", c.RepairedOrigin, sw.origin.RangeRequests, sw.origin.BytesServed, whole)
}

// TestReparentNoDuplicates: a child moved to a new parent mid-stream says
// in its subscribe what it holds, so the new parent's catch-up burst (the
// init segment and the chunks since the keyframe) leaves it out: it used
// to arrive in full, every byte a duplicate.
func TestReparentNoDuplicates(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 10 * time.Millisecond}, 1, 30_000, nil)
	defer sw.close()
	sw.addPeers(2, 3)
	sw.edge(0, rootID, 2)
	sw.edge(0, rootID, 3)
	sw.edge(0, 2, 4)
	const last = 40
	sw.publish(last)
	// Mid-GOP (8 chunks of 250 ms): the burst would hold several chunks.
	sw.net.RunFor(4*time.Second + 900*time.Millisecond)
	before := sw.get(4).Traffic().Dup
	if err := sw.get(2).RemoveChild(0, 4); err != nil {
		t.Fatal(err)
	}
	sw.edge(0, 3, 4)
	sw.net.RunFor(last*250*time.Millisecond - 4*time.Second + 2*time.Second)
	sw.checkPlayed(4, 1, last)
	dup := sw.get(4).Traffic().Dup - before
	if dup > 0 {
		t.Errorf("the re-parented child received %d duplicate bytes (chunks of %d bytes)", dup, len(sw.src.chunk(t, 3)))
	}
}

// TestUplinkMeasuredUnderLoad: a relay whose children want more than its
// uplink carries measures that uplink (the tracker sizes its slots from
// it). Before, the drain between pumps was counted only below the per-link
// cap, so bytes above it left uncounted and a 3 Mbit/s uplink read about
// 2 Mbit/s: the tracker took slots from every such relay.
func TestUplinkMeasuredUnderLoad(t *testing.T) {
	for _, upload := range []float64{3e6, 8e6} {
		t.Run(fmt.Sprintf("%.0f Mbit/s", upload/1e6), func(t *testing.T) {
			sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 20 * time.Millisecond}, 1, 60_000, nil) // 1.9 Mbit/s
			defer sw.close()
			sw.addPeers(2, 7)
			sw.net.Node(2).SetUpload(upload)
			sw.edge(0, rootID, 2)
			for c := peer.PeerID(3); c <= 8; c++ {
				sw.edge(0, 2, c) // six children: 11.5 Mbit/s wanted
			}
			sw.publish(60)
			sw.net.RunFor(8 * time.Second)
			s := sw.engines[2].Stats()
			want := int(upload / 1000)
			t.Logf("uplink %d kbit/s busy %v", s.UplinkKbps, s.UplinkBusy)
			if !s.UplinkBusy || s.UplinkKbps < want*93/100 || s.UplinkKbps > want*101/100 {
				t.Errorf("uplink %d kbit/s (busy %v), want %d within -7 %%", s.UplinkKbps, s.UplinkBusy, want)
			}
		})
	}
}

// TestUplinkMeasuredWhenIdle: a strong uplink feeding few children idles
// between chunks. Its measured rate was the window's average, what it sent
// (here 3.8 of 40 Mbit/s), so its slots never grew past what it already
// had and the overlay kept it deep in the trees (bench/analysis.md). The
// drain while the links held bytes reads it within a factor of two.
func TestUplinkMeasuredWhenIdle(t *testing.T) {
	const upload = 40e6
	sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 20 * time.Millisecond}, 1, 60_000, nil) // 1.9 Mbit/s
	defer sw.close()
	sw.addPeers(2, 3)
	sw.net.Node(2).SetUpload(upload)
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	sw.edge(0, 2, 4)
	sw.publish(60)
	sw.net.RunFor(8 * time.Second)
	s := sw.engines[2].Stats()
	t.Logf("uplink %d kbit/s busy %v", s.UplinkKbps, s.UplinkBusy)
	if want := int(upload / 1000); s.UplinkKbps < want/2 || s.UplinkKbps > want*101/100 {
		t.Errorf("uplink %d kbit/s, want %d within a factor of two", s.UplinkKbps, want)
	}
	if s.UplinkBusy {
		t.Error("an uplink that idles reads as backed up")
	}
}

// TestUplinkCeiling: an engine with an operator's ceiling
// (Config.MaxUplinkKbps) never reports an uplink above it, however fast
// its links drain, whether they backed up (a measure) or ran dry (a lower
// bound), and says the uplink is busy once the measure reaches it, so the
// tracker sizes its slots by the ceiling and does not probe past it. Below
// the ceiling the measure is reported as it is. Before, the measure went
// to the tracker as it was: a native relay on loopback reported 67–94
// Mbit/s, and its slots followed.
func TestUplinkCeiling(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upload   float64
		children int
		ceiling  int // kbit/s
		want     int // kbit/s; 0: the measure as it is
	}{
		{"backed up over the ceiling", 8e6, 6, 4_000, 4_000},
		{"idle over the ceiling", 40e6, 2, 5_000, 5_000},
		{"under the ceiling", 3e6, 6, 100_000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 20 * time.Millisecond}, 1, 60_000, func(c *peer.Config) { c.MaxUplinkKbps = tc.ceiling }) // 1.9 Mbit/s
			defer sw.close()
			sw.addPeers(2, 1+tc.children)
			sw.net.Node(2).SetUpload(tc.upload)
			sw.edge(0, rootID, 2)
			for c := peer.PeerID(3); c < peer.PeerID(3+tc.children); c++ {
				sw.edge(0, 2, c)
			}
			sw.publish(60)
			up := 0 // kbit/s sent in the last second
			for range 8 {
				sw.net.RunFor(time.Second)
				s := sw.engines[2].Stats()
				t.Logf("uplink %d kbit/s busy %v, sent %d kbit/s", s.UplinkKbps, s.UplinkBusy, s.UploadKbps)
				if s.UplinkKbps > tc.ceiling {
					t.Fatalf("reported an uplink of %d kbit/s over a ceiling of %d", s.UplinkKbps, tc.ceiling)
				}
				up = s.UploadKbps
			}
			s := sw.engines[2].Stats()
			switch {
			case tc.want > 0 && (s.UplinkKbps != tc.want || !s.UplinkBusy):
				t.Errorf("uplink %d kbit/s (busy %v), want the ceiling, %d, busy", s.UplinkKbps, s.UplinkBusy, tc.want)
			case tc.want == 0 && (s.UplinkKbps < int(tc.upload/1000)*93/100 || !s.UplinkBusy):
				t.Errorf("uplink %d kbit/s (busy %v), want the measure, %.0f, busy", s.UplinkKbps, s.UplinkBusy, tc.upload/1000)
			}
			// Nothing is paced: six children of a 1.9 Mbit/s stream take
			// the whole 8 Mbit/s uplink, twice the ceiling.
			if tc.upload == 8e6 && up < 2*tc.ceiling*9/10 {
				t.Errorf("sent %d kbit/s under a ceiling of %d: paced", up, tc.ceiling)
			}
		})
	}
}
