//go:build js && wasm

package main

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/wasm/internal/mse"
)

// Player limits and timings.
const (
	// maxQueuedBytes bounds media waiting for the SourceBuffer. A queue this
	// deep means appends are not completing (a hidden tab, a stuck decoder);
	// newer media is dropped and playback resumes at a keyframe.
	maxQueuedBytes = 32 << 20
	// keepBehind is how much played media stays buffered, for the user's
	// small rewinds; evictEvery is the least that gets removed at once.
	keepBehind = 30.0
	evictMin   = 10.0
	// pausedKeep is how much media before the live edge stays buffered
	// while the user has paused: resuming jumps to the edge anyway.
	pausedKeep = 10.0
	// maxRebuilds bounds MediaSource rebuilds per rebuildWindow before the
	// player gives up with an error.
	maxRebuilds   = 3
	rebuildWindow = time.Minute
	tickEvery     = 250 * time.Millisecond
)

// PlayerStats is what the page and the tracker see of playback.
type PlayerStats struct {
	Started  bool // playback has begun
	Playing  bool // currentTime advanced in the last second
	Paused   bool // paused by the user (or autoplay was refused)
	Stalled  bool
	Blocked  bool // autoplay was refused: the page must offer a play button
	BufferMS int  // media buffered ahead of currentTime
	// BehindMS is how far currentTime is behind the newest buffered media.
	BehindMS  int
	Stalls    int
	StalledMS int
	Rate      float64
	Epoch     uint32
	Seq       uint64
	Gaps      uint64
	Dropped   uint64
	Filled    uint64 // chunks appended with the GOP's keyframe for video after a loss
	Rebuilds  int
}

// qop is a queued SourceBuffer operation and its retry count.
type qop struct {
	mse.Op
	quotaTries int
}

// event is a browser event forwarded to the player's goroutine.
type event struct {
	typ string
	gen int // which MediaSource generation it belongs to
}

// Player plays a Banyan stream in a <video> element with Media Source
// Extensions. Init and Chunk have the shape of the peer engine's Player
// interface (peer.Player) and may be called from any goroutine; they never
// block on the browser. A goroutine owned by the Player does all the
// work against the DOM: one appendBuffer at a time (the next on
// updateend), QuotaExceededError handling, eviction of old media,
// live-edge control and stall accounting. Close stops it.
type Player struct {
	video js.Value
	log   peer.Logger
	fail  func(error) // fatal playback errors go to the page
	guard *guard.Guard

	mu      sync.Mutex
	planner mse.Planner
	queue   []qop
	qbytes  int
	stats   PlayerStats
	live    bool // the broadcast is on: standing still is a stall
	// target is the peer engine's playout delay (0: Edge's own), which
	// live-edge control follows.
	target time.Duration
	wake   chan struct{}
	events chan event

	// Owned by the run goroutine.
	ms, sb      js.Value
	url         string
	gen         int
	pendingMIME string
	offset      float64
	edge        *mse.Edge
	keys        mse.Keys      // where removals may end (random access points)
	streaming   mse.Streaming // the ManagedMediaSource's hints
	vis         mse.Visibility
	doc         js.Value // document, for visibilitychange
	stall       mse.StallMeter
	rebuilds    []time.Time
	lastCur     float64
	lastMove    time.Time
	blocked     bool
	lastRebuild time.Time
	onEvent     js.Func
	listened    []listener
	cancel      context.CancelFunc
	done        chan struct{}
	phases      *phases
	// early: ms was attached by prepare and has no type yet.
	early bool
}

type listener struct {
	target js.Value
	typ    string
}

// PlayerConfig configures a Player.
type PlayerConfig struct {
	Video js.Value // an HTMLVideoElement
	Edge  mse.EdgeConfig
	Log   peer.Logger // default: none
	// Fail receives errors that stop playback for good (an unplayable
	// codec, a browser without MSE, repeated decoder failures).
	Fail func(error)
	// Guard runs the player's goroutines and browser callbacks (nil: a
	// panic ends the program).
	Guard *guard.Guard
	// Phases, when set, gets the player's steps of the join timeline.
	Phases *phases
}

