//go:build js

package rtc

import (
	"errors"
	"sync"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/protocol"
)

// API has nothing to choose in the browser: its RTCPeerConnection has its
// own ICE. Config.API is ignored there.
type API struct{}

func defaultAPI(bool) *API { return nil }

// promiseTimeout bounds each wait for one of the browser's WebRTC
// promises (createOffer, setLocalDescription, addIceCandidate, ...): they
// settle in milliseconds, and one that never does must fail its link, not
// hold a goroutine forever.
const promiseTimeout = 10 * time.Second

// jsConn is a peerConn on the browser's RTCPeerConnection, called
// directly through syscall/js. Every call that could throw (a method an
// engine lacks, a closed connection, a bad SDP) is caught and returned as
// an error: in the browser a panic from syscall/js ends the whole peer.
type jsConn struct {
	v js.Value

	mu       sync.Mutex
	funcs    []js.Func // the event handlers, released by close
	channels []*jsChannel
	closed   bool
}

func newPeerConn(_ *API, ice []protocol.ICEServer, relayOnly bool, ev pcEvents) (peerConn, error) {
	c := &jsConn{}
	err := catch(func() {
		ctor := js.Global().Get("RTCPeerConnection")
		if ctor.Type() != js.TypeFunction {
			panic("this browser has no RTCPeerConnection")
		}
		servers := make([]any, 0, len(ice))
		for _, s := range ice {
			urls := make([]any, len(s.URLs))
			for i, u := range s.URLs {
				urls[i] = u
			}
			srv := map[string]any{"urls": urls}
			if s.Username != "" {
				srv["username"] = s.Username
			}
			if s.Credential != "" {
				srv["credential"] = s.Credential
			}
			servers = append(servers, srv)
		}
		cfg := map[string]any{"iceServers": servers}
		if relayOnly {
			cfg["iceTransportPolicy"] = "relay"
		}
		c.v = ctor.New(cfg)
	})
	if err != nil {
		return nil, errs.Wrap("rtc: RTCPeerConnection: ", err, "")
	}
	// The handlers only read the event and hand it to a goroutine: they
	// run on the browser's event loop, which must not wait for Go.
	c.on(c.v, "onicecandidate", func(e js.Value) {
		cand := e.Get("candidate")
		if cand.Type() != js.TypeObject {
			return // null: gathering complete
		}
		ci := candidateInit{Candidate: stringAt(cand, "candidate")}
		if ci.Candidate == "" {
			return // an end-of-candidates marker
		}
		if mid := cand.Get("sdpMid"); mid.Type() == js.TypeString {
			s := mid.String()
			ci.SDPMid = &s
		}
		if idx := cand.Get("sdpMLineIndex"); idx.Type() == js.TypeNumber {
			n := uint16(idx.Int())
			ci.SDPMLineIndex = &n
		}
		if uf := cand.Get("usernameFragment"); uf.Type() == js.TypeString {
			s := uf.String()
			ci.UsernameFragment = &s
		}
		go ev.candidate(ci)
	})
	c.on(c.v, "onconnectionstatechange", func(js.Value) {
		go ev.state(connStateOf(stringAt(c.v, "connectionState")))
	})
	c.on(c.v, "ondatachannel", func(e js.Value) {
		ch := e.Get("channel")
		if ch.Type() != js.TypeObject {
			return
		}
		dc := c.channel(ch)
		go ev.dataChannel(dc)
	})
	return c, nil
}

// on sets target[prop] to a handler of its event, released by close.
// Panics inside f are caught: f probes browser objects.
func (c *jsConn) on(target js.Value, prop string, f func(e js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		e := js.Undefined()
		if len(args) > 0 {
			e = args[0]
		}
		_ = catch(func() { f(e) })
		return nil
	})
	c.mu.Lock()
	c.funcs = append(c.funcs, fn)
	c.mu.Unlock()
	target.Set(prop, fn)
}

