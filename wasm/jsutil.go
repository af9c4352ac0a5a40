//go:build js && wasm

package main

import (
	"context"
	"errors"
	"strings"
	"syscall/js"

	"github.com/banyan-live/banyan/internal/errs"
)

// jsError is an exception or rejection from the browser, kept with its
// name so callers can tell QuotaExceededError or AbortError apart.
type jsError struct {
	Name    string
	Message string
}

func (e *jsError) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// errorFrom turns a thrown or rejected JS value into a Go error.
func errorFrom(v js.Value) error {
	switch v.Type() {
	case js.TypeObject:
		name, msg := v.Get("name"), v.Get("message")
		e := &jsError{Name: "Error"}
		if name.Type() == js.TypeString {
			e.Name = name.String()
		}
		if msg.Type() == js.TypeString {
			e.Message = msg.String()
		}
		return e
	case js.TypeString:
		return &jsError{Name: "Error", Message: v.String()}
	}
	return &jsError{Name: "Error", Message: v.Type().String()}
}

// isJSError reports whether err is a browser error of the given name.
func isJSError(err error, name string) bool {
	var je *jsError
	return errors.As(err, &je) && je.Name == name
}

// try runs f, turning a JS exception (syscall/js panics with js.Error)
// into an error, and so a browser that lacks an API: syscall/js panics
// when a called method is missing ("Value.Call: property x is not a
// function") or a value has the wrong type (*js.ValueError), and a
// missing API must degrade the feature, not end the program. Those come
// back as a jsError named "MissingAPI". Other panics propagate.
func try(f func()) (err error) {
	defer func() {
		r := recover()
		switch r := r.(type) {
		case nil:
		case js.Error:
			err = errorFrom(r.Value)
		case *js.ValueError:
			err = &jsError{Name: "MissingAPI", Message: r.Error()}
		case string:
			if !strings.HasPrefix(r, "syscall/js: ") {
				panic(r)
			}
			err = &jsError{Name: "MissingAPI", Message: r}
		default:
			panic(r)
		}
	}()
	f()
	return nil
}

// await waits for promise p. The callbacks release themselves when the
// promise settles, never before: a released js.Func that JS still calls
// crashes the program. When ctx ends first await returns at once and the
// callbacks are released whenever the promise settles (callers abort what
// they can, as fetch does, so it settles soon).
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return js.Undefined(), errors.New("await: not a promise but " + p.Type().String())
	}
	ch := make(chan result, 1)
	var then, catch js.Func
	release := func() {
		then.Release()
		catch.Release()
	}
	then = js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		release()
		return nil
	})
	catch = js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{err: errorFrom(v)}
		release()
		return nil
	})
	if err := try(func() { p.Call("then", then, catch) }); err != nil {
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

// defined reports whether v is neither undefined nor null.
func defined(v js.Value) bool { return !v.IsUndefined() && !v.IsNull() }
