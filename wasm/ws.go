//go:build js && wasm

package main

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"syscall/js"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/guard"
)

// wsConn is a message-oriented websocket on the browser's WebSocket.
//
// It stands in for github.com/coder/websocket, whose js build imports
// net/http (Dial returns an *http.Response), and with it crypto/tls,
// crypto/x509 and net/http's package state: 2.9 MB more wasm, 0.6 MB
// brotli, in a viewer that has no other use for them. The signaling needs
// only text messages, so this is small.
type wsConn struct {
	ws    js.Value
	limit int // largest message accepted; a larger one closes the conn

	mu      sync.Mutex
	queue   [][]byte
	qbytes  int
	avail   chan struct{} // signalled when queue gains a message
	closed  chan struct{}
	once    sync.Once
	err     error
	funcs   []js.Func
	cleaned bool
	guard   *guard.Guard
}

// Bounds on what the other side can make us hold.
const (
	wsMaxQueued      = 256     // messages read by the browser, not yet by us
	wsMaxQueuedBytes = 4 << 20 // and their bytes
	wsMaxBuffered    = 1 << 20 // bytes sent but not yet on the wire
)

// errWSClosed is returned by Read and Write once the socket is closed.
var errWSClosed = errors.New("websocket closed")

// dialWS opens a websocket and waits until it is open or ctx ends.
func dialWS(ctx context.Context, url string, limit int, g *guard.Guard) (*wsConn, error) {
	ctor := js.Global().Get("WebSocket")
	if ctor.Type() != js.TypeFunction {
		return nil, errors.New("this browser has no WebSocket")
	}
	var ws js.Value
	if err := try(func() { ws = ctor.New(url) }); err != nil {
		return nil, errs.Wrap("websocket "+url+": ", err, "")
	}
	return openWS(ctx, ws, url, limit, g)
}

// adoptWS takes a websocket the page opened while the wasm was still
// loading (banyan-player.js; it saves the connection set-up, 150–400 ms
// in Chromium) and waits until it is open. ok is false when ws is not a
// WebSocket still connecting or open: the caller dials instead.
func adoptWS(ctx context.Context, ws js.Value, url string, limit int, g *guard.Guard) (c *wsConn, ok bool, err error) {
	ctor := js.Global().Get("WebSocket")
	if ctor.Type() != js.TypeFunction || ws.Type() != js.TypeObject || !ws.InstanceOf(ctor) {
		return nil, false, nil
	}
	if st := ws.Get("readyState"); st.Type() != js.TypeNumber || st.Int() > 1 { // CLOSING, CLOSED
		return nil, false, nil
	}
	c, err = openWS(ctx, ws, url, limit, g)
	return c, true, err
}

// openWS takes over ws (connecting or open) and waits until it is open.
func openWS(ctx context.Context, ws js.Value, url string, limit int, g *guard.Guard) (*wsConn, error) {
	c := &wsConn{ws: ws, limit: limit, avail: make(chan struct{}, 1), closed: make(chan struct{}), guard: g}
	c.ws.Set("binaryType", "arraybuffer")
	opened := make(chan struct{})
	var openOnce sync.Once
	c.on("onopen", func(js.Value) { openOnce.Do(func() { close(opened) }) })
	c.on("onmessage", c.onMessage)
	c.on("onclose", func(ev js.Value) {
		code, reason := ev.Get("code").Int(), ev.Get("reason").String()
		c.shut(errs.Wrap("", errWSClosed, ": code "+strconv.Itoa(code)+" "+reason))
	})
	if c.ws.Get("readyState").Int() == 1 { // OPEN before we listened
		openOnce.Do(func() { close(opened) })
	}
	select {
	case <-opened:
		return c, nil
	case <-c.closed:
		c.cleanup()
		return nil, errs.Wrap("websocket "+url+": ", c.err, "")
	case <-ctx.Done():
		c.Close(1000, "")
		return nil, errs.Wrap("websocket "+url+": ", ctx.Err(), "")
	}
}

func (c *wsConn) on(prop string, f func(js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ev := js.Undefined()
		if len(args) > 0 {
			ev = args[0]
		}
		_ = c.guard.Run("websocket "+prop, func() { f(ev) })
		return nil
	})
	c.funcs = append(c.funcs, fn)
	c.ws.Set(prop, fn)
}

func (c *wsConn) onMessage(ev js.Value) {
	data := ev.Get("data")
	var b []byte
	switch data.Type() {
	case js.TypeString:
		s := data.String()
		if len(s) > c.limit {
			c.tooBig(len(s))
			return
		}
		b = []byte(s)
	case js.TypeObject: // ArrayBuffer
		n := data.Get("byteLength").Int()
		if n > c.limit {
			c.tooBig(n)
			return
		}
		b = make([]byte, n)
		js.CopyBytesToGo(b, js.Global().Get("Uint8Array").New(data))
	default:
		return
	}
	c.mu.Lock()
	if len(c.queue) >= wsMaxQueued || c.qbytes+len(b) > wsMaxQueuedBytes {
		c.mu.Unlock()
		c.shut(errors.New("websocket: peer sends faster than it is read"))
		_ = try(func() { c.ws.Call("close", 1008, "flood") })
		return
	}
	c.queue = append(c.queue, b)
	c.qbytes += len(b)
	c.mu.Unlock()
	select {
	case c.avail <- struct{}{}:
	default:
	}
}

func (c *wsConn) tooBig(n int) {
	c.shut(errors.New("websocket: message of " + strconv.Itoa(n) + " bytes exceeds " + strconv.Itoa(c.limit)))
	_ = try(func() { c.ws.Call("close", 1009, "message too big") })
}

func (c *wsConn) shut(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.closed)
	})
}

// Read returns the next message.
func (c *wsConn) Read(ctx context.Context) ([]byte, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			b := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.qbytes -= len(b)
			c.mu.Unlock()
			return b, nil
		}
		c.mu.Unlock()
		select {
		case <-c.avail:
		case <-c.closed:
			c.mu.Lock()
			pending, err := len(c.queue) > 0, c.err
			c.mu.Unlock()
			if pending {
				continue // deliver what arrived before the close
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Write sends one text message. The browser queues it; Write fails rather
// than queue without bound when the connection does not drain.
func (c *wsConn) Write(ctx context.Context, b []byte) error {
	select {
	case <-c.closed:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	if c.ws.Get("bufferedAmount").Int() > wsMaxBuffered {
		return errors.New("websocket: send buffer full")
	}
	if err := try(func() { c.ws.Call("send", string(b)) }); err != nil {
		return errs.Wrap("websocket: send: ", err, "")
	}
	return nil
}

// Close starts the closing handshake and detaches from the socket; it
// does not wait for the other side.
func (c *wsConn) Close(code int, reason string) {
	_ = try(func() { c.ws.Call("close", code, reason) })
	c.shut(errWSClosed)
	c.cleanup()
}

// cleanup removes the handlers before releasing them, so the browser never
// calls a released function.
func (c *wsConn) cleanup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cleaned {
		return
	}
	c.cleaned = true
	for _, p := range []string{"onopen", "onmessage", "onclose"} {
		c.ws.Set(p, js.Null())
	}
	for _, f := range c.funcs {
		f.Release()
	}
}
