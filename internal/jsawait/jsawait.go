//go:build js

// Package jsawait waits for a JavaScript promise from Go in the browser's
// wasm (the viewer's fetch and websocket, peer/rtc's RTCPeerConnection,
// chunk's WebCrypto). The wait blocks the calling goroutine only: Go's
// scheduler hands the event loop back to the browser meanwhile. It must
// not be called from a js.Func callback itself, which has to return before
// the promise can settle.
package jsawait

import (
	"context"
	"errors"
	"syscall/js"

	"github.com/banyan-live/banyan/internal/errs"
)

// Rejection is a promise's rejection; Reason is what it was rejected with
// (an Error object, usually).
type Rejection struct {
	Reason js.Value
}

func (r *Rejection) Error() string {
	if r.Reason.Type() == js.TypeObject {
		if m := r.Reason.Get("message"); m.Type() == js.TypeString {
			name := ""
			if n := r.Reason.Get("name"); n.Type() == js.TypeString {
				name = n.String() + ": "
			}
			return "rejected: " + name + m.String()
		}
	}
	return "rejected: " + errs.Text(r.Reason)
}

// Await waits for p to settle or ctx to end. A rejection is a *Rejection.
// The callbacks release themselves when the promise settles, never
// before: a released js.Func that JS still calls ends the program. When
// ctx ends first, Await returns at once and they are released whenever
// the promise settles.
func Await(ctx context.Context, p js.Value) (v js.Value, err error) {
	type result struct {
		v   js.Value
		err error
	}
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return js.Undefined(), errors.New("await: not a promise but " + p.Type().String())
	}
	ch := make(chan result, 1)
	var then, fail js.Func
	release := func() {
		then.Release()
		fail.Release()
	}
	arg := func(args []js.Value) js.Value {
		if len(args) > 0 {
			return args[0]
		}
		return js.Undefined()
	}
	then = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg(args)}
		release()
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: &Rejection{Reason: arg(args)}}
		release()
		return nil
	})
	if err := call(func() { p.Call("then", then, fail) }); err != nil {
		release()
		return js.Undefined(), errs.Wrap("await: ", err, "")
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

// call runs f, returning what it panics with (a getter or method of a
// hostile or odd page object throwing) as an error.
func call(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(errs.Text(r))
		}
	}()
	f()
	return nil
}
