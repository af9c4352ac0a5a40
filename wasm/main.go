//go:build js && wasm

// Command wasm is Banyan's browser viewer: compiled to WebAssembly, it runs
// in the page that banyan-player.js sets up, joins the stream through the
// tracker's websocket, fetches, verifies and decrypts chunks, and plays
// them with Media Source Extensions in the page's <video>.
//
// The page passes its configuration in the Go environment (go.env of
// wasm_exec.js):
//
//	BANYAN_STREAM   stream name (required)
//	BANYAN_HANDLE   key of the page's handle object in globalThis.__banyan
//	BANYAN_TRACKER  signaling URL (default ws(s)://<page host>/ws)
//	BANYAN_ORIGIN   chunk origin (default the page's origin)
//	BANYAN_TOKEN    viewer token of a private stream
//	BANYAN_DEBUG    "1" for debug logs in the console
//
// The handle is the page's side of the bridge: the viewer reads its video
// element, calls its onstate(state, reason) and onstats(stats) methods, and
// sets stop() and play() on it for the page to call.
//
// A panic in the viewer's goroutines or browser callbacks is recovered:
// the viewer reports it in the page state, shuts down and exits with
// exitRestart, and the page starts a fresh instance.
package main

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/wasm/internal/textlog"
)

// Exit codes, which banyan-player.js acts on: 0 ends the viewer for good
// (the page stopped it, a configuration error, a fatal refusal), and
// exitRestart asks for a fresh instance after the guard recovered a
// panic. A panic the guard did not see (in a goroutine of a library)
// ends the program with the runtime's code 2, which the page restarts too.
const exitRestart = 3

// shutdownWait bounds the orderly shutdown after a panic: the goroutine
// that panicked may have left a lock held.
const shutdownWait = 2 * time.Second

func main() { os.Exit(run()) }

func run() int {
	ph := newPhases()
	ph.mark("wasmMain")
	debug := os.Getenv("BANYAN_DEBUG") == "1"
	log := textlog.New(os.Stderr, debug)

	page, err := openPage(os.Getenv("BANYAN_HANDLE"))
	if err != nil {
		log.Error("banyan viewer", "err", err)
		return 0
	}
	early := page.handle.Get("ws")
	page.handle.Delete("ws")
	cfg, err := readConfig()
	if err != nil {
		_ = try(func() { early.Call("close") })
		page.setState(StateError, err.Error())
		return 0
	}
	cfg.EarlyWS = early
	log = log.With("stream", cfg.Stream)

	// A panic in any goroutine or callback of the viewer would end the
	// program and freeze the page: the guard recovers it, and the viewer
	// shuts down and asks the page for a fresh start.
	crashed := make(chan *guard.PanicError, 1)
	g := guard.New(func(pe *guard.PanicError) {
		log.Error("panic recovered: restarting the viewer", "where", pe.Where, "panic", errs.Text(pe.Value), "stack", string(pe.Stack))
		select {
		case crashed <- pe:
		default:
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var v *viewer
	player := NewPlayer(PlayerConfig{
		Video:  page.video,
		Log:    log,
		Fail:   func(err error) { v.fail(err) },
		Guard:  g,
		Phases: ph,
	})
	v = newViewer(cfg, player, log, g, ph)

	funcs := map[string]js.Func{
		"stop": js.FuncOf(func(js.Value, []js.Value) any {
			_ = g.Run("page stop", func() {
				v.tracker.leave()
				cancel()
			})
			return nil
		}),
		"play": js.FuncOf(func(js.Value, []js.Value) any {
			_ = g.Run("page play", player.Play)
			return nil
		}),
	}
	if debug {
		// debugPanic("guarded" | "unguarded") makes the viewer panic, so
		// tests can watch the page recover; only with the debug attribute.
		funcs["debugPanic"] = js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) > 0 && args[0].String() == "unguarded" {
				go func() { panic("debugPanic: unguarded") }()
				return nil
			}
			g.Go("debugPanic", func() { panic("debugPanic: guarded") })
			return nil
		})
	}
	for name, f := range funcs {
		page.handle.Set(name, f)
	}

	reported := make(chan struct{})
	g.Go("page report", func() {
		defer close(reported)
		page.report(ctx, v, g)
	})
	ran := make(chan struct{})
	g.Go("viewer", func() {
		defer close(ran)
		v.run(ctx)
	})

	code := 0
	select {
	case <-ctx.Done():
		<-ran
		<-reported
		player.Close()
	case pe := <-crashed:
		code = exitRestart
		page.setState(StateError, "the viewer crashed and restarts: "+pe.Error())
		// Leave the tracker and close the links now, so that neighbours
		// do not keep feeding a dead peer; bounded, as a lock may be held.
		waitBounded(shutdownWait, func() {
			v.tracker.leave()
			cancel()
			<-ran
			<-reported
			player.Close()
		})
	}
	for name, f := range funcs {
		page.handle.Delete(name)
		f.Release()
	}
	return code
}

