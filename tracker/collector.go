package tracker

import (
	"strconv"

	"github.com/banyan-live/banyan/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports per-stream swarm figures computed at scrape time from
// the overlay and the peers' latest stats.
func (t *Tracker) Collector() prometheus.Collector { return swarmCollector{t} }

type swarmCollector struct{ t *Tracker }

var (
	descDepth = prometheus.NewDesc("banyan_tracker_depth_peers",
		"Viewers at each depth of each stripe tree; a viewer the HTTP origin feeds counts at depth 1 (see banyan_tracker_origin_fed_peers).", []string{"stream", "stripe", "depth"}, nil)
	descOriginFed = prometheus.NewDesc("banyan_tracker_origin_fed_peers",
		"Viewers fed by the HTTP origin in each stripe (no free slot in its tree): with a small root capacity these are most of depth 1.", []string{"stream", "stripe"}, nil)
	descBytes = prometheus.NewDesc("banyan_swarm_received_bytes",
		"Bytes current viewers report having received, by path (p2p: WebRTC direct from any sender, the seeder too; turn: WebRTC relayed; origin: HTTP), since they joined.", []string{"stream", "path"}, nil)
	descSource = prometheus.NewDesc("banyan_swarm_received_source_bytes",
		"Bytes current viewers report having received, by sender (viewers, edges, seeder: its root peer over WebRTC, origin: HTTP), since they joined.", []string{"stream", "source"}, nil)
	descSeederUp = prometheus.NewDesc("banyan_swarm_seeder_sent_bytes",
		"Bytes the seeder's root peer reports having sent to its children.", []string{"stream"}, nil)
	descOffload = prometheus.NewDesc("banyan_swarm_offload_ratio",
		"Share of current viewers' received bytes that other peers (viewers and edges) sent, not the seeder (neither its root peer nor HTTP).", []string{"stream"}, nil)
	descStalls = prometheus.NewDesc("banyan_swarm_stalls",
		"Stalls reported by current viewers.", []string{"stream"}, nil)
)

func (swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDepth, descOriginFed, descBytes, descSource, descSeederUp, descOffload, descStalls} {
		ch <- d
	}
}

func (c swarmCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.t.streamList() {
		st.mu.Lock()
		var p2p, seederUp, stalls uint64
		var src protocol.Sources
		for _, s := range st.sessions {
			if s.isSeeder {
				seederUp += s.stats.BytesUp
				continue
			}
			p2p += s.stats.BytesP2P
			src.Add(protocol.SourcesOf(s.stats))
			stalls += uint64(s.stats.Stalls)
		}
		var hist []int
		for k := 0; k < st.forest.Stripes(); k++ {
			ch <- prometheus.MustNewConstMetric(descOriginFed, prometheus.GaugeValue, float64(st.forest.OriginFed(k)), st.name, strconv.Itoa(k))
			hist = st.forest.DepthHistogram(hist[:0], k)
			for i, n := range hist { // hist[0] is depth 1
				if n > 0 {
					ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(n), st.name, strconv.Itoa(k), strconv.Itoa(i+1))
				}
			}
		}
		st.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(p2p), st.name, "p2p")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(src.TURN), st.name, "turn")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(src.Origin), st.name, "origin")
		for _, x := range []struct {
			name string
			v    uint64
		}{{"viewers", src.Viewers}, {"edges", src.Edges}, {"seeder", src.Seeder}, {"origin", src.Origin}} {
			ch <- prometheus.MustNewConstMetric(descSource, prometheus.GaugeValue, float64(x.v), st.name, x.name)
		}
		ch <- prometheus.MustNewConstMetric(descSeederUp, prometheus.GaugeValue, float64(seederUp), st.name)
		ch <- prometheus.MustNewConstMetric(descStalls, prometheus.GaugeValue, float64(stalls), st.name)
		if off, ok := src.Offload(); ok {
			ch <- prometheus.MustNewConstMetric(descOffload, prometheus.GaugeValue, off, st.name)
		}
	}
}