// NewPlayer starts a player on cfg.Video. The element is muted so that
// autoplay is allowed; the page offers the unmute button.
func NewPlayer(cfg PlayerConfig) *Player {
	if cfg.Log == nil {
		cfg.Log = peer.Discard
	}
	if cfg.Fail == nil {
		cfg.Fail = func(error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Player{
		video:  cfg.Video,
		log:    cfg.Log,
		fail:   cfg.Fail,
		guard:  cfg.Guard,
		phases: cfg.Phases,
		wake:   make(chan struct{}, 1),
		events: make(chan event, 256),
		edge:   mse.NewEdge(cfg.Edge),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	p.onEvent = js.FuncOf(func(this js.Value, args []js.Value) any {
		_ = p.guard.Run("player event", func() {
			if len(args) == 0 {
				return
			}
			gen := 0
			if g := this.Get("__banyanGen"); g.Type() == js.TypeNumber {
				gen = g.Int()
			}
			select {
			case p.events <- event{typ: args[0].Get("type").String(), gen: gen}:
			default: // the tick catches up with whatever was dropped
			}
		})
		return nil
	})
	p.video.Set("muted", true)
	p.video.Set("playsInline", true)
	p.video.Set("autoplay", false) // Edge starts playback itself, near the live edge
	for _, typ := range []string{"waiting", "playing", "pause", "error"} {
		p.listen(p.video, typ)
	}
	if doc := js.Global().Get("document"); doc.Truthy() {
		p.doc = doc
		p.listen(doc, "visibilitychange")
	}
	p.guard.Go("player", func() { p.run(ctx) })
	return p
}

// Init takes the init segment of an epoch (peer.Player).
func (p *Player) Init(epoch uint32, init []byte) {
	p.phases.mark("playerInit")
	p.mu.Lock()
	ops, err := p.planner.Init(epoch, init)
	p.enqueueLocked(ops)
	p.mu.Unlock()
	if err != nil {
		p.fail(errs.Wrap("this stream cannot be played here: ", err, ""))
		return
	}
	p.signal()
}

// Chunk takes the next chunk, opened (peer.Player).
func (p *Player) Chunk(h chunk.Header, payload []byte) {
	p.mu.Lock()
	if p.qbytes+len(payload) > maxQueuedBytes {
		// Resume at a keyframe once the queue drains; Planner sees the gap.
		p.stats.Dropped++
		p.mu.Unlock()
		return
	}
	p.enqueueLocked(p.planner.Chunk(h, payload))
	p.stats.Epoch, p.stats.Seq = h.Epoch, h.Seq
	p.mu.Unlock()
	p.signal()
}

// SetLive tells the player whether the broadcast is on, so that running
// out of media after the broadcaster stopped is not counted as a stall.
func (p *Player) SetLive(live bool) {
	p.mu.Lock()
	p.live = live
	p.mu.Unlock()
}

// Stats returns the current figures.
func (p *Player) Stats() PlayerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	ps := p.planner.Stats()
	s.Gaps, s.Dropped, s.Filled = ps.Gaps, s.Dropped+ps.Dropped, ps.Filled
	return s
}

// Play resumes after the page's play button (autoplay refused) or a user
// pause; a Player far behind then jumps to the live edge by itself.
func (p *Player) Play() {
	select {
	case p.events <- event{typ: "banyan:play"}:
	default:
	}
}

// Close stops the player and detaches it from the element.
func (p *Player) Close() {
	p.cancel()
	<-p.done
}

func (p *Player) enqueueLocked(ops []mse.Op) {
	for _, op := range ops {
		p.queue = append(p.queue, qop{Op: op})
		p.qbytes += len(op.Data)
	}
}

func (p *Player) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Player) listen(target js.Value, typ string) {
	target.Call("addEventListener", typ, p.onEvent)
	p.listened = append(p.listened, listener{target, typ})
}

// unlisten removes the listeners from every target but keep, so events of
// a replaced MediaSource never reach a released function.
func (p *Player) unlisten(keep ...js.Value) {
	rest := p.listened[:0]
	for _, l := range p.listened {
		if slices.ContainsFunc(keep, func(k js.Value) bool { return k.Truthy() && l.target.Equal(k) }) {
			rest = append(rest, l)
			continue
		}
		l.target.Call("removeEventListener", l.typ, p.onEvent)
	}
	p.listened = rest
}

func (p *Player) run(ctx context.Context) {
	defer close(p.done)
	defer p.teardown()
	p.prepare()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case ev := <-p.events:
			p.handle(ev)
		case <-tick.C:
			p.control(time.Now())
		}
		p.pump()
	}
}

