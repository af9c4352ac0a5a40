//go:build js && wasm

package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/protocol"
)

// trackerState is the signaling connection's state.
type trackerState int32

const (
	trackerConnecting   trackerState = iota // never welcomed yet
	trackerConnected                        // welcomed
	trackerReconnecting                     // lost after a welcome
	trackerRefused                          // a fatal refusal: stop
)

// trackerHandler is what the viewer does with the tracker's messages. The
// calls come from the tracker goroutine, one at a time.
type trackerHandler interface {
	welcome(w protocol.Welcome) error
	keysMsg(k protocol.Keys) error
	ended()
	// refused reports a tracker error; fatal ones end the session for good.
	refused(e protocol.Error, fatal bool)
	// stats is the periodic report, which doubles as the heartbeat.
	stats() protocol.Stats
}

// trackerClient keeps one signaling session to the tracker, reconnecting
// with backoff. In the origin-only build it joins as a leaf (NoUpload) and
// ignores Assign and Signal, which the peer engine will handle.
type trackerClient struct {
	url string
	// moved is where the last protocol.Moved sent the client (nil: url).
	moved  atomic.Pointer[string]
	join   protocol.Join
	h      trackerHandler
	log    peer.Logger
	state  atomic.Int32
	joined atomic.Bool
	// ignored counts messages this build does not act on (Assign, Signal).
	ignored atomic.Uint64
	conn    atomic.Pointer[wsConn] // the current session's
	// onMessage, when set, sees every message from the tracker first (the
	// peer engine's node takes Assign and Signal from here).
	onMessage func(protocol.Message)
	// nodeStats: the node sends the stats (and heartbeats) itself.
	nodeStats bool
	// guard runs the websocket's callbacks and the stats goroutine.
	guard *guard.Guard
	// phases, when set, gets the first session's open (join timeline).
	phases *phases
	// early is the websocket to url the page opened while the wasm
	// loaded, for the first session (js.Undefined when none).
	earlyMu sync.Mutex
	early   js.Value
}

// Timeouts of the signaling session.
const (
	dialTimeout    = 10 * time.Second
	welcomeTimeout = 10 * time.Second
	writeTimeout   = 5 * time.Second
	defaultStats   = 2 * time.Second
)

func (t *trackerClient) State() trackerState { return trackerState(t.state.Load()) }

// run keeps a session up until ctx ends or the tracker refuses for good.
func (t *trackerClient) run(ctx context.Context) {
	failures, hops := 0, 0
	for ctx.Err() == nil {
		welcomed, err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		// A tracker that does not own the stream names the one that does:
		// go there at once, a few hops at most. Anything else starts over
		// at the page's tracker, which knows the owner of the moment.
		var mv movedError
		if errors.As(err, &mv) && hops < maxMoves {
			t.log.Info("tracker: stream is on another tracker", "url", mv.url)
			t.moved.Store(&mv.url)
			hops++
			continue
		}
		t.moved.Store(nil)
		hops = 0
		var perr *protocol.Error
		if errors.As(err, &perr) && fatalCode(perr.Code) {
			t.state.Store(int32(trackerRefused))
			return
		}
		if welcomed {
			failures = 0
		}
		failures++
		if t.joined.Load() {
			t.state.Store(int32(trackerReconnecting))
		}
		delay := backoff(500*time.Millisecond, failures)
		if perr != nil && (perr.Code == protocol.CodeRateLimited || perr.Code == protocol.CodeNoStream) {
			delay = max(delay, 5*time.Second)
		}
		t.log.Info("tracker: reconnecting", "in", delay.Round(time.Millisecond), "err", err)
		sleep(ctx, delay)
	}
}

// fatalCode says which refusals reconnecting cannot fix.
func fatalCode(code string) bool {
	switch code {
	case protocol.CodeUnauthorized, protocol.CodeFull, protocol.CodeEvicted:
		return true
	}
	return false
}

// maxMoves bounds the protocol.Moved answers followed in a row.
const maxMoves = 3

// movedError ends a session the tracker answered with protocol.Moved.
type movedError struct{ url string }

func (e movedError) Error() string { return "tracker: stream moved to " + e.url }

// takeEarly returns the websocket the page opened for the first session
// (undefined after the first call, or when there is none).
func (t *trackerClient) takeEarly() js.Value {
	t.earlyMu.Lock()
	defer t.earlyMu.Unlock()
	ws := t.early
	t.early = js.Undefined()
	return ws
}

