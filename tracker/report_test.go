package tracker

import (
	"bytes"
	"encoding/csv"
	"math"
	"testing"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// TestReport checks the per-minute export (issue 21, "savings you can
// show"): bytes by sender, seeder egress and what it saved, offload and
// the stalled share, by minute and in total, as JSON and CSV.
func TestReport(t *testing.T) {
	now := time.Unix(1_800_000_000, 0) // a minute boundary
	tr := newSimTracker(t, 2)
	tr.cfg.Now = func() time.Time { return now }
	seeder := simSeeder(t, tr, "rp", 1)
	peers := simJoin(t, tr, "rp", 2, protocol.KindNative)
	st := tr.streamState("rp")
	tick := func(per protocol.Stats, seederUp uint64) {
		for _, p := range peers {
			st.stats(p, per)
		}
		st.stats(seeder, protocol.Stats{BytesUp: seederUp})
		now = now.Add(time.Second)
		st.mu.Lock()
		st.sample(now, IngestStat{})
		st.mu.Unlock()
	}
	// Minute 1: each viewer gets 6000 B over WebRTC, 1000 of them from
	// the seeder's root peer, and 1000 from the origin; the seeder's root
	// sent 2000.
	for i := uint64(1); i <= 60; i++ {
		tick(protocol.Stats{BytesP2P: 100 * i, BytesSeeder: 100 * i / 6, BytesOrigin: 100 * i / 6}, 2000*i/60)
	}
	// Minute 2, 30 s: a stall of 3 s each.
	for i := uint64(61); i <= 90; i++ {
		tick(protocol.Stats{BytesP2P: 100 * i, BytesSeeder: 100 * i / 6, BytesOrigin: 100 * i / 6, StalledMS: 3000, Stalls: 1}, 2000*i/60)
	}
	rep, err := tr.Report("rp", now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want 2 (one closed minute, one partial)", len(rep.Rows))
	}
	m1 := rep.Rows[0]
	// The first sample closes second 1 of minute 0 (now moved first).
	if got := m1.Received.Total(); got == 0 || m1.Received.Viewers == 0 || m1.Received.Seeder == 0 || m1.Received.Edges != 0 {
		t.Errorf("minute 1 received %+v", m1.Received)
	}
	if m1.SeederEgress == 0 || m1.EgressSaved != m1.Received.Total()-m1.SeederEgress {
		t.Errorf("minute 1 egress %d saved %d of %d", m1.SeederEgress, m1.EgressSaved, m1.Received.Total())
	}
	if m1.ViewersMax != 2 || math.Abs(m1.ViewersAvg-2) > 1e-9 {
		t.Errorf("minute 1 viewers avg %v max %d", m1.ViewersAvg, m1.ViewersMax)
	}
	tot := rep.Total
	if tot.Received.Total() != 2*10500 || tot.Received.Viewers != 2*7500 || tot.Received.Seeder != 2*1500 || tot.Received.Origin != 2*1500 {
		t.Errorf("total received %+v, want 21000: 15000 viewers, 3000 seeder, 3000 origin", tot.Received)
	}
	if tot.Offload == nil || math.Abs(*tot.Offload-15000.0/21000) > 1e-9 {
		t.Errorf("total offload %v", tot.Offload)
	}
	// 2×3 s stalled over 180 viewer-seconds.
	if tot.StalledShare == nil || math.Abs(*tot.StalledShare-6.0/180) > 1e-6 || tot.Stalls != 2 {
		t.Errorf("stalled share %v stalls %d", tot.StalledShare, tot.Stalls)
	}
	// Since one minute ago: the partial minute and the one before it ends
	// inside the window, nothing older.
	if r, _ := tr.Report("rp", now.Add(-10*time.Second)); len(r.Rows) != 1 {
		t.Errorf("rows of the last 10 s: %d, want 1", len(r.Rows))
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 4 || recs[3][0] != "total" || recs[0][3] != "from_viewers" {
		t.Errorf("csv %v %v", recs, err)
	}
	if _, err := tr.Report("nosuch", now); err != ErrUnknownStream {
		t.Errorf("unknown stream: %v", err)
	}
}
