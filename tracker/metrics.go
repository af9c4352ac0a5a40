package tracker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	peers        *prometheus.GaugeVec
	joins        prometheus.Counter
	leaves       prometheus.Counter
	reparents    prometheus.Counter
	edges        prometheus.Counter
	evictions    prometheus.Counter
	falseReports prometheus.Counter
	demotions    prometheus.Counter
	// reportMovesCapped counts reports past the reporter's move budget.
	reportMovesCapped prometheus.Counter
	reports           *prometheus.CounterVec
	refused           *prometheus.CounterVec
	msgsIn            *prometheus.CounterVec
	msgsOut           *prometheus.CounterVec
	assign            prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "banyan_tracker_" + name, Help: help})
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "banyan_tracker_" + name, Help: help}, labels)
	}
	m := &metrics{
		peers:             prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "banyan_tracker_peers", Help: "Viewers in a stream's overlay."}, []string{"stream"}),
		joins:             c("joins_total", "Viewers admitted."),
		leaves:            c("leaves_total", "Viewers gone (clean or not)."),
		reparents:         c("reparents_total", "Children moved away from a reported parent."),
		edges:             c("edges_added_total", "Overlay edges added (joins and re-parents)."),
		evictions:         c("evictions_total", "Peers evicted."),
		falseReports:      c("false_reports_total", "Bad-chunk reports whose chunk verified."),
		demotions:         c("demotions_total", "Parents whose capacity was halved after a child reported them silent, flooding or sending bad chunks."),
		reportMovesCapped: c("report_moves_capped_total", "Reports that did not move their reporter: it had used its move budget."),
		reports:           cv("reports_total", "Reports from peers, by kind.", "kind"),
		refused:           cv("refusals_total", "Refused connections and messages, by reason.", "reason"),
		msgsIn:            cv("messages_in_total", "Signaling messages received, by type.", "type"),
		msgsOut:           cv("messages_out_total", "Signaling messages sent, by type.", "type"),
		assign: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "banyan_tracker_assign_seconds", Help: "Time to place a joining peer in the overlay.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.peers, m.joins, m.leaves, m.reparents, m.edges, m.evictions, m.falseReports, m.demotions, m.reportMovesCapped,
			m.reports, m.refused, m.msgsIn, m.msgsOut, m.assign)
	}
	return m
}
