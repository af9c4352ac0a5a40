package tracker

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// manualClock is a settable clock for Config.Now.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func isParent(id protocol.PeerID) func(protocol.Message) bool {
	return func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent == id
	}
}

// forgedChunk is a chunk of stream signed by the seeder with its last byte
// flipped: it fails to verify.
func forgedChunk(t *testing.T, seed *seederPeer, stream string) []byte {
	t.Helper()
	kr, _ := chunk.NewKeyring(seed.key)
	good, err := chunk.Seal(nil, chunk.Header{KeyID: 1, Epoch: 77, Seq: 1}, []byte("payload"), kr, seed.priv, stream)
	if err != nil {
		t.Fatal(err)
	}
	good[len(good)-1] ^= 1
	return good
}

// movedOff waits for an assignment to a parent other than id.
func movedOff(id protocol.PeerID) func(protocol.Message) bool {
	return func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent != id
	}
}

// TestBadChunkAccusations (issue 18 #2): a bad-chunk report counts only
// from a child of the accused in that stripe, and even several children
// at once cannot evict: nothing proves the accused sent the bytes (the
// children may be one person's sybils). The accused is demoted and the
// children move; it stays connected. Before the fix two children evicted
// it (and, before last session's part, any two peers did, forever); a
// parent's reports about its own child are junk and cost it strikes.
func TestBadChunkAccusations(t *testing.T) {
	t.Run("sybil children at once", func(t *testing.T) {
		tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
		seed := joinSeeder(t, tt, "acc")
		p, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", UploadKbps: 50_000})
		var kids []*client
		for range 3 {
			c, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", NoUpload: true})
			c.next("parent P", isParent(p.id))
			kids = append(kids, c)
		}
		forged := forgedChunk(t, seed, "acc")
		for _, k := range kids {
			k.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: p.id, Stripe: 0, Chunk: forged})
			k.next("moved off P", movedOff(p.id))
		}
		if n := tt.t.Peers("acc"); n != 4 || !tt.t.Alive(p.id) {
			t.Fatalf("peers %d, P alive %v: evicted on accusations without proof", n, tt.t.Alive(p.id))
		}
		if d := counterValue(tt.t.metrics.demotions); d < 1 {
			t.Fatalf("P not demoted (demotions %v)", d)
		}
		if e := counterValue(tt.t.metrics.evictions); e != 0 {
			t.Fatalf("evictions %v", e)
		}
	})
	t.Run("parent accuses its child", func(t *testing.T) {
		tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
		seed := joinSeeder(t, tt, "acc")
		p, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", UploadKbps: 50_000})
		kid, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", NoUpload: true})
		kid.next("parent P", isParent(p.id))
		forged := forgedChunk(t, seed, "acc")
		// P cannot have received bytes from its child: each report is
		// junk and a strike; the third evicts P, never the child.
		for range 3 {
			p.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: kid.id, Stripe: 0, Chunk: forged})
		}
		p.next("evicted", errCode(protocol.CodeEvicted))
		p.closed()
		if tt.t.Alive(kid.id) != true {
			t.Fatal("the accused child was removed")
		}
	})
}

// TestReportMovesCapped (issue 18 #8): every report used to move its
// reporter to a new parent, whose address it then learns; a viewer
// reporting in a loop walked the swarm. Now a peer's reports move it at
// most ReportMoveBurst times, then once per ReportMoveEvery. Before the
// fix every one of the reports below moved it.
func TestReportMovesCapped(t *testing.T) {
	clk := &manualClock{t: time.Unix(1_800_000_000, 0)}
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1, Now: clk.Now})
	joinSeeder(t, tt, "walk")
	for range 10 {
		joinViewer(t, tt, protocol.Join{Stream: "walk", UploadKbps: 50_000})
	}
	h, _ := joinViewer(t, tt, protocol.Join{Stream: "walk", NoUpload: true})
	parent := h.next("a parent", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && !as.Remove }).(protocol.Assign).Parent
	// report sends one report about the current parent and tells whether
	// the tracker moved the reporter (its reparent count grew) or capped
	// it; then it takes the newest parent from the assignments that came.
	report := func() bool {
		t.Helper()
		moved0, capped0 := counterValue(tt.t.metrics.reparents), counterValue(tt.t.metrics.reportMovesCapped)
		h.send(protocol.Report{Kind: protocol.ReportSilent, Peer: parent, Stripe: 0})
		deadline := time.Now().Add(5 * time.Second)
		for counterValue(tt.t.metrics.reparents) == moved0 && counterValue(tt.t.metrics.reportMovesCapped) == capped0 {
			if time.Now().After(deadline) {
				t.Fatal("a report neither moved its reporter nor was capped")
			}
			time.Sleep(5 * time.Millisecond)
		}
		moved := counterValue(tt.t.metrics.reparents) > moved0
		for quiet := time.After(100 * time.Millisecond); ; {
			select {
			case m := <-h.in:
				if as, ok := m.(protocol.Assign); ok && !as.Remove {
					parent = as.Parent
				}
				continue
			case <-quiet:
			}
			break
		}
		return moved
	}
	moves := 0
	for range 2 * ReportMoveBurst {
		if report() {
			moves++
		}
	}
	if moves != ReportMoveBurst {
		t.Fatalf("%d reports moved the reporter %d times, want %d", 2*ReportMoveBurst, moves, ReportMoveBurst)
	}
	clk.add(ReportMoveEvery)
	if !report() || report() {
		t.Fatalf("after %v: want exactly one more move", ReportMoveEvery)
	}
}

