package peer

// Logger is what the peer packages log through (log.go): in the
// browser's wasm an interface with slog's methods and key-value
// arguments, so that the wasm need not link log/slog.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// Discard is a Logger that logs nothing.
var Discard Logger = discard{}

type discard struct{}

func (discard) Debug(string, ...any) {}
func (discard) Info(string, ...any)  {}
func (discard) Warn(string, ...any)  {}
func (discard) Error(string, ...any) {}

// LoggerWith returns a Logger that adds args to every record, before the
// record's own (as slog.Logger.With does).
func LoggerWith(l Logger, args ...any) Logger {
	return withLogger{l, args[:len(args):len(args)]}
}

type withLogger struct {
	l    Logger
	args []any
}

func (w withLogger) Debug(msg string, args ...any) { w.l.Debug(msg, append(w.args, args...)...) }
func (w withLogger) Info(msg string, args ...any)  { w.l.Info(msg, append(w.args, args...)...) }
func (w withLogger) Warn(msg string, args ...any)  { w.l.Warn(msg, append(w.args, args...)...) }
func (w withLogger) Error(msg string, args ...any) { w.l.Error(msg, append(w.args, args...)...) }
