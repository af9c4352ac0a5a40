package tracker

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDepthMetricLabels checks banyan_tracker_depth_peers against the
// overlay: every viewer counted once per stripe, at its own depth.
func TestDepthMetricLabels(t *testing.T) {
	tr := newSimTracker(t, 2)
	simSeeder(t, tr, "demo", 1)
	viewers := simJoin(t, tr, "demo", 14, protocol.KindNative)
	st, err := tr.stream("demo")
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]float64{}
	st.mu.Lock()
	for _, s := range viewers {
		for k := 0; k < 2; k++ {
			d, err := st.forest.Depth(overlay.PeerID(s.id), k)
			if err != nil {
				t.Fatal(err)
			}
			want[[2]string{itoa(k), itoa(d)}]++
		}
	}
	st.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(tr.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "banyan_tracker_depth_peers" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var k [2]string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "stripe":
					k[0] = l.GetValue()
				case "depth":
					k[1] = l.GetValue()
				}
			}
			got[k] += m.GetGauge().GetValue()
		}
	}
	if len(got) != len(want) {
		t.Errorf("metric %v, overlay %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stripe %s depth %s: metric %v, overlay %v (all: metric %v, overlay %v)", k[0], k[1], got[k], v, got, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestOriginFedAtDepthOne: with one root slot, the viewers that find no
// slot are fed by the origin and count at depth 1 of the depth metric,
// which is why a --root-capacity 1 run showed two or three viewers at
// depth 1 per stripe; banyan_tracker_origin_fed_peers says how many.
func TestOriginFedAtDepthOne(t *testing.T) {
	tr, err := New(Config{Stripes: 1, RootCapacity: 1, SeederKey: testSeederKey, Logger: slog.New(slog.DiscardHandler), StatsInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	simSeeder(t, tr, "of", 1)
	st, err := tr.stream("of")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s := simSession(tr)
		if err := st.join(s, protocol.Join{Stream: "of", Kind: protocol.KindNative, NoUpload: true}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(tr.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var depth1, originFed float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "banyan_tracker_depth_peers":
				for _, l := range m.GetLabel() {
					if l.GetName() == "depth" && l.GetValue() == "1" {
						depth1 += m.GetGauge().GetValue()
					}
				}
			case "banyan_tracker_origin_fed_peers":
				originFed += m.GetGauge().GetValue()
			}
		}
	}
	if depth1 != 3 || originFed != 2 {
		t.Errorf("depth 1: %v viewers, origin-fed %v; want 3 at depth 1 of which 2 on the origin", depth1, originFed)
	}
}
