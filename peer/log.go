//go:build !js

package peer

import "log/slog"

// Logger is what the peer packages (peer, peer/rtc, peer/node) log
// through. Natively it is *slog.Logger itself (nil: no logging). In the
// browser's wasm it is an interface with slog's four methods
// (log_js.go), which the viewer fills with a small console logger: the
// wasm then does not link log/slog, whose default handler, installed by
// its package initializer, keeps encoding/json's encoder, the text
// handler and the time formatting in the binary, 88 KB of the brotli
// wasm (docs/wasm-size.md).
type Logger = *slog.Logger

// Discard is a Logger that logs nothing.
var Discard Logger = slog.New(slog.DiscardHandler)

// LoggerWith returns l with args added to every record (l.With).
func LoggerWith(l Logger, args ...any) Logger { return l.With(args...) }
