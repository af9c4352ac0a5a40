package peer_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/protocol"
)

// proofKey is every test peer's delivery key (one is enough: the tracker
// side, which knows each peer's own, is tracker TestProofEvicts).
var proofKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// signingForger corrupts the last piece of chunk seq, as corrupter does,
// and handles its own engine's delivery statement for that chunk: signs
// the forged bytes (sign), drops it (!sign).
type signingForger struct {
	*memnet.Link
	sw    *swarm
	to    peer.PeerID
	seq   uint64
	sign  bool
	proof int // statements rewritten
}

func (f *signingForger) Send(m []byte) error {
	if len(m) == 2+protocol.ProofSize && m[0] == 'D' {
		d, _, err := protocol.ParseProof(m[2:], f.to)
		if err == nil && d.Seq == f.seq {
			if !f.sign {
				return nil
			}
			forged := bytes.Clone(f.sw.src.chunk(f.sw.tb, f.seq))
			forged[len(forged)-80] ^= 0x10
			d.Hash = sha256.Sum256(forged)
			m = protocol.AppendProof([]byte{'D', 1}, proofKey, testStream, d)
			f.proof++
		}
	}
	if p, err := chunk.ParsePiece(m); err == nil && p.Seq == f.seq && p.Index == p.Count-1 {
		m = bytes.Clone(m)
		m[len(m)-80] ^= 0x10
	}
	return f.Link.Send(m)
}

// TestForgerProof (issue 18 #2): a parent signs, per chunk and child, the
// hash of what it sent. A forger that signs what it forged hands each
// child a proof the tracker can check (protocol.CheckProof against the
// forger's key); one that drops its statement, or signs the genuine chunk
// (the honest engine's statement under a link that rewrites bytes), gives
// none, and the reports carry no proof. Before, reports never carried
// one: nothing could tell the tracker who altered a chunk.
func TestForgerProof(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sign, wrap bool
	}{
		{"signs the forged bytes", true, true},
		{"drops its statement", false, true},
		{"honest statement, bytes rewritten on the link", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const bad, evil = 10, peer.PeerID(2)
			sw := newSwarm(t, memnet.Config{Seed: 2, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, 2, 60_000,
				func(c *peer.Config) { c.ProofKey = proofKey })
			defer sw.close()
			var forgers []*signingForger
			sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
				if a != evil {
					return l
				}
				if !tc.wrap {
					return &corrupter{Link: l, seq: bad}
				}
				f := &signingForger{Link: l, sw: sw, to: b, seq: bad, sign: tc.sign}
				forgers = append(forgers, f)
				return f
			}
			p0, _ := twoStripeTree(sw)
			const last = 24
			sw.publish(last)
			sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)

			direct := 0
			for _, p := range p0 {
				if p == evil {
					direct++
				}
			}
			proved := 0
			for _, r := range sw.reports {
				if r.r.Kind != protocol.ReportBadChunk || r.r.Peer != evil {
					t.Errorf("unexpected %s report about %d by %d", r.r.Kind, r.r.Peer, r.by)
					continue
				}
				ok := protocol.CheckProof(proofKey.Public().(ed25519.PublicKey), testStream, protocol.PeerID(r.by), r.r.Chunk, r.r.Proof)
				if ok {
					if _, err := chunk.Verify(sw.src.pub, testStream, r.r.Chunk); err == nil {
						t.Errorf("report by %d proves a genuine chunk", r.by)
					}
					proved++
				} else if r.r.Proof != nil {
					t.Errorf("report by %d carries a proof that does not check", r.by)
				}
			}
			want := 0
			if tc.sign {
				want = direct
			}
			if proved != want || len(sw.reports) != direct {
				t.Errorf("%d reports (%d children), %d with a valid proof, want %d", len(sw.reports), direct, proved, want)
			}
			sent := sw.engines[evil].Counters().ProofsSent
			if sent == 0 {
				t.Error("the parent signed no statement")
			}
			t.Logf("%s: %d children, %d reports, %d proved; the forger's engine signed %d statements", tc.name, direct, len(sw.reports), proved, sent)
		})
	}
}