func (t *trackerClient) session(ctx context.Context) (welcomed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	url := t.url
	if m := t.moved.Load(); m != nil {
		url = *m
	}
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	var c *wsConn
	adopted := false
	if early := t.takeEarly(); early.Truthy() && url == t.url {
		c, adopted, err = adoptWS(dctx, early, url, protocol.MaxMessage, t.guard)
		if !adopted {
			t.log.Debug("tracker: the page's early websocket is closed; dialing")
		} else if err == nil {
			t.phases.mark("trackerEarly")
		}
	}
	if !adopted {
		c, err = dialWS(dctx, url, protocol.MaxMessage, t.guard)
	}
	dcancel()
	if err != nil {
		return false, errs.Wrap("tracker: dial: ", err, "")
	}
	defer c.Close(1000, "")
	t.conn.Store(c)
	t.phases.mark("trackerOpen")
	defer t.conn.CompareAndSwap(c, nil)

	if err := t.write(ctx, c, t.join); err != nil {
		return false, err
	}
	wctx, wcancel := context.WithTimeout(ctx, welcomeTimeout)
	m, err := t.read(wctx, c)
	wcancel()
	if err != nil {
		return false, errs.Wrap("tracker: waiting for welcome: ", err, "")
	}
	if mv, ok := m.(protocol.Moved); ok {
		return false, movedError{mv.URL}
	}
	if t.onMessage != nil {
		t.onMessage(m)
	}
	switch m := m.(type) {
	case protocol.Welcome:
		if err := t.h.welcome(m); err != nil {
			c.Close(1008, "bad welcome")
			return false, errs.Wrap("tracker: welcome: ", err, "")
		}
		t.joined.Store(true)
		t.state.Store(int32(trackerConnected))
		every := time.Duration(m.StatsMillis) * time.Millisecond
		if every < 500*time.Millisecond || every > time.Minute {
			every = defaultStats
		}
		if !t.nodeStats {
			t.guard.Go("tracker stats", func() { t.reportStats(ctx, c, every) })
		}
	case protocol.Error:
		t.h.refused(m, fatalCode(m.Code))
		return false, &m
	default:
		return false, errors.New("tracker: expected welcome, got " + m.Type())
	}

	for {
		m, err := t.read(ctx, c)
		if err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			return true, errs.Wrap("tracker: read: ", err, "")
		}
		if t.onMessage != nil {
			t.onMessage(m)
		}
		switch m := m.(type) {
		case protocol.Keys:
			if err := t.h.keysMsg(m); err != nil {
				t.log.Warn("tracker: keys", "err", err)
			}
		case protocol.Ended:
			t.h.ended()
		case protocol.Error:
			fatal := fatalCode(m.Code)
			t.h.refused(m, fatal)
			if fatal {
				return true, &m
			}
		default:
			t.ignored.Add(1)
		}
	}
}

// leave ends the session cleanly (Leave, then a normal close) before the
// page goes; best effort, it does not wait.
func (t *trackerClient) leave() {
	c := t.conn.Load()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = t.write(ctx, c, protocol.Leave{})
	c.Close(1000, "leaving")
}

func (t *trackerClient) reportStats(ctx context.Context, c *wsConn, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.write(ctx, c, t.h.stats()); err != nil {
				t.log.Debug("tracker: stats", "err", err)
				return
			}
		}
	}
}

func (t *trackerClient) write(ctx context.Context, c *wsConn, m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := c.Write(ctx, b); err != nil {
		return errs.Wrap("tracker: write "+m.Type()+": ", err, "")
	}
	return nil
}

func (t *trackerClient) read(ctx context.Context, c *wsConn) (protocol.Message, error) {
	for {
		b, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		m, err := protocol.Decode(b)
		if err != nil {
			// A message this build does not know is not fatal: a newer
			// tracker may send more types.
			t.log.Debug("tracker: undecodable message", "err", err)
			continue
		}
		return m, nil
	}
}

// parsePublicKey decodes the seeder's Ed25519 key (standard base64).
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("public key: want " + strconv.Itoa(ed25519.PublicKeySize) + " bytes of base64")
	}
	return ed25519.PublicKey(b), nil
}

// keyringOf builds a keyring from the tracker's content keys, each
// validated by chunk.ParseMasterKey.
func keyringOf(keys []protocol.ContentKey) (*chunk.Keyring, error) {
	mks := make([]chunk.MasterKey, 0, len(keys))
	for _, k := range keys {
		mk, err := chunk.ParseMasterKey(k.ID, k.Key, k.Salt)
		if err != nil {
			return nil, errs.Wrap("content key "+strconv.FormatUint(uint64(k.ID), 10)+": ", err, "")
		}
		mks = append(mks, mk)
	}
	return chunk.NewKeyring(mks...)
}
