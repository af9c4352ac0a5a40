package tracker

import (
	"strconv"
	"testing"

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