func (p *Player) teardown() {
	p.unlisten()
	if p.url != "" {
		js.Global().Get("URL").Call("revokeObjectURL", p.url)
		// Detach only our own source: the page may already have started
		// another player on the same element (a changed stream attribute).
		if p.video.Get("src").String() == p.url {
			p.video.Call("removeAttribute", "src")
			_ = try(func() { p.video.Call("load") })
		}
	}
	p.onEvent.Release()
}

func (p *Player) handle(ev event) {
	if ev.gen != 0 && ev.gen != p.gen {
		return // a replaced MediaSource
	}
	switch ev.typ {
	case "sourceopen":
		p.phases.mark("sourceOpen")
		p.sourceOpen()
	case "updateend":
		// pump runs after every event. Before playback has started, an
		// append may have brought the buffer to Edge's start amount:
		// decide now, not at the next tick (up to 250 ms later; the join
		// timeline showed ~180–280 ms from first append to play).
		if !p.edge.Started() {
			p.control(time.Now())
		}
	case "waiting":
		p.control(time.Now())
	case "error":
		p.mediaError()
	case "startstreaming":
		p.streaming.Start()
		p.log.Debug("media source: startstreaming")
	case "endstreaming":
		p.streaming.End()
		p.log.Debug("media source: endstreaming")
	case "visibilitychange":
		p.visibilityChange(time.Now())
	case "banyan:play":
		p.blocked = false
		p.play()
	case "banyan:blocked":
		p.blocked = true
	}
}

// mediaSourceCtor prefers MediaSource and falls back to ManagedMediaSource
// (iPhone Safari 17.1+ has only the latter).
func mediaSourceCtor() (ctor js.Value, managed bool) {
	if ms := js.Global().Get("MediaSource"); ms.Type() == js.TypeFunction {
		return ms, false
	}
	if ms := js.Global().Get("ManagedMediaSource"); ms.Type() == js.TypeFunction {
		return ms, true
	}
	return js.Undefined(), false
}

// create gives the stream a MediaSource of type mime: the one prepare
// attached if it is still unused, or a fresh one. The SourceBuffer is
// added on sourceopen (at once if it has fired).
func (p *Player) create(mime string) error {
	ctor, managed := mediaSourceCtor()
	if !ctor.Truthy() {
		return errors.New("this browser has no Media Source Extensions")
	}
	supported, ok := mse.SupportedMIME(mime, func(m string) bool { return ctor.Call("isTypeSupported", m).Bool() })
	if !ok {
		return errors.New(mse.UnsupportedReason(mime))
	}
	if !p.early || !p.ms.Truthy() || p.ms.Get("readyState").String() == "closed" {
		p.attach(ctor, managed)
	}
	p.early = false
	p.pendingMIME = supported
	if p.ms.Get("readyState").String() == "open" {
		p.sourceOpen()
	}
	return nil
}

// prepare attaches a MediaSource before the stream's type is known, so
// that the element's media pipeline starts while the viewer joins:
// Chromium fires sourceopen ~250 ms after the attach (Firefox ~30 ms),
// which used to come after the init segment and delay the first frame by
// as much (the join timeline, docs/wasm-size.md). create adopts it.
func (p *Player) prepare() {
	ctor, managed := mediaSourceCtor()
	if !ctor.Truthy() {
		return // Init reports it
	}
	if err := try(func() { p.attach(ctor, managed) }); err != nil {
		p.log.Info("media source: early attach failed", "err", err)
		return
	}
	p.early = true
	p.phases.mark("mediaSourceAttached")
}

// attach puts a fresh MediaSource on the element, without a SourceBuffer.
func (p *Player) attach(ctor js.Value, managed bool) {
	p.unlisten(p.video, p.doc)
	if p.url != "" {
		js.Global().Get("URL").Call("revokeObjectURL", p.url)
	}
	p.gen++
	p.ms = ctor.New()
	p.ms.Set("__banyanGen", p.gen)
	p.sb = js.Undefined()
	p.pendingMIME = ""
	for _, typ := range []string{"sourceopen", "sourceended", "sourceclose"} {
		p.listen(p.ms, typ)
	}
	p.streaming = mse.NewStreaming(managed)
	if managed {
		// ManagedMediaSource plays only without AirPlay or with an
		// alternative source; we have none.
		p.video.Set("disableRemotePlayback", true)
		// Its hints: when to append and when the browser has enough.
		p.listen(p.ms, "startstreaming")
		p.listen(p.ms, "endstreaming")
	}
	p.url = js.Global().Get("URL").Call("createObjectURL", p.ms).String()
	p.video.Set("src", p.url)
	p.offset = 0
	p.keys.Reset()
	p.edge.Restart()
}

