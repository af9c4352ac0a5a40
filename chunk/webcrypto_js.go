//go:build js

package chunk

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/jsawait"
)

// In the browser the hashes over whole chunks and the AES-GCM decryption
// go to WebCrypto (crypto.subtle), which runs them in native code: the
// pure-Go code compiled to wasm runs at 30–100 MB/s (AES-GCM,
// SHA-512, SHA-256), about 2 % of a core at 3 Mbit/s for a relaying
// viewer. Per 94 KiB chunk (Open and Sum256) the main thread spent 5.1 ms
// in Go and 1.8 ms with WebCrypto under Node (TestMeasureWebCryptoCPU);
// Chromium runs them on the main thread too, at 0.5 ms (SHA-512), 0.14–0.24
// (SHA-256) and 0.7–1.0 ms (AES-GCM) per 96 KiB (docs/wasm-size.md). The
// Ed25519ph signature check stays in Go: WebCrypto's Ed25519 has neither
// the prehash nor a context.
//
// WebCrypto is promise-only: the calling goroutine waits for the promise
// (jsawait), the event loop runs meanwhile. Where the page has no
// crypto.subtle (an insecure context: plain http on a LAN address) or a
// call fails in a way that says it cannot work, the pure-Go code runs.

// webMin is the smallest input sent to WebCrypto: below it a promise's
// round trip costs more than the pure-Go hash (a 4 KiB SHA-512 is ~40 µs
// in wasm).
const webMin = 4 << 10

// webTimeout bounds a wait; a promise that does not settle in it turns
// WebCrypto off for the page.
const webTimeout = 5 * time.Second

var web struct {
	subtle js.Value // crypto.subtle, undefined where unusable
	off    atomic.Bool
	u8     js.Value // Uint8Array

	// scratch is where inputs are copied for a call. WebCrypto copies its
	// input when called, so the buffer is free again as soon as the call
	// returns its promise: mu is held only for the copy and the call.
	mu      sync.Mutex
	scratch js.Value
	size    int
}

func init() {
	web.subtle = findSubtle()
	web.u8 = js.Global().Get("Uint8Array")
	if web.subtle.IsUndefined() || web.u8.Type() != js.TypeFunction {
		web.off.Store(true)
	}
}

// findSubtle is crypto.subtle if it has what is used here.
func findSubtle() (s js.Value) {
	defer func() {
		if recover() != nil {
			s = js.Undefined()
		}
	}()
	c := js.Global().Get("crypto")
	if c.Type() != js.TypeObject {
		return js.Undefined()
	}
	s = c.Get("subtle")
	if s.Type() != js.TypeObject {
		return js.Undefined()
	}
	for _, m := range []string{"digest", "importKey", "decrypt"} {
		if s.Get(m).Type() != js.TypeFunction {
			return js.Undefined()
		}
	}
	return s
}

// webCall copies parts into the scratch buffer, back to back, and calls
// crypto.subtle[method] with the arguments args makes of views of them
// (and of all of them, whole), then waits for the result.
func webCall(method string, args func(views []js.Value, whole js.Value) []any, parts ...[]byte) (js.Value, error) {
	p, err := webStart(method, args, parts)
	if err != nil {
		return js.Undefined(), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), webTimeout)
	defer cancel()
	return jsawait.Await(ctx, p)
}

func webStart(method string, args func(views []js.Value, whole js.Value) []any, parts [][]byte) (p js.Value, err error) {
	n := 0
	for _, b := range parts {
		n += len(b)
	}
	web.mu.Lock()
	defer web.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("webcrypto: " + errs.Text(r))
		}
	}()
	if web.size < n {
		web.size = max(n, 128<<10)
		web.scratch = web.u8.New(web.size)
	}
	views := make([]js.Value, len(parts))
	off := 0
	for i, b := range parts {
		views[i] = web.scratch.Call("subarray", off, off+len(b))
		js.CopyBytesToJS(views[i], b)
		off += len(b)
	}
	return web.subtle.Call(method, args(views, web.scratch.Call("subarray", 0, n))...), nil
}

// webFailed turns WebCrypto off after a failure that is not about the
// data (a missing algorithm, a timeout): the pure-Go code runs from now.
func webFailed(err error) {
	if rj, ok := errors.AsType[*jsawait.Rejection](err); ok && rj.Reason.Type() == js.TypeObject {
		if n := rj.Reason.Get("name"); n.Type() == js.TypeString && n.String() == "OperationError" {
			return // a bad tag: the data's fault, the Go fallback says so
		}
	}
	web.off.Store(true)
}

// bytesOf appends the bytes of an ArrayBuffer to dst.
func bytesOf(dst []byte, ab js.Value) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("webcrypto: result: " + errs.Text(r))
		}
	}()
	u := web.u8.New(ab)
	n := u.Length()
	out = slices.Grow(dst, n)[:len(dst)+n]
	js.CopyBytesToGo(out[len(dst):], u)
	return out, nil
}

func webHash(alg string, size int, parts ...[]byte) ([]byte, bool) {
	v, err := webCall("digest", func(_ []js.Value, whole js.Value) []any { return []any{alg, whole} }, parts...)
	if err == nil {
		var h []byte
		if h, err = bytesOf(make([]byte, 0, size), v); err == nil && len(h) == size {
			return h, true
		}
	}
	webFailed(err)
	return nil, false
}

func webSum256(b []byte) (out [sha256.Size]byte, ok bool) {
	if len(b) < webMin || web.off.Load() {
		return out, false
	}
	h, ok := webHash("SHA-256", sha256.Size, b)
	copy(out[:], h)
	return out, ok
}

func webDigest(stream string, signed []byte) ([]byte, bool) {
	if len(signed) < webMin || web.off.Load() {
		return nil, false
	}
	pfx := append([]byte{byte(len(stream))}, stream...)
	return webHash("SHA-512", sha512.Size, pfx, signed)
}

// webKey is a session key imported into WebCrypto, on first use.
type webKey struct {
	once sync.Once
	key  js.Value // a CryptoKey; undefined when the import failed
}

func (s *sessionKey) webOpen(dst, nonce, ct, aad []byte) ([]byte, bool) {
	if len(ct) < webMin || web.off.Load() {
		return nil, false
	}
	s.web.once.Do(func() {
		s.web.key = js.Undefined()
		k, err := webCall("importKey", func(v []js.Value, _ js.Value) []any {
			return []any{"raw", v[0], "AES-GCM", false, []any{"decrypt"}}
		}, s.raw[:])
		if err != nil {
			webFailed(err)
			return
		}
		s.web.key = k
	})
	if s.web.key.Type() != js.TypeObject {
		return nil, false
	}
	v, err := webCall("decrypt", func(v []js.Value, _ js.Value) []any {
		return []any{map[string]any{"name": "AES-GCM", "iv": v[0], "additionalData": v[1], "tagLength": 128}, s.web.key, v[2]}
	}, nonce, aad, ct)
	if err == nil {
		var pt []byte
		if pt, err = bytesOf(dst, v); err == nil && len(pt) == len(dst)+len(ct)-16 {
			return pt, true
		}
	}
	webFailed(err)
	return nil, false
}
