package peer_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/protocol"
)

// TestSourcesBySender checks the one definition of byte sources (issue
// 21): bytes the seeder's root peer sends over WebRTC are seeder bytes,
// not peer bytes, edges are told apart from viewers, and the stats report
// carries the same split the engine shows.
func TestSourcesBySender(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 3, Latency: 5 * time.Millisecond, UploadBps: 50e6}, 1, 20_000, nil)
	defer sw.close()
	sw.addPeers(2, 3)
	// root → 2 (an edge) → 3 (a viewer) → 4.
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	sw.edge(0, 3, 4)
	sw.get(2).SetSource(rootID, peer.SourceSeeder)
	sw.get(3).SetSource(2, peer.SourceEdge)
	const last = 12
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 2*time.Second)

	for _, tc := range []struct {
		id   peer.PeerID
		from string
	}{{2, "seeder"}, {3, "edges"}, {4, "viewers"}} {
		e := sw.get(tc.id)
		s := e.Sources()
		if s.Total() == 0 {
			t.Fatalf("peer %d received nothing", tc.id)
		}
		want := map[string]uint64{"viewers": s.Viewers, "edges": s.Edges, "seeder": s.Seeder}
		for k, v := range want {
			if k == tc.from && v != s.Total()-s.Origin {
				t.Errorf("peer %d: %s %d of %d WebRTC bytes, want all", tc.id, k, v, s.Total()-s.Origin)
			}
			if k != tc.from && v != 0 {
				t.Errorf("peer %d: %s %d, want 0 (all from %s)", tc.id, k, v, tc.from)
			}
		}
		tr := e.Traffic()
		if s.Total() != tr.P2P+tr.TURN+tr.Origin {
			t.Errorf("peer %d: sources add up to %d, traffic by path to %d", tc.id, s.Total(), tr.P2P+tr.TURN+tr.Origin)
		}
		// The report the tracker gets carries the same split, and passes
		// the tracker's validation.
		b, err := protocol.Encode(e.Stats())
		if err != nil {
			t.Fatal(err)
		}
		m, err := protocol.Decode(b)
		if err != nil {
			t.Fatalf("peer %d: stats report refused: %v", tc.id, err)
		}
		if got := protocol.SourcesOf(m.(protocol.Stats)); got != s {
			t.Errorf("peer %d: stats report says %+v, engine %+v", tc.id, got, s)
		}
	}
	if off, ok := sw.get(2).Sources().Offload(); !ok || off != 0 {
		t.Errorf("a viewer fed only by the seeder shows offload %v, want 0", off)
	}
}
