package tracker

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// children lists a peer's children in stripe s.
func (tt *testTracker) children(stream string, p protocol.PeerID, s int) []overlay.PeerID {
	var out []overlay.PeerID
	tt.t.withForest(stream, func(f *overlay.Forest) { out, _ = f.Children(nil, overlay.PeerID(p), s) })
	return out
}

// suspected reports whether the tracker keeps new children off p.
func (tt *testTracker) suspected(stream string, p protocol.PeerID) (v bool) {
	tt.t.withForest(stream, func(f *overlay.Forest) { v = f.Suspected(overlay.PeerID(p)) })
	return v
}

// statsClearSuspicion checks that p is suspected, sends its stats, and
// waits until the tracker no longer suspects it.
func (tt *testTracker) statsClearSuspicion(t *testing.T, stream string, p *client, kbps int) {
	t.Helper()
	if !tt.suspected(stream, p.id) {
		t.Fatal("the accused is not suspected")
	}
	p.send(protocol.Stats{UploadKbps: kbps})
	for i := 0; tt.suspected(stream, p.id); i++ {
		if i == 200 {
			t.Fatal("still suspected after its stats")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCapacityLiarDemoted: a peer declares a big uplink, takes every child
// slot and delivers nothing. Each child that reports it silent is moved
// away and halves the liar's capacity, so it sheds the rest and stops
// attracting joiners; self-reported stats cannot buy the capacity back.
// (The children's side, how fast a silent or trickling parent is noticed,
// is peer.TestHostileCapacityLiar.)
func TestCapacityLiarDemoted(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	joinSeeder(t, tt, "cl")
	liar, _ := joinViewer(t, tt, protocol.Join{Stream: "cl", UploadKbps: 30_000}) // 10 slots at 3 Mbit/s
	var kids []*client
	for i := 0; i < 6; i++ {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "cl", NoUpload: true})
		c.next("parent: the liar", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == liar.id })
		kids = append(kids, c)
	}
	if n := len(tt.children("cl", liar.id, 0)); n != 6 {
		t.Fatalf("liar feeds %d children, want 6", n)
	}
	start := time.Now()
	reports := 0
	for _, c := range kids {
		if len(tt.children("cl", liar.id, 0)) == 0 {
			break
		}
		if !contains(tt.children("cl", liar.id, 0), c.id) {
			continue // already shed
		}
		c.send(protocol.Report{Kind: protocol.ReportSilent, Peer: liar.id, Stripe: 0})
		reports++
		c.next("moved off the liar", func(m protocol.Message) bool {
			as, ok := m.(protocol.Assign)
			return ok && !as.Remove && as.Parent != liar.id
		})
	}
	var left int
	for i := 0; i < 50; i++ {
		if left = len(tt.children("cl", liar.id, 0)); left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left != 0 {
		t.Fatalf("liar still feeds %d children after %d reports", left, reports)
	}
	contained := time.Since(start)
	// It claims a huge measured upload: no new child for it.
	liar.send(protocol.Stats{UploadKbps: 1_000_000})
	for i := 0; i < 3; i++ {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "cl", NoUpload: true})
		time.Sleep(50 * time.Millisecond)
		if contains(tt.children("cl", liar.id, 0), c.id) {
			t.Fatalf("a new joiner got the demoted liar as parent")
		}
	}
	if v := counterValue(tt.t.metrics.demotions); v != float64(reports) {
		t.Errorf("demotions %v, want %d", v, reports)
	}
	t.Logf("figures: capacity liar with 6 children lost them all after %d distinct silent reports (tracker side %v); self-reported stats did not restore it", reports, contained.Round(10*time.Microsecond))
}

// TestFalseAccuserCostsHalf: one lying child reporting an honest parent
// silent again and again demotes it once per hold period, not to zero, and
// keeps new children off it until its next stats.
func TestFalseAccuserCostsHalf(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	joinSeeder(t, tt, "fh")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "fh", UploadKbps: 32_000}) // 8 slots (25 % headroom)
	liar, _ := joinViewer(t, tt, protocol.Join{Stream: "fh", NoUpload: true})
	liar.next("parent P", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
	for i := 0; i < 5; i++ {
		liar.send(protocol.Report{Kind: protocol.ReportSilent, Peer: p.id, Stripe: 0})
	}
	time.Sleep(100 * time.Millisecond)
	// Until its next stats (every 2 s) it is suspected gone and takes no
	// new children; then it takes them again, at half capacity.
	tt.statsClearSuspicion(t, "fh", p, 32_000)
	var honest []*client
	for i := 0; i < 4; i++ {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "fh", NoUpload: true})
		honest = append(honest, c)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(tt.children("fh", p.id, 0)); n != 4 {
		t.Fatalf("honest parent feeds %d of 4 joiners after one liar's reports, want 4 (capacity 8 -> 4)", n)
	}
	if v := counterValue(tt.t.metrics.demotions); v != 1 {
		t.Fatalf("demotions %v, want 1", v)
	}
}