// call calls method on v with args and waits for the promise it returns.
func call(v js.Value, method string, args ...any) (js.Value, error) {
	var p js.Value
	if err := catch(func() { p = v.Call(method, args...) }); err != nil {
		return js.Undefined(), errs.Wrap(method+": ", err, "")
	}
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return p, nil // not a promise (an old engine's synchronous form)
	}
	r, err := awaitValue(p, promiseTimeout)
	if err != nil {
		return js.Undefined(), errs.Wrap(method+": ", err, "")
	}
	return r, nil
}

func (c *jsConn) createDataChannel(label string, r Reliability) (dataChannel, error) {
	init := map[string]any{"ordered": r == ReliableOrdered}
	if r == Unreliable {
		init["maxRetransmits"] = 0
	}
	var ch js.Value
	if err := catch(func() { ch = c.v.Call("createDataChannel", label, init) }); err != nil {
		return nil, errs.Wrap("createDataChannel: ", err, "")
	}
	return c.channel(ch), nil
}

// description is an RTCSessionDescriptionInit.
func description(typ, sdp string) map[string]any { return map[string]any{"type": typ, "sdp": sdp} }

func (c *jsConn) offer() (string, error) {
	o, err := call(c.v, "createOffer")
	if err != nil {
		return "", err
	}
	if _, err := call(c.v, "setLocalDescription", o); err != nil {
		return "", err
	}
	return sdpOf(o)
}

func (c *jsConn) acceptOffer(sdp string) (string, error) {
	if _, err := call(c.v, "setRemoteDescription", description("offer", sdp)); err != nil {
		return "", err
	}
	a, err := call(c.v, "createAnswer")
	if err != nil {
		return "", err
	}
	if _, err := call(c.v, "setLocalDescription", a); err != nil {
		return "", err
	}
	return sdpOf(a)
}

// sdpOf is the SDP of an RTCSessionDescription(Init).
func sdpOf(d js.Value) (string, error) {
	if s := stringAt(d, "sdp"); s != "" {
		return s, nil
	}
	return "", errors.New("the browser's session description has no SDP")
}

func (c *jsConn) setAnswer(sdp string) error {
	_, err := call(c.v, "setRemoteDescription", description("answer", sdp))
	return err
}

func (c *jsConn) addCandidate(ci candidateInit) error {
	init := map[string]any{"candidate": ci.Candidate}
	if ci.SDPMid != nil {
		init["sdpMid"] = *ci.SDPMid
	}
	if ci.SDPMLineIndex != nil {
		init["sdpMLineIndex"] = int(*ci.SDPMLineIndex)
	}
	if ci.UsernameFragment != nil {
		init["usernameFragment"] = *ci.UsernameFragment
	}
	if ci.SDPMid == nil && ci.SDPMLineIndex == nil {
		// Both null is a TypeError; the one media section is the data's.
		init["sdpMLineIndex"] = 0
	}
	_, err := call(c.v, "addIceCandidate", init)
	return err
}

// close closes the connection and releases every handler. The handlers
// are unset first: the browser reads a handler when it dispatches an
// event, so none of ours runs after this (calling a released js.Func
// would end the program).
func (c *jsConn) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	funcs, channels := c.funcs, c.channels
	c.funcs, c.channels = nil, nil
	c.mu.Unlock()
	var err error
	for _, ch := range channels {
		ch.unset()
	}
	err = catch(func() {
		for _, p := range []string{"onicecandidate", "onconnectionstatechange", "ondatachannel"} {
			c.v.Set(p, js.Null())
		}
		c.v.Call("close")
	})
	for _, f := range funcs {
		f.Release()
	}
	return err
}

// channel wraps an RTCDataChannel of this connection. binaryType is set
// at once: engines that still default to "blob" would otherwise hand
// every piece through an asynchronous FileReader.
func (c *jsConn) channel(v js.Value) *jsChannel {
	_ = catch(func() { v.Set("binaryType", "arraybuffer") })
	ch := &jsChannel{c: c, v: v, in: &inbox{wake: make(chan struct{}, 1), done: make(chan struct{})}}
	c.mu.Lock()
	c.channels = append(c.channels, ch)
	c.mu.Unlock()
	return ch
}

