package turnserver

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace is below slog.LevelDebug: pion's per-packet debug output lands there, so that
// Banyan's ordinary debug level stays readable.
const levelTrace = slog.LevelDebug - 4

// pionLoggerFactory routes pion/turn's logging into slog. pion logs some hostile-input
// events at warn and error level (unknown attributes, failed writes), so those go through
// the rate limiter keyed by format string; info (per-request chatter such as "permission
// denied", which the server logs itself) becomes debug, debug becomes trace.
type pionLoggerFactory struct {
	log  *slog.Logger
	rate *rateLog
}

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope), rate: f.rate}
}

type pionLogger struct {
	log  *slog.Logger
	rate *rateLog
}

func (l pionLogger) plain(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l pionLogger) plainf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) limited(level slog.Level, key, msg string) {
	l.rate.logf("pion:"+key, level, msg, slog.String("component", "pion/turn"))
}

func (l pionLogger) Trace(msg string)                  { l.plain(levelTrace, msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.plainf(levelTrace, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.plain(levelTrace, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.plainf(levelTrace, format, args...) }
func (l pionLogger) Info(msg string)                   { l.plain(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.plainf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.limited(slog.LevelWarn, msg, msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.limited(slog.LevelWarn, format, fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.limited(slog.LevelError, msg, msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.limited(slog.LevelError, format, fmt.Sprintf(format, args...))
}