// waitBounded runs f on its own goroutine and waits for it at most d.
func waitBounded(d time.Duration, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }() // shutting down after a panic: a second one changes nothing
		f()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// readConfig reads the page's settings from the environment, with
// defaults from the page's location.
func readConfig() (Config, error) {
	loc := js.Global().Get("location")
	cfg := Config{
		Stream:     os.Getenv("BANYAN_STREAM"),
		TrackerURL: os.Getenv("BANYAN_TRACKER"),
		OriginURL:  os.Getenv("BANYAN_ORIGIN"),
		Token:      os.Getenv("BANYAN_TOKEN"),
	}
	if nav := js.Global().Get("navigator"); defined(nav) {
		cfg.Client = nav.Get("userAgent").String()
	}
	if !protocol.ValidStream(cfg.Stream) {
		return cfg, &configError{"invalid stream name " + `"` + cfg.Stream + `"`}
	}
	if cfg.OriginURL == "" {
		cfg.OriginURL = loc.Get("origin").String()
	}
	if cfg.TrackerURL == "" {
		scheme := "ws://"
		if loc.Get("protocol").String() == "https:" {
			scheme = "wss://"
		}
		cfg.TrackerURL = scheme + loc.Get("host").String() + "/ws"
	}
	if !strings.HasPrefix(cfg.TrackerURL, "ws://") && !strings.HasPrefix(cfg.TrackerURL, "wss://") {
		return cfg, &configError{"tracker URL must be ws:// or wss://"}
	}
	return cfg, nil
}

type configError struct{ msg string }

func (e *configError) Error() string { return "configuration: " + e.msg }

// page is the JS side of the bridge.
type page struct {
	handle js.Value
	video  js.Value

	mu     sync.Mutex // the report goroutine and main, after a panic
	state  string
	reason string
}

func openPage(id string) (*page, error) {
	reg := js.Global().Get("__banyan")
	if !defined(reg) || id == "" {
		return nil, &configError{"no page handle (load the viewer with banyan-player.js)"}
	}
	h := reg.Get(id)
	if !defined(h) || !defined(h.Get("video")) {
		return nil, &configError{"page handle " + id + " has no video element"}
	}
	return &page{handle: h, video: h.Get("video")}, nil
}

// setState calls the page's onstate when the state changes.
func (p *page) setState(state, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state == p.state && reason == p.reason {
		return
	}
	p.state, p.reason = state, reason
	if f := p.handle.Get("onstate"); f.Type() == js.TypeFunction {
		_ = try(func() { f.Invoke(state, reason) })
	}
}

// report pushes the state (4 times a second, on change) and the stats
// (once a second) to the page until ctx ends.
func (p *page) report(ctx context.Context, v *viewer, g *guard.Guard) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	webrtc := hasWebRTC()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.setState(v.state())
		v.notePhases()
		if d := v.playout(); d > 0 {
			v.player.SetTarget(d)
		}
		if n%4 != 0 {
			continue
		}
		f := p.handle.Get("onstats")
		if f.Type() != js.TypeFunction {
			continue
		}
		ps := v.player.Stats()
		v.mu.Lock()
		peer := v.peer
		cause, timerLag := v.stall.cause, v.stall.lag
		v.mu.Unlock()
		src, parents, children, paths := v.meshStats()
		stats := map[string]any{
			"peer":         float64(peer),
			"bytesViewers": float64(src.Viewers),
			"bytesEdges":   float64(src.Edges),
			"bytesSeeder":  float64(src.Seeder),
			"bytesOrigin":  float64(src.Origin),
			"bytesTURN":    float64(src.TURN),
			"parents":      parents,
			"paths":        strings.Join(paths, ","),
			"children":     children,
			"webrtc":       webrtc,
			"depth":        v.depth(),
			"playoutMs":    float64(v.playout().Milliseconds()),
			"behindMs":     ps.BehindMS,
			"bufferMs":     ps.BufferMS,
			"stalls":       ps.Stalls,
			"stalledMs":    ps.StalledMS,
			"rate":         ps.Rate,
			"epoch":        float64(ps.Epoch),
			"seq":          float64(ps.Seq),
			"gaps":         float64(ps.Gaps),
			"dropped":      float64(ps.Dropped),
			"filled":       float64(ps.Filled),
			"rebuilds":     ps.Rebuilds,
			"blocked":      ps.Blocked,
			"panics":       float64(g.Panics()),
			"cause":        cause,
			"timerLagMs":   float64(timerLag.Milliseconds()),
			"phases":       v.phases.snapshot(),
		}
		_ = try(func() { f.Invoke(js.ValueOf(stats)) })
	}
}
