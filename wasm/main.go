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
// For now chunks come from the origin only (originLoop); the peer engine
// takes over as the source once it is plugged in (see viewer).
package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

func main() {
	level := slog.LevelInfo
	if os.Getenv("BANYAN_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	page, err := openPage(os.Getenv("BANYAN_HANDLE"))
	if err != nil {
		log.Error("banyan viewer", "err", err)
		return
	}
	cfg, err := readConfig()
	if err != nil {
		page.setState(StateError, err.Error())
		return
	}
	log = log.With("stream", cfg.Stream)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var v *viewer
	player := NewPlayer(PlayerConfig{
		Video: page.video,
		Log:   log,
		Fail:  func(err error) { v.fail(err) },
	})
	v = newViewer(cfg, player, log)

	stop := js.FuncOf(func(js.Value, []js.Value) any {
		v.tracker.leave()
		cancel()
		return nil
	})
	defer stop.Release()
	play := js.FuncOf(func(js.Value, []js.Value) any {
		player.Play()
		return nil
	})
	defer play.Release()
	page.handle.Set("stop", stop)
	page.handle.Set("play", play)

	done := make(chan struct{})
	go func() {
		defer close(done)
		page.report(ctx, v)
	}()
	v.run(ctx)
	<-done
	player.Close()
	page.handle.Delete("stop")
	page.handle.Delete("play")
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
func (p *page) report(ctx context.Context, v *viewer) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.setState(v.state())
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
		v.mu.Unlock()
		p2p, turn, origin, parents, children := v.meshStats()
		stats := map[string]any{
			"peer":        float64(peer),
			"bytesP2P":    float64(p2p),
			"bytesTURN":   float64(turn),
			"bytesOrigin": float64(origin),
			"parents":     parents,
			"children":    children,
			"behindMs":    ps.BehindMS,
			"bufferMs":    ps.BufferMS,
			"stalls":      ps.Stalls,
			"stalledMs":   ps.StalledMS,
			"rate":        ps.Rate,
			"epoch":       float64(ps.Epoch),
			"seq":         float64(ps.Seq),
			"gaps":        float64(ps.Gaps),
			"dropped":     float64(ps.Dropped),
			"rebuilds":    ps.Rebuilds,
			"blocked":     ps.Blocked,
		}
		_ = try(func() { f.Invoke(js.ValueOf(stats)) })
	}
}