func contains(ids []overlay.PeerID, id protocol.PeerID) bool {
	for _, x := range ids {
		if x == overlay.PeerID(id) {
			return true
		}
	}
	return false
}

// counterValue reads a counter through a registry of its own (the test
// tracker registers its metrics nowhere).
func counterValue(c prometheus.Counter) float64 {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return -1
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		return -1
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// TestFalseAccuserFigures: a child reports its honest parent for bad
// chunks, attaching genuine ones. The tracker verifies each against the
// stream key: three strikes evict the accuser; the parent keeps its
// capacity and its other children.
func TestFalseAccuserFigures(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	seed := joinSeeder(t, tt, "fx")
	kr, _ := chunk.NewKeyring(seed.key)
	good, err := chunk.Seal(nil, chunk.Header{KeyID: 1, Epoch: 77, Seq: 1}, []byte("genuine"), kr, seed.priv, "fx")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "fx", UploadKbps: 24_000})
	var kids []*client
	for i := 0; i < 3; i++ {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "fx", NoUpload: true})
		c.next("parent P", func(m protocol.Message) bool { as, ok := m.(protocol.Assign); return ok && as.Parent == p.id })
		kids = append(kids, c)
	}
	liar := kids[0]
	start := time.Now()
	for i := 0; i < 3; i++ {
		liar.send(protocol.Report{Kind: protocol.ReportBadChunk, Peer: p.id, Stripe: 0, Chunk: good})
	}
	liar.next("evicted", errCode(protocol.CodeEvicted))
	liar.closed()
	evicted := time.Since(start)
	time.Sleep(50 * time.Millisecond)
	kept := tt.children("fx", p.id, 0)
	for _, c := range kids[1:] {
		if !contains(kept, c.id) {
			t.Errorf("honest child %d lost its parent", c.id)
		}
	}
	if tt.t.Peers("fx") != 3 {
		t.Errorf("peers %d, want 3 (the parent and two honest children)", tt.t.Peers("fx"))
	}
	if v := counterValue(tt.t.metrics.falseReports); v != 3 {
		t.Errorf("false reports %v, want 3", v)
	}
	t.Logf("figures: false accuser evicted after 3 reports in %v; accused parent kept %d children, capacity untouched; 0 bytes lost", evicted.Round(time.Millisecond), len(kept))
}

// TestSignalingFlooderFigures: a joined peer sends signaling messages as
// fast as it can. Past its burst it gets rate_limited errors, and after 20
// of those the tracker closes it; a peer of the same stream is served
// throughout.
func TestSignalingFlooderFigures(t *testing.T) {
	tt := newTestTracker(t, Config{}) // default 20 msg/s, burst 60
	joinSeeder(t, tt, "sf")
	honest, _ := joinViewer(t, tt, protocol.Join{Stream: "sf"})
	flood, _ := joinViewer(t, tt, protocol.Join{Stream: "sf"})
	start := time.Now()
	sent := 0
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for m := range flood.in {
			_ = m
		}
	}()
	b, _ := protocol.Encode(protocol.Stats{UploadKbps: 1})
	for sent < 5000 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := flood.conn.Write(ctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			break
		}
		sent++
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("flooder not disconnected")
	}
	cut := time.Since(start)
	// The honest peer is still served: a stats message and a clean leave.
	honest.send(protocol.Stats{UploadKbps: 1})
	honest.send(protocol.Leave{})
	honest.closed()
	refused := counterValue(tt.t.metrics.refused.WithLabelValues("rate"))
	if refused < 20 || refused > 22 {
		t.Errorf("rate refusals %v, want 21", refused)
	}
	t.Logf("figures: signaling flooder: %d messages written before the socket died, %v to disconnect, %v refused as rate-limited; the other peer unaffected", sent, cut.Round(time.Millisecond), refused)
}
