package tracker

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// checkSnapshot asserts what every snapshot must satisfy, whatever its
// size: levels match the forest, edges form trees over drawn nodes, and
// drawn edges plus hidden subtrees account for every peer.
func checkSnapshot(t *testing.T, tr *Tracker, stream string, snap *Snapshot) {
	t.Helper()
	st := tr.streamState(stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	if snap.Peers != st.forest.Len() {
		t.Fatalf("peers %d, forest has %d", snap.Peers, st.forest.Len())
	}
	nodes := map[protocol.PeerID]NodeInfo{}
	for _, n := range snap.Nodes {
		nodes[n.ID] = n
	}
	h := snap.Health
	if got := h.Good + h.Low + h.Bad + h.Unknown; got != snap.Peers {
		t.Errorf("health counts %d peers, want %d", got, snap.Peers)
	}
	for s := 0; s < snap.Stripes; s++ {
		hist := st.forest.DepthHistogram(nil, s)
		if len(hist) != len(snap.Levels[s]) {
			t.Fatalf("stripe %d: %d levels, forest has %d", s, len(snap.Levels[s]), len(hist))
		}
		sum := 0
		for d, l := range snap.Levels[s] {
			if l.Depth != d+1 || l.Peers != hist[d] {
				t.Errorf("stripe %d level %d: %+v, forest says %d", s, d+1, l, hist[d])
			}
			hc := l.Health.Good + l.Health.Low + l.Health.Bad + l.Health.Unknown
			pc := l.Paths.Direct + l.Paths.TURN + l.Paths.Connecting + l.Paths.Origin + l.Paths.Unknown
			if hc != l.Peers || pc != l.Peers {
				t.Errorf("stripe %d level %d: health %d paths %d of %d peers", s, d+1, hc, pc, l.Peers)
			}
			sum += l.Peers
		}
		if sum != snap.Peers {
			t.Errorf("stripe %d: levels hold %d peers, want %d", s, sum, snap.Peers)
		}
		seen := map[int64]bool{0: true, -1: true}
		accounted := 0
		for _, e := range snap.Edges[s] {
			if !seen[e.P] {
				t.Fatalf("stripe %d: edge %d→%d before its parent", s, e.P, e.C)
			}
			if _, ok := nodes[e.C]; !ok {
				t.Fatalf("stripe %d: edge child %d not among the nodes", s, e.C)
			}
			p, _ := st.forest.Parent(overlay.PeerID(e.C), s)
			if nodeRef(p) != e.P && !(p == overlay.Root && e.P == 0) {
				t.Fatalf("stripe %d: edge %d→%d, forest says parent %d", s, e.P, e.C, nodeRef(p))
			}
			if (e.P == -1) != (e.Path == PathOrigin) {
				t.Errorf("stripe %d: edge %+v: origin path mismatch", s, e)
			}
			seen[int64(e.C)] = true
			accounted += 1 + e.Hidden
		}
		if accounted != snap.Peers {
			t.Errorf("stripe %d: drawn %d + hidden accounts for %d peers, want %d", s, len(snap.Edges[s]), accounted, snap.Peers)
		}
		subs := 0
		for _, sub := range snap.Subtrees[s] {
			subs += sub.Size
			hc := sub.Health.Good + sub.Health.Low + sub.Health.Bad + sub.Health.Unknown
			if hc != sub.Size {
				t.Errorf("subtree %d: health counts %d of %d", sub.Root, hc, sub.Size)
			}
		}
		if len(snap.Subtrees[s]) < maxSubtrees && subs != snap.Peers {
			t.Errorf("stripe %d: subtrees hold %d peers, want %d", s, subs, snap.Peers)
		}
	}
}

func TestSnapshotSmallSwarm(t *testing.T) {
	tr := newSimTracker(t, 2)
	seeder := simSeeder(t, tr, "demo", 7)
	peers := simJoin(t, tr, "demo", 30, protocol.KindNative)
	simJoin(t, tr, "demo", 2, protocol.KindRelay)
	simReport(tr, "demo", rand.New(rand.NewPCG(1, 2)), 5)

	// One peer reports its stripe-0 parent over TURN with a thin buffer.
	st := tr.streamState("demo")
	st.mu.Lock()
	target := peers[10]
	p0, _ := st.forest.Parent(overlay.PeerID(target.id), 0)
	st.mu.Unlock()
	st.stats(target, protocol.Stats{BytesP2P: 1, BufferMS: 100, Parents: []protocol.ParentHealth{{Stripe: 0, Parent: st.pid(p0), Kbps: 1234, Path: "turn"}}})

	snap, err := tr.Snapshot("demo", 100)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Aggregated || len(snap.Nodes) != 32 || snap.Peers != 32 || snap.Stripes != 2 {
		t.Fatalf("aggregated %v, %d nodes, %d peers, %d stripes", snap.Aggregated, len(snap.Nodes), snap.Peers, snap.Stripes)
	}
	if snap.Seeder != seeder.id || !snap.Live || snap.Epoch != 7 {
		t.Errorf("seeder %d live %v epoch %d", snap.Seeder, snap.Live, snap.Epoch)
	}
	checkSnapshot(t, tr, "demo", snap)
	for _, e := range snap.Edges[0] {
		if e.C == target.id && (e.Path != PathTURN || e.Kbps != 1234) {
			t.Errorf("turn edge shows %+v", e)
		}
	}
	relays := 0
	for _, n := range snap.Nodes {
		if n.ID == target.id && n.Health != HealthBad {
			t.Errorf("100 ms buffer is %q", n.Health)
		}
		if n.Kind == protocol.KindRelay {
			relays++
		}
		if len(n.Depth) != 2 || n.Depth[0] < 1 || n.Depth[1] < 1 {
			t.Errorf("node %d depths %v", n.ID, n.Depth)
		}
	}
	if relays != 2 {
		t.Errorf("%d relay nodes, want 2", relays)
	}
	if _, err := tr.Snapshot("nope", 0); err != ErrUnknownStream {
		t.Errorf("unknown stream: %v", err)
	}
}

func TestSnapshotAggregates(t *testing.T) {
	for _, tc := range []struct {
		peers, stripes, max int
		seeder              bool
	}{
		{2000, 2, 200, true},
		{3000, 3, 400, true},
		{500, 2, 100, false}, // no seeder: the forest still roots at the seeder slot
	} {
		t.Run(fmt.Sprintf("%d/k%d/max%d", tc.peers, tc.stripes, tc.max), func(t *testing.T) {
			tr := newSimTracker(t, tc.stripes)
			if tc.seeder {
				simSeeder(t, tr, "big", 1)
			}
			simJoin(t, tr, "big", tc.peers, protocol.KindNative)
			simReport(tr, "big", rand.New(rand.NewPCG(3, 4)), 3)
			snap, err := tr.Snapshot("big", tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if !snap.Aggregated || len(snap.Nodes) > tc.max || len(snap.Nodes) == 0 {
				t.Fatalf("aggregated %v with %d nodes (max %d)", snap.Aggregated, len(snap.Nodes), tc.max)
			}
			for s, d := range snap.ShownDepth {
				if d < 1 || d >= len(snap.Levels[s]) {
					t.Errorf("stripe %d shown to depth %d of %d", s, d, len(snap.Levels[s]))
				}
			}
			checkSnapshot(t, tr, "big", snap)
			b, _ := json.Marshal(snap)
			t.Logf("%d peers: %d nodes drawn, shown depths %v, %d bytes JSON, built in %d µs", tc.peers, len(snap.Nodes), snap.ShownDepth, len(b), snap.BuildMicros)
		})
	}
}

func TestPeerDetail(t *testing.T) {
	tr := newSimTracker(t, 2)
	seeder := simSeeder(t, tr, "demo", 1)
	peers := simJoin(t, tr, "demo", 40, protocol.KindBrowser)
	simReport(tr, "demo", rand.New(rand.NewPCG(5, 6)), 5)
	st := tr.streamState("demo")
	for _, p := range peers {
		d, err := tr.Peer("demo", p.id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Kind != protocol.KindBrowser || len(d.Parents) != 2 || len(d.Children) != 2 || d.Seeder {
			t.Fatalf("peer %d: %+v", p.id, d)
		}
		st.mu.Lock()
		for s := range 2 {
			par, _ := st.forest.Parent(overlay.PeerID(p.id), s)
			if d.Parents[s].Parent != nodeRef(par) || d.Parents[s].Stripe != s {
				t.Errorf("peer %d stripe %d: parent %d, forest %d", p.id, s, d.Parents[s].Parent, nodeRef(par))
			}
			kids, _ := st.forest.Children(nil, overlay.PeerID(p.id), s)
			if len(kids) != len(d.Children[s]) {
				t.Errorf("peer %d stripe %d: %d children, forest %d", p.id, s, len(d.Children[s]), len(kids))
			}
		}
		st.mu.Unlock()
	}
	for _, id := range []protocol.PeerID{0, seeder.id} {
		d, err := tr.Peer("demo", id)
		if err != nil || !d.Seeder || d.ID != seeder.id || len(d.Children[0]) == 0 {
			t.Fatalf("seeder detail %+v %v", d, err)
		}
	}
	if _, err := tr.Peer("demo", 99999); err != ErrUnknownPeer {
		t.Errorf("unknown peer: %v", err)
	}
}

// TestSnapshotFigures logs Snapshot build times at 1,000 and 10,000
// simulated peers (the figures of issue 10; see also BenchmarkSnapshot).
func TestSnapshotFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("figures")
	}
	for _, n := range []int{1000, 10000} {
		tr := newSimTracker(t, 2)
		simSeeder(t, tr, "sim", 1)
		start := time.Now()
		simJoin(t, tr, "sim", n, protocol.KindNative)
		joined := time.Since(start)
		simReport(tr, "sim", rand.New(rand.NewPCG(7, 8)), 3)
		var best time.Duration = 1 << 62
		var size int
		for range 5 {
			t0 := time.Now()
			snap, err := tr.Snapshot("sim", DefaultMaxNodes)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(snap)
			best, size = min(best, time.Since(t0)), len(b)
		}
		t.Logf("%5d peers: joined in %v; Snapshot+JSON best of 5: %v, %d bytes", n, joined.Round(time.Millisecond), best.Round(10*time.Microsecond), size)
	}
}

func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tr := newSimTracker(b, 2)
			simSeeder(b, tr, "sim", 1)
			simJoin(b, tr, "sim", n, protocol.KindNative)
			simReport(tr, "sim", rand.New(rand.NewPCG(7, 8)), 3)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Snapshot("sim", DefaultMaxNodes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