// repairJunker answers repairs of chunk seq with a corrupted last piece;
// withholder drops the pieces of chunk seq.
type repairJunker struct {
	*memnet.Link
	seq  uint64
	drop bool
}

func (f *repairJunker) Send(m []byte) error {
	if p, err := chunk.ParsePiece(m); err == nil && p.Seq == f.seq {
		if f.drop {
			return nil
		}
		if p.Index == p.Count-1 {
			m = bytes.Clone(m)
			m[len(m)-80] ^= 0x10
		}
	}
	return f.Link.Send(m)
}

// TestRepairJunkReportStripe (second reading of issue 18): a child repairs
// a chunk from its parent in another stripe; when that parent answers with
// junk, the report names the stripe the culprit is its parent in. The
// tracker takes a bad-chunk report only about the reporter's parent in
// the stripe named and counts anything else as a strike (three evict), so
// before, naming the chunk's stripe cost the honest child a strike for
// each junk repair: a hostile parent could get its children evicted.
func TestRepairJunkReportStripe(t *testing.T) {
	const bad = 10 // stripe 0
	sw := newSwarm(t, memnet.Config{Seed: 3, Latency: 10 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		switch {
		case a == 2 && b == 4:
			return &repairJunker{Link: l, seq: bad, drop: true}
		case a == 3 && b == 4:
			return &repairJunker{Link: l, seq: bad}
		}
		return l
	}
	sw.addPeers(2, 3)
	sw.edges([3]peer.PeerID{0, rootID, 2}, [3]peer.PeerID{0, 2, 3}, [3]peer.PeerID{0, 2, 4},
		[3]peer.PeerID{1, rootID, 3}, [3]peer.PeerID{1, 3, 2}, [3]peer.PeerID{1, 3, 4})
	sw.publishAll(24)
	n := 0
	for _, r := range sw.reports {
		if r.r.Kind != protocol.ReportBadChunk {
			continue
		}
		n++
		if r.by != 4 || r.r.Peer != 3 || r.r.Stripe != 1 {
			t.Errorf("peer %d reported %d in stripe %d, want peer 4 reporting 3 in stripe 1 (where 3 is its parent)", r.by, r.r.Peer, r.r.Stripe)
		}
	}
	if n == 0 {
		t.Fatalf("no bad-chunk report (%d reports)", len(sw.reports))
	}
}

// TestHostileDisclaimingForger (second reading of issue 18, the class of
// #2 and #5): a parent that forges every chunk and follows each with a
// "bad" notice ("I was fooled too") cancels its children's bad-chunk
// reports, since a notice from the source withdraws them. It must still
// be reported: it delivers no chunk that verifies, so its children find it
// silent. Before liveness came from verified chunks its junk pieces kept
// it "alive" and it was never reported.
func TestHostileDisclaimingForger(t *testing.T) {
	runHostile(t, hostileCase{
		name: "disclaiming forger (flips a byte of every piece, then says it was fooled too)", from: 5 * time.Second,
		kinds: []string{protocol.ReportSilent},
		link:  flipping(true),
	})
}

// statementFlooder sends, after every piece it relays, 80 statements of
// junk for chunks of its own stripe: an attempt to push another parent's
// statements out of the child's memory.
type statementFlooder struct {
	*memnet.Link
	seq uint64
}

func (f *statementFlooder) Send(m []byte) error {
	if err := f.Link.Send(m); err != nil {
		return err
	}
	p, err := chunk.ParsePiece(m)
	if err != nil {
		return nil
	}
	for i := range 80 {
		d := protocol.Delivery{Epoch: p.Epoch, Seq: p.Seq + 2*uint64(i%4), Hash: sha256.Sum256([]byte{byte(i)})}
		_ = f.Link.Send(protocol.AppendProof([]byte{'D', 1}, proofKey, testStream, d))
	}
	return nil
}

// TestStatementsKeptPerParent (second reading of issue 18 #2): a child
// keeps each parent's statements apart, and only for chunks of the
// stripes that parent feeds it, so another parent (a colluder) flooding
// statements cannot push a forger's proof out. Before, one ring of 64
// held every parent's statements and the flood emptied it of the proof.
func TestStatementsKeptPerParent(t *testing.T) {
	const bad = 10 // stripe 0
	sw := newSwarm(t, memnet.Config{Seed: 4, Latency: 10 * time.Millisecond}, 2, 60_000,
		func(c *peer.Config) { c.ProofKey = proofKey })
	defer sw.close()
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		switch {
		case a == 2 && b == 4:
			return &signingForger{Link: l, sw: sw, to: b, seq: bad, sign: true}
		case a == 3 && b == 4:
			return &statementFlooder{Link: l}
		}
		return l
	}
	sw.addPeers(2, 3)
	sw.edges([3]peer.PeerID{0, rootID, 2}, [3]peer.PeerID{1, rootID, 3}, [3]peer.PeerID{0, 2, 4}, [3]peer.PeerID{1, 3, 4})
	sw.publishAll(16)
	proved := 0
	for _, r := range sw.reports {
		if r.r.Kind == protocol.ReportBadChunk && r.by == 4 && r.r.Peer == 2 &&
			protocol.CheckProof(proofKey.Public().(ed25519.PublicKey), testStream, 4, r.r.Chunk, r.r.Proof) {
			proved++
		}
	}
	if proved != 1 {
		t.Fatalf("%d proved reports by 4 about its forging parent 2, want 1 (%d reports)", proved, len(sw.reports))
	}
}

