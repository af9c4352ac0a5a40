package tracker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports per-stream swarm figures computed at scrape time from
// the overlay and the peers' latest stats.
func (t *Tracker) Collector() prometheus.Collector { return swarmCollector{t} }

type swarmCollector struct{ t *Tracker }

var (
	descDepth = prometheus.NewDesc("banyan_tracker_depth_peers",
		"Viewers at each depth of each stripe tree.", []string{"stream", "stripe", "depth"}, nil)
	descBytes = prometheus.NewDesc("banyan_swarm_received_bytes",
		"Bytes viewers report having received, by path (p2p, turn, origin), since they joined.", []string{"stream", "path"}, nil)
	descSeederUp = prometheus.NewDesc("banyan_swarm_seeder_sent_bytes",
		"Bytes the seeder's root peer reports having sent to its children.", []string{"stream"}, nil)
	descOffload = prometheus.NewDesc("banyan_swarm_offload_ratio",
		"Share of viewer bytes not sent by the seeder (neither by its root peer nor over HTTP).", []string{"stream"}, nil)
	descStalls = prometheus.NewDesc("banyan_swarm_stalls",
		"Stalls reported by current viewers.", []string{"stream"}, nil)
)

func (swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDepth, descBytes, descSeederUp, descOffload, descStalls} {
		ch <- d
	}
}

func (c swarmCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.t.streamList() {
		st.mu.Lock()
		var p2p, turn, origin, seederUp, stalls uint64
		for _, s := range st.sessions {
			if s.isSeeder {
				seederUp += s.stats.BytesUp
				continue
			}
			p2p += s.stats.BytesP2P
			turn += s.stats.BytesTURN
			origin += s.stats.BytesOrigin
			stalls += uint64(s.stats.Stalls)
		}
		var hist []int
		for k := 0; k < st.forest.Stripes(); k++ {
			hist = st.forest.DepthHistogram(hist[:0], k)
			for i, n := range hist { // hist[0] is depth 1
				if n > 0 {
					ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(n), st.name, strconv.Itoa(k), strconv.Itoa(i+1))
				}
			}
		}
		st.mu.Unlock()
		total := p2p + turn + origin
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(p2p), st.name, "p2p")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(turn), st.name, "turn")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(origin), st.name, "origin")
		ch <- prometheus.MustNewConstMetric(descSeederUp, prometheus.GaugeValue, float64(seederUp), st.name)
		ch <- prometheus.MustNewConstMetric(descStalls, prometheus.GaugeValue, float64(stalls), st.name)
		if total > 0 {
			fromSeeder := min(float64(seederUp+origin), float64(total))
			ch <- prometheus.MustNewConstMetric(descOffload, prometheus.GaugeValue, 1-fromSeeder/float64(total), st.name)
		}
	}
}
