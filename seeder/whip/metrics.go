package whip

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	live     prometheus.Gauge
	sessions prometheus.Counter
	refusals *prometheus.CounterVec
	lost     *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	plis     prometheus.Counter
	ended    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		live: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "banyan_whip_sessions", Help: "WHIP sessions live now.",
		}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "banyan_whip_sessions_total", Help: "WHIP sessions accepted.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_whip_refusals_total", Help: "WHIP requests refused, by reason.",
		}, []string{"reason"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_whip_rtp_lost_total", Help: "RTP packets declared lost after the reorder wait, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_whip_dropped_total", Help: "RTP packets or frames dropped, by kind and reason.",
		}, []string{"kind", "reason"}),
		plis: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "banyan_whip_plis_total", Help: "Picture loss indications sent to publishers.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_whip_sessions_ended_total", Help: "WHIP sessions ended, by cause.",
		}, []string{"cause"}),
	}
	if reg != nil {
		reg.MustRegister(m.live, m.sessions, m.refusals, m.lost, m.dropped, m.plis, m.ended)
	}
	return m
}

// pionLogs routes pion's logs into slog. pion logs at error level for
// things a hostile or flaky peer causes, so errors become warnings and the
// rest debug; trace is dropped.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) at(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	l.log.Log(ctx, level, msg)
}

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(msg string)          { l.at(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Debugf(f string, a ...any) { l.at(slog.LevelDebug, f, a...) }
func (l pionLogger) Info(msg string)           { l.at(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Infof(f string, a ...any)  { l.at(slog.LevelDebug, f, a...) }
func (l pionLogger) Warn(msg string)           { l.at(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Warnf(f string, a ...any)  { l.at(slog.LevelDebug, f, a...) }
func (l pionLogger) Error(msg string)          { l.at(slog.LevelWarn, "%s", msg) }
func (l pionLogger) Errorf(f string, a ...any) { l.at(slog.LevelWarn, f, a...) }
