// Package guard turns panics in goroutines and callbacks into errors handed
// to one handler. In the browser a panic anywhere ends the whole Go program
// and leaves the page frozen, so the wasm peer runs its goroutines and the
// callbacks the browser (or pion's js build) invokes through a Guard, and
// restarts itself when one reports a panic.
//
// A nil *Guard recovers nothing: the panic goes on and crashes the
// process, which is what a native process under a supervisor wants.
package guard

import (
	"runtime/debug"
	"sync/atomic"

	"github.com/banyan-live/banyan/internal/errs"
)

// PanicError is a recovered panic: where it happened, the value it was
// called with, and the stack of the goroutine that panicked.
type PanicError struct {
	Where string
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return "panic in " + e.Where + ": " + errs.Text(e.Value)
}

// Unwrap exposes a panic value that is itself an error (a runtime error,
// or a js.Error from syscall/js), so errors.As finds it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Guard recovers panics and reports each one to its handler.
type Guard struct {
	onPanic func(*PanicError)
	panics  atomic.Uint64
}

// New returns a Guard that calls onPanic (which may be nil) for each
// recovered panic, on the goroutine that panicked. onPanic must not panic
// and must not block for long.
func New(onPanic func(*PanicError)) *Guard {
	return &Guard{onPanic: onPanic}
}

// Run calls f and returns the *PanicError if it panicked (nil otherwise),
// after reporting it. On a nil Guard it just calls f.
func (g *Guard) Run(where string, f func()) (err error) {
	if g == nil {
		f()
		return nil
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		pe := &PanicError{Where: where, Value: r, Stack: debug.Stack()}
		g.panics.Add(1)
		if g.onPanic != nil {
			g.onPanic(pe)
		}
		err = pe
	}()
	f()
	return nil
}

// Go runs f on a new goroutine under Run.
func (g *Guard) Go(where string, f func()) {
	go func() { _ = g.Run(where, f) }()
}

// Func wraps f so that every call runs under Run: for callbacks handed to
// code that calls them from its own goroutines.
func (g *Guard) Func(where string, f func()) func() {
	if g == nil {
		return f
	}
	return func() { _ = g.Run(where, f) }
}

// Panics is how many panics the Guard has recovered.
func (g *Guard) Panics() uint64 {
	if g == nil {
		return 0
	}
	return g.panics.Load()
}
