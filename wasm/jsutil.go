//go:build js && wasm

package main

import (
	"context"
	"errors"
	"strings"
	"syscall/js"

	"github.com/banyan-live/banyan/internal/jsawait"
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

// await waits for promise p until ctx ends; a rejection is the jsError
// of its reason.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	v, err := jsawait.Await(ctx, p)
	if rj, ok := errors.AsType[*jsawait.Rejection](err); ok {
		return js.Undefined(), errorFrom(rj.Reason)
	}
	return v, err
}

// defined reports whether v is neither undefined nor null.
func defined(v js.Value) bool { return !v.IsUndefined() && !v.IsNull() }
