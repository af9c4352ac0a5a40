// Package textlog is the browser viewer's logger: slog's method set and
// key-value arguments (peer.Logger), lines in the form of slog's
// TextHandler without the time (the browser console stamps each line),
// written to the console through os.Stderr. The viewer's wasm does not
// link log/slog: its default handler, installed by the package's
// initializer, keeps encoding/json's encoder, the text and JSON handlers
// and the time formatting in the binary, 88 KB of the brotli wasm
// (docs/wasm-size.md).
package textlog

import (
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/banyan-live/banyan/internal/errs"
)

// Logger writes one line per record.
type Logger struct {
	mu    *sync.Mutex
	w     io.Writer
	debug bool
	attrs []byte // the With arguments, formatted
}

// New writes to w; Debug records are dropped unless debug is set.
func New(w io.Writer, debug bool) *Logger {
	return &Logger{mu: new(sync.Mutex), w: w, debug: debug}
}

// With returns a Logger that adds args to every record, before the
// record's own.
func (l *Logger) With(args ...any) *Logger {
	c := *l
	c.attrs = appendArgs(l.attrs[:len(l.attrs):len(l.attrs)], args)
	return &c
}

// Debug logs at level DEBUG (when enabled).
func (l *Logger) Debug(msg string, args ...any) {
	if l.debug {
		l.log("DEBUG", msg, args)
	}
}

// Info logs at level INFO.
func (l *Logger) Info(msg string, args ...any) { l.log("INFO", msg, args) }

// Warn logs at level WARN.
func (l *Logger) Warn(msg string, args ...any) { l.log("WARN", msg, args) }

// Error logs at level ERROR.
func (l *Logger) Error(msg string, args ...any) { l.log("ERROR", msg, args) }

func (l *Logger) log(level, msg string, args []any) {
	b := make([]byte, 0, 128)
	b = append(b, "level="...)
	b = append(b, level...)
	b = append(b, " msg="...)
	b = appendValue(b, msg)
	b = append(b, l.attrs...)
	b = appendArgs(b, args)
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

// appendArgs appends " key=value" for each pair, as slog reads its
// arguments: a key without a value is logged as !BADKEY=key.
func appendArgs(b []byte, args []any) []byte {
	for len(args) > 0 {
		key, ok := args[0].(string)
		if !ok || len(args) == 1 {
			b = append(b, " !BADKEY="...)
			b = appendValue(b, errs.Text(args[0]))
			args = args[1:]
			continue
		}
		b = append(b, ' ')
		b = append(b, key...)
		b = append(b, '=')
		b = appendValue(b, errs.Text(args[1]))
		args = args[2:]
	}
	return b
}

// appendValue appends s, quoted as slog's TextHandler quotes: when it is
// empty or has space, '=', '"' or anything unprintable.
func appendValue(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == ' ' || r == '=' || r == '"' || r < 0x21 || r == 0x7f || r == utf8.RuneError || !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}