func (p *Player) sourceOpen() {
	if p.sb.Truthy() || !p.ms.Truthy() || p.pendingMIME == "" {
		return // added already, replaced, or opened early: create adds it
	}
	err := try(func() {
		p.sb = p.ms.Call("addSourceBuffer", p.pendingMIME)
		p.sb.Set("mode", "segments")
		p.sb.Set("__banyanGen", p.gen)
		// Live: no known duration. Chrome then shows no seek bar end.
		p.ms.Set("duration", math.Inf(1))
	})
	if err == nil {
		p.phases.mark("sourceBuffer")
	}
	if err != nil {
		p.fatal(errs.Wrap("media source: add "+p.pendingMIME+": ", err, ""))
		return
	}
	p.listen(p.sb, "updateend")
	p.listen(p.sb, "error")
}

// ready reports whether the SourceBuffer can take an operation now.
func (p *Player) ready() bool {
	return p.sb.Truthy() && !p.sb.Get("updating").Bool() &&
		p.ms.Get("readyState").String() != "closed"
}

// pump starts the next queued operation if the SourceBuffer is idle.
func (p *Player) pump() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		op := p.queue[0]
		if op.Kind == mse.OpAppend && p.ready() && !p.appendAllowed() {
			// The browser has enough (endstreaming): the next tick or
			// startstreaming looks again.
			p.mu.Unlock()
			return
		}
		if op.Kind != mse.OpCreate && !p.ready() {
			// Waiting for sourceopen or updateend; with no MediaSource at
			// all (after a fatal error) there is nothing to wait for.
			if !p.ms.Truthy() {
				p.queue, p.qbytes = nil, 0
			}
			p.mu.Unlock()
			return
		}
		p.queue = p.queue[1:]
		p.qbytes -= len(op.Data)
		p.mu.Unlock()

		switch op.Kind {
		case mse.OpCreate:
			if err := p.create(op.MIME); err != nil {
				p.fatal(err)
				return
			}
			continue // the init append waits for sourceopen
		case mse.OpChangeType:
			if !p.sb.Truthy() || p.sb.Get("changeType").Type() != js.TypeFunction {
				if err := p.create(op.MIME); err != nil {
					p.fatal(err)
					return
				}
				continue
			}
			mime := op.MIME
			if ctor, _ := mediaSourceCtor(); ctor.Truthy() {
				// The spelling this browser takes (Opus / opus).
				if m, ok := mse.SupportedMIME(mime, func(m string) bool { return ctor.Call("isTypeSupported", m).Bool() }); ok {
					mime = m
				}
			}
			if err := try(func() { p.sb.Call("changeType", mime) }); err != nil {
				p.log.Info("changeType failed; new media source", "mime", op.MIME, "err", err)
				if err := p.create(op.MIME); err != nil {
					p.fatal(err)
					return
				}
			}
			continue
		case mse.OpAppend:
			if p.append(op) {
				return // wait for updateend
			}
		}
	}
}

// appendAllowed follows the ManagedMediaSource's streaming hints.
func (p *Player) appendAllowed() bool {
	if !p.streaming.Managed() {
		return true
	}
	ahead := mse.Ahead(mse.View{Current: p.video.Get("currentTime").Float(), Buffered: ranges(p.video.Get("buffered"))})
	return p.streaming.AllowAppend(ahead)
}