// TestNoReportAfterMove (second reading of issue 18): a bad-chunk report
// waits BadGrace for a notice; when the child has moved to another parent
// meanwhile, the tracker would take the report as one about a peer that is
// not its parent and strike the honest child (three evict). The report is
// dropped instead. Before, it was sent.
func TestNoReportAfterMove(t *testing.T) {
	const bad = 10 // stripe 0
	sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 10 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		if a == 2 && b == 4 {
			return &corrupter{Link: l, seq: bad}
		}
		return l
	}
	sw.addPeers(2, 3)
	sw.edges([3]peer.PeerID{0, rootID, 2}, [3]peer.PeerID{0, rootID, 3}, [3]peer.PeerID{1, rootID, 2},
		[3]peer.PeerID{1, rootID, 3}, [3]peer.PeerID{0, 2, 4}, [3]peer.PeerID{1, 3, 4})
	const last = 16
	sw.publish(last)
	for i := 0; sw.engines[4].Counters().BadChunks == 0; i++ {
		if i == 1000 {
			t.Fatal("peer 4 never met the forged chunk")
		}
		sw.net.RunFor(10 * time.Millisecond)
	}
	// The tracker moves it (say, on another report) before BadGrace ends.
	sw.get(2).RemoveChild(0, 4)
	sw.edge(0, 3, 4)
	sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)
	for _, r := range sw.reports {
		if r.r.Kind == protocol.ReportBadChunk {
			t.Errorf("peer %d reported %d after moving off it", r.by, r.r.Peer)
		}
	}
}

// edges makes each (stripe, parent, child) an edge, in order.
func (sw *swarm) edges(es ...[3]peer.PeerID) {
	for _, e := range es {
		sw.edge(int(e[0]), e[1], e[2])
	}
}

// publishAll publishes chunks 1..last on the media clock and runs until
// they have had time to play.
func (sw *swarm) publishAll(last uint64) {
	sw.publish(last)
	sw.net.RunFor(time.Duration(last)*250*time.Millisecond + 2*time.Second)
}
