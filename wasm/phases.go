//go:build js && wasm

package main

import (
	"sync"
	"syscall/js"
	"time"
)

// phases is the viewer's join timeline: when each step from the wasm's
// start to the first MSE append happened, in milliseconds of the page's
// clock (performance.now(), 0 at navigation), so that the page's own
// marks (wasm compiled, first frame) line up with them. The stats carry
// it as "phases"; the join measurement reads it per engine.
type phases struct {
	mu   sync.Mutex
	perf js.Value
	at   map[string]float64
}

func newPhases() *phases {
	return &phases{perf: js.Global().Get("performance"), at: make(map[string]float64)}
}

// mark records name now, the first time only.
func (p *phases) mark(name string) { p.markAt(name, time.Now()) }

// markAt records name at t (a zero t: not yet), the first time only.
func (p *phases) markAt(name string, t time.Time) {
	if p == nil || t.IsZero() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.at[name]; ok || !p.perf.Truthy() {
		return
	}
	p.at[name] = p.perf.Call("now").Float() - float64(time.Since(t))/float64(time.Millisecond)
}

// snapshot is the timeline for the page.
func (p *phases) snapshot() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]any, len(p.at))
	for k, v := range p.at {
		m[k] = float64(int64(v))
	}
	return m
}
