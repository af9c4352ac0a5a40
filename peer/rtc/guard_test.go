//go:build !js

package rtc

import (
	"errors"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/guard"
)

// A panic in a callback of a guarded Transport fails that link with the
// panic and reports it; the Transport and the other side go on.
func TestGuardedCallbackPanic(t *testing.T) {
	b := newBus(t)
	reported := make(chan *guard.PanicError, 4)
	g := guard.New(func(pe *guard.PanicError) { reported <- pe })
	closed := make(chan error, 4)
	ta := b.transport(t, 1, Config{
		Guard:   g,
		OnOpen:  func(*Link) { var m map[int]int; m[1] = 1 }, // a bug in the engine's glue
		OnClose: func(_ *Link, err error) { closed <- err },
	})
	b.transport(t, 2, Config{})
	if _, err := ta.Dial(2); err != nil {
		t.Fatal(err)
	}
	select {
	case pe := <-reported:
		if pe.Where != "rtc open" {
			t.Errorf("reported where %q", pe.Where)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the panic was not reported")
	}
	select {
	case err := <-closed:
		var pe *guard.PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("link ended with %v, want the panic", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the link did not fail")
	}
	if ta.Link(2) != nil || g.Panics() != 1 {
		t.Fatalf("link still registered or %d panics", g.Panics())
	}
	// The Transport still dials.
	b.transport(t, 3, Config{})
	if _, err := ta.Dial(3); err != nil {
		t.Fatal(err)
	}
}