// jsChannel is a dataChannel on the browser's RTCDataChannel.
type jsChannel struct {
	c  *jsConn
	v  js.Value
	in *inbox

	sendMu sync.Mutex
	// buf is a scratch Uint8Array the messages are copied into before
	// send(), which copies them again (the browser cannot keep a view
	// the page may change): one allocation per size instead of one
	// ArrayBuffer per message. view is buf's subarray of viewLen bytes,
	// kept because nearly every piece has the same size.
	buf, view js.Value
	bufLen    int
	viewLen   int
}

var (
	uint8Array  = js.Global().Get("Uint8Array")
	arrayBuffer = js.Global().Get("ArrayBuffer")
)

func (d *jsChannel) label() string { return stringAt(d.v, "label") }

func (d *jsChannel) handle(lowWater int, ev dcEvents) {
	c := d.c
	_ = catch(func() { d.v.Set("bufferedAmountLowThreshold", lowWater) })
	// bufferedLow only clears a flag: run on the event loop, not a
	// goroutine per event (a relaying viewer gets hundreds a second).
	c.on(d.v, "onbufferedamountlow", func(js.Value) { ev.bufferedLow() })
	c.on(d.v, "onopen", func(js.Value) { go ev.open() })
	c.on(d.v, "onclose", func(js.Value) {
		d.in.stop()
		go ev.close()
	})
	d.in.start(ev.message)
	c.on(d.v, "onmessage", func(e js.Value) {
		data := e.Get("data")
		if !data.InstanceOf(arrayBuffer) {
			return // text, or a Blob where binaryType could not be set
		}
		// Copied here, on the event loop, so the goroutine holds Go
		// memory only; the buffer is the callee's.
		u := uint8Array.New(data)
		b := make([]byte, u.Length())
		js.CopyBytesToGo(b, u)
		d.in.put(b)
	})
	if stringAt(d.v, "readyState") == "open" {
		go ev.open()
	}
}

// inbox hands a channel's messages, in order, to one goroutine that lives
// as long as the channel: a goroutine per message cost a relaying viewer
// the runtime's stack growth and scheduling on every piece (issue 17's
// profile: a sixth of the main thread's busy time in the Go runtime).
type inbox struct {
	mu   sync.Mutex
	q    [][]byte
	wake chan struct{}
	done chan struct{}
	once sync.Once
}

// start runs the goroutine (which ends at once if stop came first).
func (in *inbox) start(f func([]byte)) {
	go func() {
		for {
			select {
			case <-in.done:
				return
			case <-in.wake:
			}
			for {
				in.mu.Lock()
				if len(in.q) == 0 {
					in.mu.Unlock()
					break
				}
				b := in.q[0]
				in.q[0] = nil
				in.q = in.q[1:]
				in.mu.Unlock()
				f(b)
			}
		}
	}()
}

// put queues a message; it never blocks (it runs on the event loop).
func (in *inbox) put(b []byte) {
	in.mu.Lock()
	in.q = append(in.q, b)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default: // awake already: it drains the queue before it sleeps
	}
}

// stop ends the goroutine; messages still queued are dropped with the
// channel.
func (in *inbox) stop() {
	in.once.Do(func() { close(in.done) })
}

// unset removes the channel's handlers (its connection releases them).
func (d *jsChannel) unset() {
	d.in.stop()
	_ = catch(func() {
		for _, p := range []string{"onbufferedamountlow", "onopen", "onclose", "onmessage"} {
			d.v.Set(p, js.Null())
		}
	})
}

func (d *jsChannel) bufferedAmount() int {
	n := 0
	_ = catch(func() { n = d.v.Get("bufferedAmount").Int() })
	return n
}

func (d *jsChannel) send(msg []byte) error {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	return catch(func() {
		if d.bufLen < len(msg) {
			d.bufLen = max(len(msg), 16<<10)
			d.buf = uint8Array.New(d.bufLen)
			d.viewLen = -1
		}
		if d.viewLen != len(msg) {
			d.view = d.buf.Call("subarray", 0, len(msg))
			d.viewLen = len(msg)
		}
		js.CopyBytesToJS(d.view, msg)
		d.v.Call("send", d.view)
	})
}

func (d *jsChannel) close() error {
	return catch(func() { d.v.Call("close") })
}
