package seeder

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	publishes   *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	ingestBytes *prometheus.CounterVec
	frames      *prometheus.CounterVec
	chunks      *prometheus.CounterVec
	chunkBytes  *prometheus.CounterVec
	keyInterval *prometheus.GaugeVec
	// chunkLatency is ingest to chunk: from the arrival of a chunk's first
	// access unit to the sealed chunk. It is the chunk duration plus the
	// packager's wait for the next frame, plus processing.
	chunkLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_seeder_publish_sessions_total", Help: "Publish sessions started, by ingest protocol.",
		}, []string{"protocol"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_seeder_publish_refusals_total", Help: "Publishes refused, by protocol and reason.",
		}, []string{"protocol", "reason"}),
		ingestBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_seeder_ingest_bytes_total", Help: "Media payload bytes ingested (rate: ingest bitrate).",
		}, []string{"stream", "kind"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_seeder_frames_total", Help: "Access units ingested (rate of kind=video: fps).",
		}, []string{"stream", "kind"}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_seeder_chunks_total", Help: "Sealed chunks produced.",
		}, []string{"stream"}),
		chunkBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_seeder_chunk_bytes_total", Help: "Sealed chunk bytes produced.",
		}, []string{"stream"}),
		keyInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "banyan_seeder_keyframe_interval_seconds", Help: "Media time between the last two keyframes.",
		}, []string{"stream"}),
		chunkLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "banyan_seeder_ingest_to_chunk_seconds", Help: "From a chunk's first access unit arriving to the chunk sealed.",
			Buckets: []float64{.05, .1, .15, .2, .25, .3, .35, .4, .5, .75, 1, 2},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.publishes, m.refusals, m.ingestBytes, m.frames, m.chunks, m.chunkBytes, m.keyInterval, m.chunkLatency)
	}
	return m
}

// Refused counts a refused publish (bad key, unsupported codec, …).
func (s *Seeder) Refused(protocol, reason string) {
	s.metrics.refusals.WithLabelValues(protocol, reason).Inc()
}