// append starts one appendBuffer; it reports whether one is in progress.
func (p *Player) append(op qop) bool {
	if op.Offset != p.offset {
		if err := try(func() { p.sb.Set("timestampOffset", op.Offset) }); err != nil {
			p.log.Warn("set timestampOffset", "err", err)
			p.rebuild(err)
			return false
		}
		p.offset = op.Offset
	}
	// One copy into the JS heap per append.
	u8 := js.Global().Get("Uint8Array").New(len(op.Data))
	js.CopyBytesToJS(u8, op.Data)
	err := try(func() { p.sb.Call("appendBuffer", u8) })
	switch {
	case err == nil:
		p.keys.Add(op.Op)
		if !op.Init {
			p.phases.mark("firstAppend")
		}
		return true
	case isJSError(err, "QuotaExceededError"):
		op.quotaTries++
		cur := p.video.Get("currentTime").Float()
		// Only up to a keyframe: MSE widens a removal to the next one.
		if r, ok := mse.QuotaEvict(ranges(p.sb.Get("buffered")), &p.keys, cur); ok && op.quotaTries <= 3 {
			p.log.Info("buffer full: evicting", "from", r.Start, "to", r.End)
			p.requeue(op)
			p.remove(r)
			return p.sb.Get("updating").Bool()
		}
		// Nothing old to drop: the buffer is full of media ahead of
		// playback. Skip this chunk and what depends on it; the planner
		// resumes at a keyframe and Edge jumps ahead.
		p.mu.Lock()
		rest, resume := mse.DropDependents(op.Op, p.queue, func(q qop) mse.Op { return q.Op })
		dropped := len(p.queue) - len(rest) + 1
		p.qbytes = 0
		for _, q := range rest {
			p.qbytes += len(q.Data)
		}
		p.queue = rest
		if resume {
			p.planner.ResumeAtKeyframe(op.Epoch)
		}
		p.stats.Dropped += uint64(dropped)
		p.mu.Unlock()
		p.log.Warn("buffer full: dropping chunk and its dependents", "epoch", op.Epoch, "seq", op.Seq, "dropped", dropped, "resume_at_keyframe", resume)
		return false
	default:
		p.log.Warn("appendBuffer", "epoch", op.Epoch, "seq", op.Seq, "err", err)
		p.rebuild(err)
		return false
	}
}

// remove starts SourceBuffer.remove(r) and forgets the keyframes in it.
func (p *Player) remove(r mse.Range) {
	if try(func() { p.sb.Call("remove", r.Start, r.End) }) == nil {
		p.keys.Prune(r.End)
	}
}

func (p *Player) requeue(op qop) {
	p.mu.Lock()
	p.queue = append([]qop{op}, p.queue...)
	p.qbytes += len(op.Data)
	p.mu.Unlock()
}

// mediaError handles a SourceBuffer or element error: usually a decode
// error, after which the MediaSource is unusable.
func (p *Player) mediaError() {
	msg := "media error"
	if e := p.video.Get("error"); defined(e) {
		msg = "media error " + strconv.Itoa(e.Get("code").Int()) + ": " + e.Get("message").String()
	}
	p.rebuild(errors.New(msg))
}

// rebuild starts over on a fresh MediaSource with the current init,
// discarding queued media; too many rebuilds in a row are fatal.
func (p *Player) rebuild(cause error) {
	now := time.Now()
	if now.Sub(p.lastRebuild) < 500*time.Millisecond {
		return // the element and the SourceBuffer report one failure twice
	}
	p.lastRebuild = now
	recent := p.rebuilds[:0]
	for _, t := range p.rebuilds {
		if now.Sub(t) < rebuildWindow {
			recent = append(recent, t)
		}
	}
	p.rebuilds = append(recent, now)
	if len(p.rebuilds) > maxRebuilds {
		p.fatal(errs.Wrap("playback keeps failing: ", cause, ""))
		return
	}
	p.log.Warn("rebuilding media source", "cause", cause)
	p.mu.Lock()
	p.queue, p.qbytes = nil, 0
	p.enqueueLocked(p.planner.Rebuild())
	p.stats.Rebuilds++
	p.mu.Unlock()
}

func (p *Player) fatal(err error) {
	p.log.Error("player", "err", err)
	p.mu.Lock()
	p.queue, p.qbytes = nil, 0
	p.mu.Unlock()
	p.fail(err)
}

// ranges converts a TimeRanges.
func ranges(tr js.Value) []mse.Range {
	if !defined(tr) {
		return nil
	}
	n := tr.Get("length").Int()
	out := make([]mse.Range, 0, n)
	for i := range n {
		out = append(out, mse.Range{Start: tr.Call("start", i).Float(), End: tr.Call("end", i).Float()})
	}
	return out
}

