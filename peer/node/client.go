//go:build !js

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/protocol"
)

// ClientConfig configures Run.
type ClientConfig struct {
	// TrackerURL is the tracker's signaling websocket, ws(s)://host/ws.
	TrackerURL string
	Join       protocol.Join
	// Node is the node's configuration; Send and Stream are filled in.
	Node Config
	// OnNode is called with each session's node once it exists (a
	// reconnect makes a new one, with a new peer id). May be nil.
	OnNode func(*Node)
	// Reconnect makes Run come back after a lost tracker connection
	// (with backoff) instead of returning.
	Reconnect bool
	Logger    peer.Logger // default: none (a *slog.Logger natively)
	// HTTPClient dials TrackerURL (default: http.DefaultClient; a
	// client trusting a private CA for wss://).
	HTTPClient *http.Client
}

// ErrRefused is returned by Run when the tracker refuses the join (no such
// stream, no viewer token, full) or evicts the peer; reconnecting would not
// help.
var ErrRefused = errors.New("node: tracker refused the join")

// tickEvery is how often the node's engine timers run.
const tickEvery = 50 * time.Millisecond

// Run joins the stream through the tracker and keeps the node running
// until ctx ends (nil), the tracker refuses (ErrRefused), or the connection
// is lost without Reconnect.
func Run(ctx context.Context, cfg ClientConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = peer.Discard
	}
	backoff := 500 * time.Millisecond
	url, hops := cfg.TrackerURL, 0
	for {
		start := time.Now()
		err := session(ctx, cfg, url)
		if ctx.Err() != nil {
			return nil
		}
		// A tracker that does not own the stream names the one that does:
		// go there at once (a few hops at most, so two trackers that
		// disagree cannot bounce the peer for ever).
		var mv movedError
		if errors.As(err, &mv) && hops < maxMoves {
			cfg.Logger.Info("stream is on another tracker", "url", mv.url)
			url, hops = mv.url, hops+1
			continue
		}
		// Anything else: start over at the configured tracker, which
		// knows the owner of the moment.
		url, hops = cfg.TrackerURL, 0
		if errors.Is(err, ErrRefused) || !cfg.Reconnect {
			return err
		}
		if time.Since(start) > 30*time.Second {
			backoff = 500 * time.Millisecond
		}
		cfg.Logger.Warn("tracker connection lost, reconnecting", "err", err, "in", backoff)
		if cfg.Node.OnState != nil {
			cfg.Node.OnState("reconnecting")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// maxMoves bounds the protocol.Moved answers followed in a row.
const maxMoves = 3

// movedError ends a session the tracker answered with protocol.Moved.
type movedError struct{ url string }

func (e movedError) Error() string { return "stream moved to " + e.url }

func session(ctx context.Context, cfg ClientConfig, url string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: cfg.HTTPClient})
	dcancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(protocol.MaxMessage)

	out := make(chan protocol.Message, 512)
	ncfg := cfg.Node
	ncfg.Stream = cfg.Join.Stream
	// A key of its own for each session: the tracker learns its public
	// half with the join and checks the delivery statements it signs.
	// (Node.ProofKey, when set, is used instead: tests that sign as a
	// forger would.)
	join := cfg.Join
	join.UploadKbps = DeclaredUpload(join.UploadKbps, ncfg.MaxUploadKbps)
	if !join.NoUpload {
		if ncfg.ProofKey == nil {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("node: proof key: %w", err)
			}
			ncfg.ProofKey = priv
		}
		join.ProofKey = protocol.EncodeProofKey(ncfg.ProofKey.Public().(ed25519.PublicKey))
	}
	ncfg.Logger = cfg.Logger
	ncfg.Send = func(m protocol.Message) {
		select {
		case out <- m:
		default:
			cfg.Logger.Warn("tracker queue full, dropping", "type", m.Type())
		}
	}
	n, err := New(ncfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if cfg.OnNode != nil {
		cfg.OnNode(n)
	}
	out <- join

	in := make(chan protocol.Message, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(in)
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			m, err := protocol.Decode(data)
			if err != nil {
				cfg.Logger.Warn("bad message from tracker", "err", err)
				continue
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	welcomed := false
	for {
		select {
		case <-ctx.Done():
			// Say goodbye so children are re-parented at once, not after
			// the tracker notices the closed socket.
			if b, err := protocol.Encode(protocol.Leave{}); err == nil {
				wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
				conn.Write(wctx, websocket.MessageText, b)
				wcancel()
			}
			return nil
		case m, ok := <-in:
			if !ok {
				return <-readErr
			}
			if mv, ok := m.(protocol.Moved); ok {
				return movedError{mv.URL}
			}
			if e, isErr := m.(protocol.Error); isErr && (!welcomed || e.Code == protocol.CodeEvicted) {
				// Refused at the door, or thrown out: coming back would not help.
				n.Handle(m)
				return errors.Join(ErrRefused, e)
			}
			if _, ok := m.(protocol.Welcome); ok {
				welcomed = true
			}
			n.Handle(m)
		case m := <-out:
			b, err := protocol.Encode(m)
			if err != nil {
				continue
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			err = conn.Write(wctx, websocket.MessageText, b)
			wcancel()
			if err != nil {
				return err
			}
		case now := <-tick.C:
			n.Tick(now)
		}
	}
}