// TestProofEvicts (issue 18 #2): a child's bad-chunk report evicts its
// parent only with the parent's own signed statement that it sent exactly
// the reported bytes, which fail the seeder's signature. Every other
// report demotes and moves, as TestBadChunkAccusations: a proof under
// another key, for other bytes or another child, a genuine chunk, or a
// parent that registered no key. Before, nothing evicted on a report.
func TestProofEvicts(t *testing.T) {
	pPub, pPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	sign := func(priv ed25519.PrivateKey, stream string, child protocol.PeerID, sealed []byte) []byte {
		return protocol.AppendProof(nil, priv, stream, protocol.Delivery{Epoch: 77, Seq: 1, Child: child, Hash: sha256.Sum256(sealed)})
	}
	for _, tc := range []struct {
		name   string
		noKey  bool
		proof  func(kid protocol.PeerID, forged, genuine []byte) []byte
		report func(forged, genuine []byte) []byte
		evict  bool
	}{
		{name: "signed forgery", evict: true,
			proof: func(kid protocol.PeerID, forged, _ []byte) []byte { return sign(pPriv, "acc", kid, forged) }},
		{name: "signed by another key",
			proof: func(kid protocol.PeerID, forged, _ []byte) []byte { return sign(otherPriv, "acc", kid, forged) }},
		{name: "signed for other bytes",
			proof: func(kid protocol.PeerID, _, genuine []byte) []byte { return sign(pPriv, "acc", kid, genuine) }},
		{name: "signed for another child",
			proof: func(kid protocol.PeerID, forged, _ []byte) []byte { return sign(pPriv, "acc", kid+1000, forged) }},
		{name: "signed for another stream",
			proof: func(kid protocol.PeerID, forged, _ []byte) []byte { return sign(pPriv, "acd", kid, forged) }},
		{name: "parent without a key", noKey: true,
			proof: func(kid protocol.PeerID, forged, _ []byte) []byte { return sign(pPriv, "acc", kid, forged) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
			seed := joinSeeder(t, tt, "acc")
			j := protocol.Join{Stream: "acc", UploadKbps: 50_000, ProofKey: protocol.EncodeProofKey(pPub)}
			if tc.noKey {
				j.ProofKey = ""
			}
			p, _ := joinViewer(t, tt, j)
			kid, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", NoUpload: true})
			kid.next("parent P", isParent(p.id))
			forged := forgedChunk(t, seed, "acc")
			genuine := bytes.Clone(forged)
			genuine[len(genuine)-1] ^= 1
			kid.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: p.id, Stripe: 0, Chunk: forged, Proof: tc.proof(kid.id, forged, genuine)})
			if tc.evict {
				p.next("evicted", errCode(protocol.CodeEvicted))
				p.closed()
				if !tt.t.Alive(kid.id) {
					t.Fatal("the reporter was removed")
				}
				return
			}
			kid.next("moved off P", movedOff(p.id))
			if !tt.t.Alive(p.id) || counterValue(tt.t.metrics.evictions) != 0 {
				t.Fatalf("P evicted without a valid proof (alive %v)", tt.t.Alive(p.id))
			}
			if d := counterValue(tt.t.metrics.demotions); d < 1 {
				t.Fatalf("P not demoted (demotions %v)", d)
			}
		})
	}
	t.Run("genuine chunk with a valid statement", func(t *testing.T) {
		tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
		seed := joinSeeder(t, tt, "acc")
		p, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", UploadKbps: 50_000, ProofKey: protocol.EncodeProofKey(pPub)})
		kid, _ := joinViewer(t, tt, protocol.Join{Stream: "acc", NoUpload: true})
		kid.next("parent P", isParent(p.id))
		genuine := forgedChunk(t, seed, "acc")
		genuine[len(genuine)-1] ^= 1
		// An honest parent's statement for what it really sent: the
		// reporter lies and pays the strikes; the parent stays.
		for range 3 {
			kid.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: p.id, Stripe: 0, Chunk: genuine, Proof: sign(pPriv, "acc", kid.id, genuine)})
		}
		kid.next("evicted", errCode(protocol.CodeEvicted))
		if !tt.t.Alive(p.id) {
			t.Fatal("the honest parent was removed")
		}
	})
}