// SetTarget makes live-edge control run d behind the newest media: the
// peer engine's adaptive playout delay, which its deadlines assume.
func (p *Player) SetTarget(d time.Duration) {
	p.mu.Lock()
	p.target = d
	p.mu.Unlock()
}

// view is what the element looks like now.
func (p *Player) view(now time.Time) mse.View {
	return mse.View{
		Now:      now,
		Current:  p.video.Get("currentTime").Float(),
		Buffered: ranges(p.video.Get("buffered")),
		Paused:   p.video.Get("paused").Bool(),
		Seeking:  p.video.Get("seeking").Bool(),
		Rate:     p.video.Get("playbackRate").Float(),
	}
}

// visibilityChange follows the page being hidden and shown: on return,
// back to the live edge at once, playing again if the browser paused the
// muted video while it was hidden (mse.Visibility).
func (p *Player) visibilityChange(now time.Time) {
	if p.doc.Get("visibilityState").String() == "hidden" {
		p.vis.Hide(now, p.edge.Started() && !p.video.Get("paused").Bool())
		p.log.Debug("page hidden")
		return
	}
	_, since := p.vis.Hidden()
	if !p.sb.Truthy() {
		p.vis.Show(mse.View{}, 0)
		return
	}
	a := p.vis.Show(p.view(now), p.edge.Config().Target.Seconds())
	p.log.Debug("page shown", "hidden_for", now.Sub(since), "seek", a.Seek, "to", a.SeekTo, "play", a.Play)
	if a.Seek {
		p.video.Set("currentTime", a.SeekTo)
	}
	if a.Rate != p.video.Get("playbackRate").Float() {
		p.video.Set("playbackRate", a.Rate)
	}
	if a.Play && !p.blocked {
		p.play()
	}
	p.control(now)
}

// control runs live-edge control, eviction and stall accounting.
func (p *Player) control(now time.Time) {
	if !p.sb.Truthy() {
		return
	}
	v := p.view(now)
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target > 0 {
		p.edge.SetTarget(target)
	}
	a := p.edge.Decide(v)
	if a.Seek || a.Play {
		p.log.Debug("edge", "seek", a.Seek, "to", a.SeekTo, "play", a.Play, "current", v.Current, "buffered", errs.List(v.Buffered), "ready", p.video.Get("readyState").Int())
	}
	if a.Seek {
		p.video.Set("currentTime", a.SeekTo)
	}
	if a.Rate != v.Rate {
		p.video.Set("playbackRate", a.Rate)
	}
	if a.Play {
		p.play()
	}
	if v.Current != p.lastCur && !v.Seeking {
		p.lastCur, p.lastMove = v.Current, now
	}
	p.mu.Lock()
	live := p.live
	p.mu.Unlock()
	expecting := p.edge.Started() && !v.Paused && !v.Seeking && live
	p.stall.Observe(now, v.Current, expecting)

	if p.ready() {
		if r, ok := mse.EvictTo(ranges(p.sb.Get("buffered")), &p.keys, mse.KeepFrom(v, keepBehind, pausedKeep), evictMin); ok {
			p.remove(r)
		}
	}

	p.mu.Lock()
	s := &p.stats
	s.Started = p.edge.Started()
	s.Playing = !p.lastMove.IsZero() && now.Sub(p.lastMove) < time.Second && !v.Paused
	s.Paused = v.Paused && s.Started
	s.Blocked = p.blocked
	s.Stalled = p.stall.Stalled()
	s.BufferMS = int(mse.Ahead(v) * 1000)
	s.BehindMS = int(mse.Behind(v) * 1000)
	s.Stalls = p.stall.Count()
	s.StalledMS = int(p.stall.Total(now) / time.Millisecond)
	s.Rate = a.Rate
	p.mu.Unlock()
}

// play calls video.play(); a refusal (autoplay policy) is reported in
// Stats so the page can show a play button.
func (p *Player) play() {
	p.phases.mark("play")
	var pr js.Value
	if err := try(func() { pr = p.video.Call("play") }); err != nil || !defined(pr) {
		return
	}
	p.guard.Go("player play", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := await(ctx, pr); err != nil && isJSError(err, "NotAllowedError") {
			p.log.Info("autoplay refused", "err", err)
			p.mu.Lock()
			p.stats.Blocked = true
			p.mu.Unlock()
			select {
			case p.events <- event{typ: "banyan:blocked"}:
			default:
			}
		}
	})
}
